"""The inbound-SMS webhook: real Twilio signatures, forgeries, duplicates, unknown senders,
opt-out / opt-in, confirmations, reschedule requests, failures (both databases)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from app.extensions import db
from app.models import AuditEntry, CalendarEvent, InboundMessage, OutboxMessage, Patient
from app.services.conversations.inbound import replies
from app.services.conversations.inbound.replies import InboundForm, process_stale, receive, store
from app.services.messaging.reminders import plan_patient
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.sms_support import ACCOUNT_SID, AUTH_TOKEN
from tests.replies.conftest import (
    INBOUND_PATH,
    INBOUND_URL,
    MONDAY_10,
    add_rota,
    alerts,
    count,
    inbound_form,
    inbound_rows,
    patient,
    post_inbound,
    sign,
    twiml_message,
)

# -- signatures ----------------------------------------------------------------------------------


def test_a_correctly_signed_message_is_stored_and_answered_in_twiml(client: FlaskClient) -> None:
    p = patient(locale="en")
    response = post_inbound(client, inbound_form(p.phone_e164, "HELP"))
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert response.get_data(as_text=True).startswith("<?xml")
    text = twiml_message(response)
    assert "Reply 1 to confirm" in text and "+86 25 8328 3400" in text
    (row,) = inbound_rows()
    assert row.patient_id == p.id and row.intent == "help" and row.status == "processed"
    assert row.reply_body == text


def test_the_fake_twilio_signature_is_accepted_too(client: FlaskClient) -> None:
    p = patient()
    form = inbound_form(p.phone_e164, "1")
    with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as fake:
        signature = fake.sign(INBOUND_URL, form)
    assert post_inbound(client, form, signature).status_code == 200
    assert count(InboundMessage) == 1


def test_forged_missing_or_misdirected_signatures_get_403_and_nothing_is_stored(
    client: FlaskClient,
) -> None:
    p = patient()
    form = inbound_form(p.phone_e164, "胸痛")
    forged = sign(form)[:-4] + "AAA="
    other_url = sign(form, url="https://evil.example.org" + INBOUND_PATH)
    other_token = sign(form, token="not-our-token")
    tampered = sign({**form, "Body": "1"})
    for signature in (forged, None, other_url, other_token, tampered, "garbage"):
        response = post_inbound(client, form, signature)
        assert response.status_code == 403, signature
    assert count(InboundMessage) == 0
    assert alerts() == []
    assert count(AuditEntry) == 1  # the enrolment only


def test_a_signed_post_without_message_sid_or_sender_is_refused_with_400(
    client: FlaskClient,
) -> None:
    for form in ({"From": "+8613800138000", "Body": "1"}, {"MessageSid": "SM1", "Body": "1"}):
        assert post_inbound(client, form).status_code == 400
    assert count(InboundMessage) == 0


# -- duplicates ----------------------------------------------------------------------------------


def test_a_retried_webhook_is_answered_again_but_stored_and_acted_on_once(
    client: FlaskClient,
) -> None:
    p = patient()
    form = inbound_form(p.phone_e164, "今天拉了五次")
    first = post_inbound(client, form)
    second = post_inbound(client, form)
    assert first.status_code == second.status_code == 200
    assert twiml_message(first) == twiml_message(second) != ""
    assert count(InboundMessage) == 1
    assert [a.level for a in alerts()] == ["amber"]


def test_a_duplicate_of_a_message_still_being_processed_gets_no_second_answer(
    app_ctx: Flask,
) -> None:
    p = patient()
    form = inbound_form(p.phone_e164, "1")
    message_id, created = store(InboundForm.parse(form), MONDAY_10)
    assert created
    result = receive(form, MONDAY_10)
    assert result.status == "in_progress" and result.reply is None
    assert db.session.get(InboundMessage, message_id).status == "received"


# -- unknown senders -----------------------------------------------------------------------------


def test_an_unknown_sender_gets_a_generic_answer_and_the_message_is_kept_for_review(
    client: FlaskClient,
) -> None:
    p = patient("JSCH-777")
    response = post_inbound(client, inbound_form("+8613912345678", "我是JSCH-777的家属，请回电"))
    text = twiml_message(response)
    assert text
    for secret in ("JSCH", p.initials, "777", p.phone_e164[-4:]):
        assert secret not in text
    (row,) = inbound_rows()
    assert row.patient_id is None and row.status == "processed"
    (alert,) = alerts()
    assert alert.kind == "review" and alert.patient_id is None
    assert alert.inbound_message_id == row.id and alert.status == "open"


def test_a_number_shared_by_two_patients_on_study_is_not_guessed(client: FlaskClient) -> None:
    patient("JSCH-001", phone="13800138000")
    patient("JSCH-002", phone="13800138000")
    post_inbound(client, inbound_form("+8613800138000", "有点恶心"))
    (row,) = inbound_rows()
    assert row.patient_id is None
    assert alerts()[0].kind == "review"


def test_a_sender_number_in_national_form_is_matched(client: FlaskClient) -> None:
    p = patient()
    post_inbound(client, inbound_form("13800138000", "1"))
    assert inbound_rows()[0].patient_id == p.id


# -- opt-out and opt-in --------------------------------------------------------------------------


def _planned(p: Patient) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.patient_id == p.id, OutboxMessage.status == "planned")
            .execution_options(populate_existing=True)
        )
    )


def test_opt_out_stops_everything_at_once_and_opt_in_restores_it(client: FlaskClient) -> None:
    p = patient()
    planned_before = {m.dedupe_key for m in _planned(p)}
    assert planned_before
    response = post_inbound(client, inbound_form(p.phone_e164, "TD"))
    assert "START" in twiml_message(response)
    db.session.refresh(p)
    assert p.sms_opted_out_at is not None
    assert _planned(p) == []
    result = plan_patient(p, now=MONDAY_10, source="test")
    db.session.commit()
    assert result.blocked_reason == "opted_out" and result.created == 0 and _planned(p) == []
    actions = {(a.actor, a.action) for a in db.session.scalars(select(AuditEntry))}
    assert ("patient:JSCH-001", "patient.sms_opted_out") in actions

    # Opting in re-plans from the moment of the reply (here the fixed clock of the enrolment day).
    result = receive(inbound_form(p.phone_e164, "START"), MONDAY_10)
    db.session.refresh(p)
    assert p.sms_opted_out_at is None
    assert {m.dedupe_key for m in _planned(p)} == planned_before
    actions = {(a.actor, a.action) for a in db.session.scalars(select(AuditEntry))}
    assert ("patient:JSCH-001", "patient.sms_opted_in") in actions
    assert result.reply and "TD" in result.reply


def test_every_opt_out_keyword_is_honoured(client: FlaskClient) -> None:
    for index, word in enumerate(("STOP", "unsubscribe", "退订", "T", "N", "R", "QUIT")):
        p = patient(f"JSCH-1{index:02d}", phone=f"1380013{index:04d}")
        post_inbound(client, inbound_form(p.phone_e164, word))
        db.session.refresh(p)
        assert p.sms_opted_out_at is not None, word
        assert _planned(p) == [], word


def test_yes_opts_back_in_only_after_an_opt_out(client: FlaskClient) -> None:
    p = patient(locale="en")
    post_inbound(client, inbound_form(p.phone_e164, "STOP"))
    post_inbound(client, inbound_form(p.phone_e164, "YES"))
    db.session.refresh(p)
    assert p.sms_opted_out_at is None
    assert [r.intent for r in inbound_rows()] == ["opt_out", "opt_in"]


# -- confirmations and reschedule requests -------------------------------------------------------


def _sent_reminder(p: Patient) -> OutboxMessage:
    """Mark the patient's first planned reminder as sent an hour ago (what the dispatcher does)."""
    row = next(m for m in _planned(p) if m.kind == "reminder" and m.event_keys)
    row.status = "sent"
    row.sent_at = MONDAY_10 - timedelta(hours=1)
    db.session.commit()
    return row


