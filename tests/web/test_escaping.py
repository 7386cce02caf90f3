"""Patient- and nurse-entered text is always escaped (stored XSS attempts stay inert)."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient

from app.extensions import db
from app.models import CalendarEvent, Patient
from app.services.schedule import calendar as calendar_service
from app.services.shared import users as user_service
from app.web.helpers import clinic_today
from tests.web.conftest import enrol, post

SCRIPT = "<script>alert('x')</script>"
IMG = '<img src=x onerror="alert(1)">'


def _assert_inert(html: str, payload: str) -> None:
    assert payload not in html
    assert 'onerror="alert' not in html
    assert "<script>alert" not in html


def test_reason_and_note_are_escaped_everywhere(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    patient = enrol(
        "JSCH-001", start=today - timedelta(days=1), enrolled_on=today - timedelta(days=2)
    )
    post(english_nurse, "/patients/JSCH-001/events/induction.c1.infusion/status",
         {"status": "done", "note": IMG})  # fmt: skip
    c2 = next(e for e in patient.events if e.key == "induction.c2.infusion")
    calendar_service.reschedule_event(
        patient.id, c2.key, c2.date + timedelta(days=1), SCRIPT, actor="user:nurse.wang",
        today=today,
    )  # fmt: skip
    pages = [
        "/patients/JSCH-001",
        "/patients/JSCH-001/events/induction.c2.infusion",
        "/patients/JSCH-001/events/induction.c1.infusion",
        "/audit/",
    ]
    for url in pages:
        html = english_nurse.get(url).get_data(as_text=True)
        _assert_inert(html, SCRIPT)
        _assert_inert(html, IMG)
    history = english_nurse.get("/patients/JSCH-001").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in history
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in history


def test_patient_fields_stored_by_another_path_are_escaped(english_nurse: FlaskClient) -> None:
    patient = enrol("JSCH-001")
    patient.initials = "<b>X</b>"  # as if imported without validation (8 characters fit)
    db.session.commit()
    day = db.session.query(CalendarEvent.date).filter_by(key="induction.c1.infusion").scalar()
    for url in ("/patients/", "/patients/JSCH-001", "/patients/JSCH-001/print", "/",
                f"/calendar/day/{day.isoformat()}", "/audit/"):  # fmt: skip
        html = english_nurse.get(url).get_data(as_text=True)
        assert "<b>X</b>" not in html, url
        assert "&lt;b&gt;X&lt;/b&gt;" in html or url in ("/audit/", "/"), url


def test_search_text_is_escaped(english_nurse: FlaskClient) -> None:
    html = english_nurse.get('/patients/?q="><script>alert(1)</script>').get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "&#34;&gt;&lt;script&gt;" in html


def test_staff_names_are_escaped(admin: FlaskClient) -> None:
    user_service.update_user("admin.zhou", actor="test", display_name=SCRIPT)
    for url in ("/", "/admin/users/", "/account"):
        _assert_inert(admin.get(url).get_data(as_text=True), SCRIPT)


def test_enrolment_rejects_markup_in_identifiers(english_nurse: FlaskClient) -> None:
    response = post(english_nurse, "/patients/new", {
        "study_id": "<b>x</b>", "initials": IMG, "phone": "13800138000",
        "choice_pd1": "sintilimab", "choice_chemo": "docetaxel",
        "start_date": clinic_today().isoformat(), "sms_consent": "y",
        "sms_consent_date": clinic_today().isoformat(), "locale": "zh",
        "timezone": "Asia/Shanghai",
    })  # fmt: skip
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    _assert_inert(html, IMG)
    assert db.session.query(Patient).count() == 0
