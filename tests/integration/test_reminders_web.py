"""The message log page and the patient page's SMS panel (signed-in nurse, both DBs)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.extensions import db
from app.models import OutboxMessage
from app.services.shared import users as user_service
from app.web.helpers import clinic_today, clinic_tz
from tests.integration.sms_support import enrol
from tests.support import PASSWORD, FreshContextClient, sign_in

START = date(2026, 3, 10)


@pytest.fixture
def nurse(app_ctx: Flask) -> FlaskClient:
    """A client signed in as a nurse who reads the interface in English."""
    user_service.create_user(
        "nurse.sms", display_name="Nurse", role="nurse", password=PASSWORD, actor="test",
        locale="en",
    )  # fmt: skip
    app_ctx.test_client_class = FreshContextClient
    client = app_ctx.test_client()
    return sign_in(client, "nurse.sms")


def page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_the_log_needs_a_signed_in_user(app_ctx: Flask) -> None:
    response = app_ctx.test_client().get("/messages/")

    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_the_log_shows_bodies_segments_and_history(nurse: FlaskClient) -> None:
    patient = enrol("JSCH-201", start=START)
    first = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.patient_id == patient.id)
        .order_by(OutboxMessage.send_after)
        .limit(1)
    ).first()

    html = page(nurse, "/messages/?patient=JSCH-201&to=2026-03-10")

    assert 'href="/messages/"' in html  # the navigation entry
    assert "JSCH-201" in html
    assert "您3月10日周二有治疗安排" in html
    assert "1 segment · Chinese characters (70 per SMS)" in html
    assert f'id="message-{first.id}"' in html
    assert "Status history" in html and "Planned" in html


def test_the_log_filters_by_status_and_date(nurse: FlaskClient) -> None:
    patient = enrol("JSCH-202", start=START)
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.patient_id == patient.id)
        .where(OutboxMessage.send_after < datetime(2026, 3, 8, 16, tzinfo=UTC))
        .values(status="failed", error_reason="opted_out", error_code=21610)
    )
    db.session.commit()

    failed = page(nurse, "/messages/?status=failed")
    assert "The patient opted out of SMS" in failed and "21610" in failed
    assert "治疗前用药（3月9日周一 20:00）" not in failed  # 9 March messages are still planned

    day = page(nurse, "/messages/?from=2026-03-09&to=2026-03-09")
    assert "治疗前用药（3月9日周一 20:00）" in day and "治疗前用药（3月10日周二 08:00）" in day
    assert "今天（3月10日周二）" not in day


def test_the_patient_page_shows_the_next_messages_exactly_as_sent(nurse: FlaskClient) -> None:
    enrol("JSCH-203", start=START, locale="en")
    window_start = START - timedelta(days=2)

    html = page(nurse, "/patients/JSCH-203")

    assert "Next SMS messages" in html
    assert "Reminder: Blood test at the hospital on Mon, Mar 9." in html
    assert f"{window_start.isoformat()} 18:00" in html
    assert "/messages/?patient=JSCH-203" in html


def test_the_patient_page_says_when_no_sms_may_be_sent(nurse: FlaskClient) -> None:
    patient = enrol("JSCH-204", start=START)
    patient.sms_consent = False
    db.session.commit()

    html = page(nurse, "/patients/JSCH-204")

    assert "No SMS is sent to this patient: No SMS consent recorded." in html


def test_the_log_opens_on_today_and_keeps_the_future_in_its_own_tab(nurse: FlaskClient) -> None:
    patient = enrol("JSCH-202", start=START)
    rows = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.patient_id == patient.id)
    ).all()
    tomorrow = datetime.combine(clinic_today() + timedelta(days=1), time(0), tzinfo=clinic_tz())
    future = [r for r in rows if r.send_after >= tomorrow]
    assert future, "the enrolment plans reminders for later days"
    recent = page(nurse, "/messages/?patient=JSCH-202")
    assert all(f'id="message-{r.id}"' not in recent for r in future)
    planned = page(nurse, "/messages/?patient=JSCH-202&tab=planned")
    soonest = min(future, key=lambda r: (r.send_after, r.id))
    assert f'id="message-{soonest.id}"' in planned and 'aria-current="page"' in planned