def _events(p: Patient, keys: list[str]) -> list[CalendarEvent]:
    return list(
        db.session.scalars(
            select(CalendarEvent)
            .where(CalendarEvent.patient_id == p.id, CalendarEvent.key.in_(keys))
            .execution_options(populate_existing=True)
        )
    )


def test_a_confirmation_confirms_the_events_of_the_last_reminder(app_ctx: Flask) -> None:
    p = patient(locale="en")
    reminder = _sent_reminder(p)
    result = receive(inbound_form(p.phone_e164, "1"), MONDAY_10)
    assert "confirmed" in (result.reply or "")
    events = _events(p, reminder.event_keys)
    assert events and {e.status for e in events} == {"confirmed"}
    audit_rows = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "event.status")
    ).all()
    assert {a.actor for a in audit_rows} == {"patient:JSCH-001"}
    assert alerts() == []


def test_a_confirmation_without_a_recent_reminder_changes_nothing(app_ctx: Flask) -> None:
    p = patient(locale="en")
    result = receive(inbound_form(p.phone_e164, "OK"), MONDAY_10)
    assert result.reply and "no question of ours is open" in result.reply  # asked back
    assert {e.status for e in p.events} == {"planned"}
    (row,) = inbound_rows()
    assert row.parse["actions"] == ["asked_back:nothing_open"]


def test_a_reschedule_request_flags_the_event_and_raises_a_nurse_item(app_ctx: Flask) -> None:
    p = patient(locale="zh")
    reminder = _sent_reminder(p)
    result = receive(inbound_form(p.phone_e164, "那天来不了，能改期吗"), MONDAY_10)
    assert "改期" in (result.reply or "")
    events = _events(p, reminder.event_keys)
    assert all("reschedule_requested" in e.flags for e in events)
    assert {e.status for e in events} == {"planned"}
    (alert,) = alerts()
    assert (alert.kind, alert.level, alert.patient_id) == ("reschedule", "amber", p.id)
    assert alert.next_escalation_at is not None


