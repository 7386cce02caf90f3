"""Fixtures for the check-in tests: an app with CSRF on and a public base URL, patients with a
started check-in at a fixed time, a rota, staff accounts and signed-in clients."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.domain.patients import EnrolmentRequest
from app.extensions import db
from app.models import (
    Alert,
    CalendarEvent,
    CheckinSession,
    InboundMessage,
    OnCallShift,
    OutboxMessage,
    Patient,
)
from app.services.conversations.checkins.schedule import start_checkin
from app.services.messaging.outbox import transition
from app.services.schedule.patients import enrol_patient
from app.services.shared import users as user_service
from tests.support import (
    PASSWORD,
    csrf_token,
    fresh_client,
    production_like_app,
    sign_in,
)

PUBLIC_BASE_URL = "https://cadence.example.org"
SHANGHAI = ZoneInfo("Asia/Shanghai")
ENROLLED_ON = date(2026, 3, 2)
FIRST_INFUSION = date(2026, 3, 10)
CLINICIAN_PHONE = "+8613900000001"


# -- patients and check-ins ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    """The app as in production (CSRF on), see tests/support.py."""
    yield from production_like_app(
        database_url,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        ESCALATION_PAGE_NOW=False,
        ESCALATION_FALLBACK_PHONE=None,
    )


@pytest.fixture
def client(app_ctx: Flask) -> FlaskClient:
    """A test client on a clean database (requests in their own app contexts)."""
    return fresh_client(app_ctx)


def enrol(
    study_id: str = "JSCH-101",
    *,
    locale: str = "zh",
    pd1: str = "sintilimab",
    chemo: str = "docetaxel",
    consent: bool = True,
    start: date = FIRST_INFUSION,
    today: date = ENROLLED_ON,
    phone: str | None = None,
) -> Patient:
    """A patient enrolled through the real service (calendar and reminders planned)."""
    number = phone or f"1380013{int(study_id[-3:]):04d}"
    return enrol_patient(
        EnrolmentRequest(
            study_id=study_id,
            initials="WL",
            phone=number,
            choices={"pd1": pd1, "chemo": chemo},
            start_date=start,
            sms_consent=consent,
            health_consent=consent,
            sms_consent_date=min(today, start) if consent else None,
            locale=locale,
            recurrence_date=start - timedelta(days=60),
            started_before_cadence=start < today,
        ),
        actor="test",
        today=today,
    )


def checkin_events(patient: Patient) -> list[CalendarEvent]:
    """The patient's check-in events in date order."""
    return list(
        db.session.scalars(
            select(CalendarEvent)
            .where(CalendarEvent.patient_id == patient.id, CalendarEvent.kind == "checkin")
            .order_by(CalendarEvent.date, CalendarEvent.id)
        )
    )


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """An aware UTC datetime for a wall-clock time in Nanjing."""
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI).astimezone(UTC)


def start(patient: Patient, *, index: int = 0, now: datetime | None = None) -> CheckinSession:
    """Issue the patient's index-th check-in at ``now`` (default: 10:05 on its day) and commit."""
    event = checkin_events(patient)[index]
    moment = now or local(event.date, 10, 5)
    session = start_checkin(event, now=moment, actor="test")
    assert session is not None
    db.session.commit()
    return session


def mark_checkin_messages_sent(at: datetime) -> None:
    """Hand every planned check-in message to the provider at ``at`` (the dispatcher's status
    change, so the check-in follows: scheduled -> sent)."""
    ids = db.session.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.kind == "checkin", OutboxMessage.status == "planned"
        )
    ).all()
    for message_id in ids:
        transition(message_id, expect=("planned",), to="sent", source="test",
                   values={"sent_at": at}, at=at)  # fmt: skip
    db.session.commit()
    db.session.expire_all()


_sids = iter(range(1, 10**9))


def inbound(patient: Patient, body: str, at: datetime) -> int:
    """Store an inbound SMS row (as the webhook does first) and return its id."""
    row = InboundMessage(
        sid=f"SM{next(_sids):032x}",
        from_number=patient.phone_e164,
        body=body,
        received_at=at,
        patient_id=patient.id,
        status="processed",
    )
    db.session.add(row)
    db.session.flush()
    return row.id


def fresh(session: CheckinSession) -> CheckinSession:
    """The session re-read from the database."""
    row = db.session.get(CheckinSession, session.id, populate_existing=True)
    assert row is not None
    return row


def checkin_messages(session: CheckinSession) -> list[OutboxMessage]:
    """The session's outbox rows, oldest first."""
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.dedupe_key.startswith(f"checkin:{session.id}:"))
            .order_by(OutboxMessage.id)
        )
    )


def alerts() -> list[Alert]:
    """Every alert, oldest first, fresh from the database."""
    return list(
        db.session.scalars(
            select(Alert).order_by(Alert.id).execution_options(populate_existing=True)
        )
    )


def add_rota() -> None:
    """An on-call clinician around the clock."""
    db.session.add(
        OnCallShift(
            role="clinician",
            name="Dr Zhang",
            phone_e164=CLINICIAN_PHONE,
            weekdays="mon,tue,wed,thu,fri,sat,sun",
            start_time=time(8, 0),
            end_time=time(8, 0),
            priority=0,
            locale="zh",
            active=True,
        )
    )
    db.session.commit()


def full_answers(items: list, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Answers to every question that applies: the overrides, 0 (36.8 C) for the rest."""
    from app.domain.checkins import applicable_questions

    wanted = dict(overrides or {})
    answers: dict[str, Any] = {}
    while True:
        pending = [q for q in applicable_questions(items, answers) if q.code not in answers]
        if not pending:
            return answers
        for question in pending:
            answers[question.code] = wanted.get(
                question.code, 36.8 if question.is_temperature else 0
            )


# -- staff ------------------------------------------------------------------------------------------


@pytest.fixture
def staff(app_ctx: Flask) -> dict[str, str]:
    """A nurse (en), a second nurse (zh), an investigator (en) and an admin (en)."""
    accounts = {
        "nurse": ("nurse.chen", "nurse", "en"),
        "nurse2": ("nurse.wang", "nurse", "zh"),
        "investigator": ("dr.li", "investigator", "en"),
        "admin": ("admin.zhou", "admin", "en"),
    }
    for username, role, locale in accounts.values():
        user_service.create_user(
            username, display_name=username.title(), role=role, password=PASSWORD, actor="test",
            locale=locale,
        )  # fmt: skip
    return {key: value[0] for key, value in accounts.items()}


def post(client: FlaskClient, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """POST with the session's CSRF token (read from the account page)."""
    token = csrf_token(client, "/account/password")
    return client.post(url, data={**(data or {}), "csrf_token": token}, **kwargs)


@pytest.fixture
def nurse(client: FlaskClient, staff: dict[str, str]) -> FlaskClient:
    """A client signed in as the English-speaking nurse."""
    return sign_in(client, staff["nurse"])


def days(n: float) -> timedelta:
    """n days."""
    return timedelta(days=n)
