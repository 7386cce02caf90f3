"""Status callbacks, field by field: what a callback stores on the row, its history and the patient.

Written against the survivors of the first mutation run of status_callbacks.py (docs/testing.md):
the webhook tests checked the status a callback reached, not the claim it clears, the times it
stores, the provider's id and error it keeps, or the history line it writes. Expected values come
from the module's contract (its docstring and the README's "Delivery status callbacks"), written
out here by hand.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from app.clock import utcnow
from app.extensions import db
from app.models import AuditEntry, OutboxMessage, Patient
from app.services.messaging import status_callbacks
from app.services.messaging.status_callbacks import (
    CallbackResult,
    apply_status_callback,
    error_text,
)
from tests.integration.sms_support import add_due_messages, fresh_message, last_history

SID = "SM" + "a" * 32
WORKER = "worker-7"


def _at() -> datetime:
    """The callback's own time: not the clock's now, so a value taken from the clock shows."""
    return utcnow() + timedelta(minutes=5)


def _row_in(status: str, **values: Any) -> int:
    """One outbox row put into ``status`` (with ``values``) as the sender would have left it."""
    [message_id] = add_due_messages(1)
    db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message_id).values(status=status, **values)
    )
    db.session.commit()
    return message_id


def test_error_text_explains_known_codes_and_names_unknown_ones() -> None:
    assert error_text(None) is None
    assert error_text(21610) == "recipient opted out (STOP / TD)"
    assert error_text(30003) == "handset unreachable (switched off or out of coverage)"
    assert error_text(12345) == "provider error 12345"


@pytest.mark.parametrize("held", ["planned", "claimed", "unknown"])
def test_a_callback_for_a_row_the_sender_still_holds_clears_its_claim_and_stamps_the_send(
    app_ctx: Flask, held: str
) -> None:
    lease = utcnow() + timedelta(minutes=2)
    message_id = _row_in(held, claimed_by=WORKER, claimed_until=lease, provider_id=SID)
    at = _at()

    result = apply_status_callback(SID, "sent", message_id=message_id, at=at)

    assert (result.outcome, result.status) == ("updated", "sent")
    row = fresh_message(message_id)
    assert (row.status, row.claimed_by, row.claimed_until) == ("sent", None, None)
    assert row.sent_at == at
    assert (row.provider_id, row.provider_status) == (SID, "sent")
    assert row.updated_at == at


def test_a_callback_keeps_the_send_time_the_sender_already_stored(app_ctx: Flask) -> None:
    sent = utcnow() - timedelta(minutes=3)
    message_id = _row_in("unknown", sent_at=sent, claimed_by=WORKER)

    apply_status_callback(SID, "delivered", message_id=message_id, at=_at())

    row = fresh_message(message_id)
    assert row.sent_at == sent
    assert row.provider_id == SID  # found by the ?m= hint, the SID stored from the callback


def test_a_callback_for_a_row_already_at_the_provider_leaves_its_send_time(
    app_ctx: Flask,
) -> None:
    sent = utcnow() - timedelta(minutes=3)
    message_id = _row_in("queued", provider_id=SID, sent_at=sent, claimed_by=WORKER)

    apply_status_callback(SID, "sent", at=_at())

    row = fresh_message(message_id)
    assert (row.status, row.sent_at) == ("sent", sent)
    assert row.claimed_by == WORKER  # only a held row's claim is the callback's to clear


def test_delivered_stamps_the_delivery_time_and_sent_does_not(app_ctx: Flask) -> None:
    message_id = _row_in("queued", provider_id=SID, sent_at=utcnow())
    sent_at, delivered_at = _at(), _at() + timedelta(seconds=30)

    apply_status_callback(SID, "sent", at=sent_at)
    assert fresh_message(message_id).delivered_at is None
    apply_status_callback(SID, "delivered", at=delivered_at)

    row = fresh_message(message_id)
    assert (row.status, row.delivered_at) == ("delivered", delivered_at)
    history = last_history(message_id)
    assert (history.from_status, history.to_status, history.detail) == (
        "sent",
        "delivered",
        "delivered",
    )
    assert history.at == delivered_at


def test_a_failure_with_a_code_keeps_the_provider_id_and_explains_the_code(
    app_ctx: Flask,
) -> None:
    message_id = _row_in("claimed", claimed_by=WORKER)
    at = _at()

    apply_status_callback(SID, "undelivered", error_code=30003, message_id=message_id, at=at)

    row = fresh_message(message_id)
    assert (row.status, row.provider_id, row.provider_status) == ("undelivered", SID, "undelivered")
    assert (row.error_code, row.error_reason) == (30003, "undelivered")
    assert row.error_message == "handset unreachable (switched off or out of coverage)"
    assert row.delivered_at is None
    history = last_history(message_id)
    assert history.detail == "undelivered (error 30003)"
    assert history.at == at


def test_an_unknown_error_code_is_stored_with_a_generic_explanation(app_ctx: Flask) -> None:
    message_id = _row_in("sent", provider_id=SID, sent_at=utcnow())

    apply_status_callback(SID, "failed", error_code=30999, at=_at())

    row = fresh_message(message_id)
    assert (row.error_code, row.error_message) == (30999, "provider error 30999")


@pytest.mark.parametrize("status", ["failed", "undelivered"])
def test_a_domestic_providers_error_text_is_stored_whole_and_shown_short(
    app_ctx: Flask, status: str
) -> None:
    message_id = _row_in("sent", provider_id=SID, sent_at=utcnow())
    text = "号码状态异常:" + "x" * 2100

    apply_status_callback(SID, status.upper(), error_message=text, at=_at())

    row = fresh_message(message_id)
    assert (row.status, row.provider_id, row.provider_status) == (status, SID, status.upper())
    assert row.error_reason == status
    assert row.error_message == text[:2000]
    assert last_history(message_id).detail == f"{status.upper()} ({text[:200]})"


def test_an_error_text_on_a_delivery_is_not_an_error(app_ctx: Flask) -> None:
    message_id = _row_in("sent", provider_id=SID, sent_at=utcnow())

    apply_status_callback(SID, "delivered", error_message="DELIVRD", at=_at())

    row = fresh_message(message_id)
    assert (row.status, row.error_reason, row.error_message) == ("delivered", None, None)
    assert last_history(message_id).detail == "delivered"


@pytest.mark.parametrize("settled", ["cancelled", "blocked", "expired"])
def test_a_row_outside_the_send_order_is_never_moved(app_ctx: Flask, settled: str) -> None:
    message_id = _row_in(settled, provider_id=SID)

    result = apply_status_callback(SID, "delivered", at=_at())

    assert (result.outcome, result.status) == ("ignored", settled)
    row = fresh_message(message_id)
    assert (row.status, row.delivered_at) == (settled, None)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(21610, "recipient opted out (STOP / TD)"), (21211, "invalid 'To' number")],
)
def test_the_patients_audit_says_what_the_provider_reported(
    app_ctx: Flask, code: int, reason: str
) -> None:
    message_id = _row_in("sent", provider_id=SID, sent_at=utcnow())
    patient_id = fresh_message(message_id).patient_id

    apply_status_callback(SID, "failed", error_code=code, at=_at())

    entry = db.session.scalars(
        select(AuditEntry).where(
            AuditEntry.patient_id == patient_id, AuditEntry.entity_type == "patient"
        )
    ).one()
    assert entry.reason == f"SMS provider: {reason}"
    patient = db.session.get(Patient, patient_id)
    assert patient is not None
    if code == 21610:
        assert patient.sms_opted_out_at is not None
    else:
        assert patient.phone_status == "invalid"


def test_the_audit_names_the_channel_that_reported_it(app_ctx: Flask) -> None:
    message_id = _row_in("sent", provider_id=SID, sent_at=utcnow())
    patient_id = fresh_message(message_id).patient_id

    apply_status_callback(SID, "failed", error_code=21610, at=_at(), source="tencent-receipt")

    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.patient_id == patient_id)).one()
    assert (entry.actor, entry.action) == ("tencent-receipt", "patient.sms_opted_out")


def test_what_each_answer_reports(app_ctx: Flask) -> None:
    message_id = _row_in("queued", provider_id=SID, sent_at=utcnow())

    assert apply_status_callback(SID, "sent", at=_at()) == CallbackResult(
        "updated", message_id, "sent"
    )
    assert apply_status_callback(SID, "queued", at=_at()) == CallbackResult(
        "ignored", message_id, "sent"
    )
    assert apply_status_callback(SID, "no-such-status", at=_at()) == CallbackResult(
        "ignored", message_id, "sent"
    )
    assert apply_status_callback("SM" + "b" * 32, "sent", at=_at()) == CallbackResult(
        "unknown_message"
    )


def test_an_unknown_sid_is_logged_with_its_status(
    app_ctx: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="cadence.status_callbacks"):
        apply_status_callback("SMunknown", "delivered", at=_at())

    assert caplog.messages == ["status callback for unknown message SMunknown (delivered)"]


def test_a_callback_that_keeps_losing_the_race_gives_up_after_three_tries(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id = _row_in("queued", provider_id=SID, sent_at=utcnow())
    tries: list[int] = []

    def lost(message: int, **_: Any) -> bool:  # another writer moved the row first, every time
        tries.append(message)
        return False

    monkeypatch.setattr(status_callbacks, "transition", lost)

    assert apply_status_callback(SID, "delivered", at=_at()) == CallbackResult("ignored")
    assert tries == [message_id] * 3
    assert fresh_message(message_id).status == "queued"
