"""Patients list (search, sort, pages) and the enrolment form."""

from __future__ import annotations

import re
from datetime import date, timedelta

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, CalendarEvent, Patient
from app.web.helpers import clinic_today
from tests.web.conftest import enrol, post


def _counts() -> tuple[int, int, int]:
    return (
        db.session.scalar(select(func.count(Patient.id))) or 0,
        db.session.scalar(select(func.count(CalendarEvent.id))) or 0,
        db.session.scalar(select(func.count(AuditEntry.id))) or 0,
    )


def _study_ids(html: str) -> list[str]:
    return re.findall(r'<a class="mono" href="/patients/([^"]+)"><strong>', html)


def _valid_form(**changes: object) -> dict[str, object]:
    today = clinic_today()
    form = {
        "study_id": "JSCH-080",
        "initials": "ZS",
        "phone": "139 1234 5678",
        "choice_pd1": "camrelizumab",
        "choice_chemo": "irinotecan",
        "start_date": (today + timedelta(days=7)).isoformat(),
        "recurrence_date": (today - timedelta(days=30)).isoformat(),
        "sms_consent": "y",
        "health_consent": "y",
        "sms_consent_date": today.isoformat(),
        "locale": "zh",
        "timezone": "Asia/Shanghai",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def test_list_shows_patients_with_arm_phase_next_visit(english_nurse: FlaskClient) -> None:
    enrol("JSCH-001", chemo="docetaxel")
    enrol("JSCH-002", initials="ZM", pd1="camrelizumab", chemo="paclitaxel")
    page = english_nurse.get("/patients/").get_data(as_text=True)
    assert _study_ids(page) == ["JSCH-001", "JSCH-002"]
    assert "Sintilimab + Docetaxel" in page
    assert "Camrelizumab + Paclitaxel" in page
    assert "Induction" in page
    assert "On treatment" in page


def test_list_search_and_status_filter(english_nurse: FlaskClient) -> None:
    enrol("JSCH-001", initials="WL")
    enrol("JSCH-002", initials="ZM")
    enrol("OTHER-3", initials="ZQ")
    assert _study_ids(english_nurse.get("/patients/?q=jsch").get_data(as_text=True)) == [
        "JSCH-001",
        "JSCH-002",
    ]
    assert _study_ids(english_nurse.get("/patients/?q=z").get_data(as_text=True)) == [
        "JSCH-002",
        "OTHER-3",
    ]
    assert _study_ids(english_nurse.get("/patients/?q=%25").get_data(as_text=True)) == []
    page = english_nurse.get("/patients/?status=withdrawn").get_data(as_text=True)
    assert _study_ids(page) == []
    assert "No patient matches this search." in page


def test_list_sorts_by_each_column(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    enrol("JSCH-001", initials="CC", start=today + timedelta(days=20))
    enrol("JSCH-002", initials="AA", start=today + timedelta(days=10))
    enrol("JSCH-003", initials="BB", start=today + timedelta(days=30))

    def order(query: str) -> list[str]:
        return _study_ids(english_nurse.get(f"/patients/?{query}").get_data(as_text=True))

    assert order("sort=initials") == ["JSCH-002", "JSCH-003", "JSCH-001"]
    assert order("sort=initials&dir=desc") == ["JSCH-001", "JSCH-003", "JSCH-002"]
    assert order("sort=next_visit") == ["JSCH-002", "JSCH-001", "JSCH-003"]
    assert order("sort=study_id&dir=desc") == ["JSCH-003", "JSCH-002", "JSCH-001"]
    assert order("sort=nonsense") == ["JSCH-001", "JSCH-002", "JSCH-003"]


def test_patients_without_a_visit_left_sort_last_in_either_direction(
    english_nurse: FlaskClient,
) -> None:
    today = clinic_today()
    enrol("JSCH-001", start=today + timedelta(days=20))
    enrol("JSCH-002", start=today + timedelta(days=10))
    finished = enrol("JSCH-000", start=today + timedelta(days=5))
    for event in finished.events:
        event.status = "done"
    db.session.commit()

    def order(query: str) -> list[str]:
        return _study_ids(english_nurse.get(f"/patients/?{query}").get_data(as_text=True))

    assert order("sort=next_visit") == ["JSCH-002", "JSCH-001", "JSCH-000"]
    assert order("sort=next_visit&dir=desc") == ["JSCH-001", "JSCH-002", "JSCH-000"]


def test_list_is_paginated(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    rows = [
        Patient(study_id=f"P-{i:03d}", initials="AB", phone_e164="+8613800138000",
                protocol_code="NCT07016737", choices={"pd1": "sintilimab", "chemo": "docetaxel"},
                start_date=today, status="active")
        for i in range(57)
    ]  # fmt: skip
    db.session.add_all(rows)
    db.session.commit()
    first = english_nurse.get("/patients/").get_data(as_text=True)
    assert len(_study_ids(first)) == 50
    assert "1–50 of 57" in first
    second = english_nurse.get("/patients/?page=2").get_data(as_text=True)
    assert _study_ids(second) == [f"P-{i:03d}" for i in range(50, 57)]
    beyond = english_nurse.get("/patients/?page=99").get_data(as_text=True)
    assert _study_ids(beyond) == _study_ids(second)


def test_enrolment_form_offers_the_protocols_choices(english_nurse: FlaskClient) -> None:
    page = english_nurse.get("/patients/new").get_data(as_text=True)
    for option in ("sintilimab", "camrelizumab", "paclitaxel", "docetaxel", "irinotecan"):
        assert f'value="{option}"' in page
    assert "PD-1 inhibitor" in page
    assert 'value="Asia/Shanghai" selected' in page or 'selected value="Asia/Shanghai"' in page


def test_enrolment_creates_the_patient_and_the_calendar(english_nurse: FlaskClient) -> None:
    response = post(english_nurse, "/patients/new", _valid_form())
    assert response.status_code == 302
    assert response.headers["Location"] == "/patients/JSCH-080"
    patient = db.session.scalars(select(Patient)).one()
    assert patient.phone_e164 == "+8613912345678"
    assert patient.choices == {"pd1": "camrelizumab", "chemo": "irinotecan"}
    assert len(patient.events) > 100
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "patient.enrol")).one()
    assert entry.actor == "user:nurse.wang"
    page = english_nurse.get("/patients/JSCH-080").get_data(as_text=True)
    assert "JSCH-080 enrolled" in page


def test_invalid_phone_shows_a_clear_message_and_writes_nothing(
    english_nurse: FlaskClient,
) -> None:
    before = _counts()
    response = post(english_nurse, "/patients/new", _valid_form(phone="12345"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "This number is not valid" in page
    assert 'id="phone-err"' in page
    assert _counts() == before
    response = post(english_nurse, "/patients/new", _valid_form(phone="025 8328 3400"))
    assert "landline" in response.get_data(as_text=True)
    assert _counts() == before


def test_chinese_phone_message(nurse: FlaskClient) -> None:
    response = post(nurse, "/patients/new", _valid_form(phone="abc"))
    assert "这不是电话号码" in response.get_data(as_text=True)


def test_consent_and_its_date_are_required(english_nurse: FlaskClient) -> None:
    before = _counts()
    no_consent = _valid_form()
    del no_consent["sms_consent"]
    response = post(english_nurse, "/patients/new", no_consent)
    assert response.status_code == 400
    assert "SMS consent must be recorded before enrolment." in response.get_data(as_text=True)
    response = post(english_nurse, "/patients/new", _valid_form(sms_consent_date=""))
    assert "Enter the date the patient gave consent." in response.get_data(as_text=True)
    future = (clinic_today() + timedelta(days=2)).isoformat()
    response = post(english_nurse, "/patients/new", _valid_form(sms_consent_date=future))
    assert "Consent cannot be dated in the future." in response.get_data(as_text=True)
    assert _counts() == before


def test_required_fields_and_choices(english_nurse: FlaskClient) -> None:
    before = _counts()
    response = post(
        english_nurse,
        "/patients/new",
        _valid_form(study_id="", initials="", choice_pd1="", start_date=""),
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter the study ID." in page
    assert "Enter the patient" in page
    assert "Choose one option." in page
    assert "Enter the date of the first infusion." in page
    response = post(english_nurse, "/patients/new", _valid_form(choice_chemo="aspirin"))
    assert response.status_code == 400
    assert _counts() == before


def test_domain_validation_errors_are_shown(english_nurse: FlaskClient) -> None:
    enrol("JSCH-080")
    before = _counts()
    response = post(english_nurse, "/patients/new", _valid_form())
    assert "Study ID JSCH-080 is already enrolled." in response.get_data(as_text=True)
    response = post(english_nurse, "/patients/new", _valid_form(study_id="J S", initials="Wang Li"))
    page = response.get_data(as_text=True)
    assert "for example JSCH-001" in page
    assert "never the name" in page
    later = (clinic_today() + timedelta(days=30)).isoformat()
    response = post(english_nurse, "/patients/new", _valid_form(recurrence_date=later))
    assert "The recurrence cannot be after the first infusion." in response.get_data(as_text=True)
    assert _counts() == before


def test_enrolment_requires_csrf(english_nurse: FlaskClient) -> None:
    response = english_nurse.post("/patients/new", data=_valid_form())
    assert response.status_code == 400
    assert _counts() == (0, 0, _counts()[2])


def test_admin_cannot_enrol(admin: FlaskClient) -> None:
    before = _counts()
    assert post(admin, "/patients/new", _valid_form()).status_code == 403
    assert _counts() == before


def test_investigator_can_enrol(investigator: FlaskClient) -> None:
    assert post(investigator, "/patients/new", _valid_form()).status_code == 302
    assert db.session.scalar(select(func.count(Patient.id))) == 1


def test_header_shows_the_actual_first_infusion_after_a_saturday_start(
    english_nurse: FlaskClient,
) -> None:
    saturday = date(2027, 3, 6)
    patient = enrol("JSCH-090", start=saturday, enrolled_on=date(2027, 3, 1))
    assert patient.first_infusion_date == date(2027, 3, 8)  # moved to Monday
    page = english_nurse.get("/patients/JSCH-090").get_data(as_text=True)
    first = page.split("First infusion", 1)[1][:80]
    assert "Mar 8, 2027" in first or "8 Mar 2027" in first, first