# -- acknowledgements ----------------------------------------------------------------------------


def test_amber_and_green_reports_get_an_alert_or_a_note_and_say_who_calls_when(
    app_ctx: Flask,
) -> None:
    p = patient(locale="zh")
    add_rota()  # a nurse on call: the promised call is one the rota can keep
    amber = receive(inbound_form(p.phone_e164, "今天拉了五次"), MONDAY_10)
    green = receive(inbound_form(p.phone_e164, "有点累"), MONDAY_10)
    # Monday 10:00 + 4 working hours = 14:00 the same day; + 8 working hours = Tuesday 09:00.
    assert "研究护士" in amber.reply and "今天14:00" in amber.reply
    assert "研究护士" in green.reply and "明天09:00" in green.reply
    assert [(a.level, a.kind) for a in alerts()] == [("amber", "symptom"), ("green", "symptom")]
    assert alerts()[1].next_escalation_at is None


def test_answers_are_in_english_for_english_speakers(app_ctx: Flask) -> None:
    p = patient(locale="en")
    add_rota()
    reply = receive(inbound_form(p.phone_e164, "I threw up twice"), MONDAY_10).reply
    assert reply and "A study nurse will call you by today at 14:00" in reply


def test_a_worse_grade_than_last_time_is_amber(app_ctx: Flask) -> None:
    p = patient(locale="en")
    first = receive(inbound_form(p.phone_e164, "a little nausea"), MONDAY_10)
    again = receive(inbound_form(p.phone_e164, "nausea is severe now"), MONDAY_10)
    assert (first.priority, again.priority) == ("green", "amber")
    assert any("worse_by_2" in r for r in alerts()[-1].reasons)


# -- when interpretation fails -------------------------------------------------------------------


def test_an_interpretation_failure_still_answers_safely_and_leaves_a_nurse_item(
    client: FlaskClient,
) -> None:
    p = patient(locale="en")
    p.timezone = "Mars/Olympus_Mons"  # breaks the deadline computation inside processing
    db.session.commit()
    response = post_inbound(client, inbound_form(p.phone_e164, "I feel a bit tired"))
    assert response.status_code == 200
    assert "a study nurse will read it" in twiml_message(response)
    (row,) = inbound_rows()
    assert (row.status == "failed" and "ZoneInfo" in (row.error or "")) or row.error
    (alert,) = alerts()
    assert (alert.kind, alert.level, alert.patient_id) == ("review", "amber", p.id)
    assert alert.reasons[0].startswith("interpretation failed")


def test_a_message_left_unprocessed_is_picked_up_and_answered_by_sms(app_ctx: Flask) -> None:
    p = patient(locale="en")
    form = inbound_form(p.phone_e164, "HELP")
    store(InboundForm.parse(form), MONDAY_10)
    assert process_stale(MONDAY_10 + timedelta(seconds=30), older_than=timedelta(minutes=2)) == 0
    assert process_stale(MONDAY_10 + timedelta(minutes=3), older_than=timedelta(minutes=2)) == 1
    (row,) = inbound_rows()
    assert row.status == "processed" and row.intent == "help"
    reply = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "reply"))
    assert reply is not None and reply.patient_id == p.id and "Reply 1 to confirm" in reply.body


# -- the interpretation's commit (PostgreSQL) ------------------------------------------------------


def _synchronous_commit_while_applying(
    app: Flask, monkeypatch: pytest.MonkeyPatch, enabled: bool
) -> list[str]:
    """``synchronous_commit`` as the writer saw it, and as a later transaction sees it."""
    seen: list[str] = []
    real_apply = replies.apply

    def spying_apply(*args: Any, **kwargs: Any) -> Any:
        seen.append(db.session.scalar(text("SHOW synchronous_commit")))
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(replies, "apply", spying_apply)
    monkeypatch.setitem(app.config, "INBOUND_ASYNC_COMMIT", enabled)
    p = patient(locale="en")
    result = receive(inbound_form(p.phone_e164, "I feel a bit tired"), MONDAY_10)
    assert result.status == "processed"
    seen.append(db.session.scalar(text("SHOW synchronous_commit")))
    db.session.rollback()
    return seen


def test_on_postgresql_only_the_interpretation_commits_without_waiting_for_the_flush(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    # off inside the processing transaction only: the pooled connection is back to 'on' after
    assert _synchronous_commit_while_applying(app_ctx, monkeypatch, True) == ["off", "on"]
    (row,) = inbound_rows()
    assert row.status == "processed"


def test_with_inbound_async_commit_off_every_commit_waits_for_the_flush(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    assert _synchronous_commit_while_applying(app_ctx, monkeypatch, False) == ["on", "on"]
