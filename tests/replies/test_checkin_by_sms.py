"""The inbound-SMS service hands check-in answers to the check-ins service first."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import CalendarEvent, CheckinSession
from app.services.conversations.checkins.schedule import start_due
from app.services.conversations.inbound.replies import receive
from tests.checkins.conftest import mark_checkin_messages_sent
from tests.replies.conftest import add_rota, alerts, inbound_form, inbound_rows, patient


def _started_checkin(app: Flask) -> tuple[object, datetime]:
    p = patient(locale="zh")
    event = db.session.scalar(
        select(CalendarEvent)
        .where(CalendarEvent.patient_id == p.id, CalendarEvent.kind == "checkin")
        .order_by(CalendarEvent.date)
    )
    assert event is not None
    moment = datetime.combine(event.date, time(11, 0), tzinfo=ZoneInfo("Asia/Shanghai"))
    now = moment.astimezone(UTC)
    sessions = start_due(now)
    assert sessions, "the check-in should have started"
    mark_checkin_messages_sent(now - timedelta(minutes=5))
    return p, now


def test_a_bare_number_answers_the_open_check_in(app_ctx: Flask) -> None:
    p, now = _started_checkin(app_ctx)
    result = receive(inbound_form(p.phone_e164, "0"), now)
    (row,) = inbound_rows()
    assert row.status == "processed" and row.intent == "checkin_answer"
    assert any(a.startswith("checkin:") for a in row.parse["actions"])
    session = db.session.scalar(select(CheckinSession).execution_options(populate_existing=True))
    assert session is not None and session.answers
    assert result.reply == ""  # the next question goes out through the outbox


def test_free_text_during_a_check_in_is_still_read_as_free_text(app_ctx: Flask) -> None:
    p, now = _started_checkin(app_ctx)
    add_rota()
    result = receive(inbound_form(p.phone_e164, "我今天胸口很痛"), now)
    assert result.priority == "red" and "120" in (result.reply or "")
    assert [a.level for a in alerts()] == ["red"]
