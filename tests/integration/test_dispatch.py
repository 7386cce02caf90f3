"""The dispatcher and reconciler against the fake Twilio server (real SDK, real HTTP, both DBs)."""

from __future__ import annotations

import io
import logging
from collections import Counter
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select, update

from app.clock import utcnow
from app.extensions import db
from app.models import AuditEntry, OutboxMessage, Patient
from app.services.messaging.dispatch import (
    Dispatcher,
    DispatchReport,
    DispatchSettings,
    Outcome,
    reconcile,
)
from app.sms import ConsoleGateway
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.sms_support import (
    add_due_messages,
    fake_fixture,  # noqa: F401  (the `fake` fixture)
    gateway_for,
)

FAST = DispatchSettings(
    batch_size=10,
    workers=4,
    lease=timedelta(minutes=2),
    min_lease_left=timedelta(seconds=5),
    max_attempts=6,
    retry_base=timedelta(0),
    retry_cap=timedelta(0),
    settle=timedelta(0),
)


def rows() -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .order_by(OutboxMessage.id)
            .execution_options(populate_existing=True)
        )
    )


def dispatcher(fake: FakeTwilio, settings: DispatchSettings = FAST) -> Dispatcher:
    return Dispatcher(gateway_for(fake), settings, actor="test")


def assert_sent_once(fake: FakeTwilio, messages: list[OutboxMessage]) -> None:
    """Every message reached the fake exactly once, and its row holds that message's id."""
    created = Counter((m.to, m.body) for m in fake.messages)
    by_sid = {m.sid: m for m in fake.messages}
    for row in messages:
        assert created[(row.sent_to, row.body)] == 1, row
        assert by_sid[row.provider_id].body == row.body
    assert len(fake.messages) == len(messages)


def test_due_messages_are_sent_once_and_the_provider_id_is_stored(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    add_due_messages(30)
    later = add_due_messages(5, due=utcnow() + timedelta(hours=1))

    report = dispatcher(fake).run()

    assert (report.claimed, report.sent) == (30, 30)
    sent = [r for r in rows() if r.id not in later]
    assert {r.status for r in sent} == {"queued"}  # Twilio answered "accepted"
    assert_sent_once(fake, sent)
    assert {r.status for r in rows() if r.id in later} == {"planned"}
    history = [(h.from_status, h.to_status) for h in sent[0].history]
    assert history == [("planned", "claimed"), ("claimed", "queued")]
    assert all(r.claimed_by is None and r.attempts == 1 for r in sent)


def test_a_second_run_sends_nothing_again(app_ctx: Flask, fake: FakeTwilio) -> None:
    add_due_messages(12)
    dispatcher(fake).run()

    report = dispatcher(fake).run()

    assert report.claimed == 0
    assert len(fake.create_requests()) == 12


def test_send_due_at_a_given_moment_only_takes_what_is_due_then(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    soon = utcnow() + timedelta(hours=2)
    add_due_messages(4, due=soon)

    assert dispatcher(fake).run(utcnow()).claimed == 0
    assert dispatcher(fake).run(soon).sent == 4


def test_rate_limited_messages_are_retried_with_backoff(app_ctx: Flask, fake: FakeTwilio) -> None:
    [message_id] = add_due_messages(1)
    fake.fail_next(1, "429")
    slow = DispatchSettings(
        **{**FAST.__dict__, "retry_base": timedelta(minutes=5), "retry_cap": timedelta(hours=1)}
    )

    first = dispatcher(fake, slow).run()

    [row] = rows()
    assert (first.retried, row.status, row.attempts, row.error_code) == (1, "planned", 1, 20429)
    assert row.due_at > utcnow() + timedelta(minutes=3)
    assert dispatcher(fake, slow).run().claimed == 0  # not due yet
    second = dispatcher(fake, slow).run(row.due_at + timedelta(seconds=1))
    [row] = rows()
    assert (second.sent, row.status, row.attempts) == (1, "queued", 2)
    assert len(fake.create_requests()) == 2 and len(fake.messages) == 1
    assert row.id == message_id


def test_a_run_reports_where_its_time_went(app_ctx: Flask, fake: FakeTwilio) -> None:
    add_due_messages(30)
    fake.latency = 0.02

    report = dispatcher(fake).run()

    timings = report.timings
    assert report.sent == 30
    # Batches of 10 into a window of 20: 10 + 10, 10 more once 10 are done, then an empty
    # claim ends the claiming.
    assert timings.claims == 4
    assert timings.waves >= 1
    assert timings.provider >= 30 * 0.02
    assert timings.attempts >= timings.provider
    assert timings.recorder == (db.engine.dialect.name == "postgresql")


def test_an_error_storing_outcomes_stops_the_run_and_is_raised(
    app_ctx: Flask, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL the recorder thread stores outcomes: its error must reach the caller (and
    # the run end), not vanish in the thread or leave the run waiting.
    add_due_messages(30)

    def broken(self: Dispatcher, results: list, report: object) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(Dispatcher, "record_many", broken)

    with pytest.raises(RuntimeError, match="database gone"):
        dispatcher(fake).run()
    db.session.rollback()
    assert {r.status for r in rows()} <= {"claimed", "planned"}  # sent, not stored: reconciled


def test_retries_stop_after_max_attempts_with_a_clear_reason(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    add_due_messages(1)
    fake.fail_next(10, "429")
    settings = DispatchSettings(**{**FAST.__dict__, "max_attempts": 3})

    for _ in range(5):
        dispatcher(fake, settings).run()

    [row] = rows()
    assert (row.status, row.error_reason, row.attempts) == ("failed", "retries_exhausted", 3)
    assert len(fake.create_requests()) == 3 and fake.messages == []


def test_a_500_after_creating_is_reconciled_not_resent(app_ctx: Flask, fake: FakeTwilio) -> None:
    add_due_messages(1)
    fake.fail_next(1, "500_created")

    report = dispatcher(fake).run()
    [row] = rows()
    assert (report.unknown, row.status, row.error_reason) == (1, "unknown", "ambiguous")
    assert dispatcher(fake).run().claimed == 0  # unknown rows are never resent blindly

    result = reconcile(gateway=gateway_for(fake), settings=FAST)

    [row] = rows()
    assert (result.found, result.resend) == (1, 0)
    assert row.status == "sent" and row.provider_id == fake.messages[0].sid  # as the fake says
    assert len(fake.create_requests()) == 1
    assert row.history[-1].detail.startswith("found at twilio")


def test_a_timeout_without_a_message_is_resent_after_reconciliation(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    add_due_messages(1)
    fake.fail_next(1, "timeout")

    assert dispatcher(fake).run().unknown == 1
    result = reconcile(gateway=gateway_for(fake), settings=FAST)
    assert (result.found, result.resend) == (0, 1)
    assert dispatcher(fake).run().sent == 1

    [row] = rows()
    assert row.status == "queued" and row.attempts == 2
    assert_sent_once(fake, [row])


def test_the_reconciler_waits_for_the_settle_delay(app_ctx: Flask, fake: FakeTwilio) -> None:
    add_due_messages(1)
    fake.fail_next(1, "500")
    dispatcher(fake).run()
    patient = DispatchSettings(**{**FAST.__dict__, "settle": timedelta(minutes=1)})

    assert reconcile(gateway=gateway_for(fake), settings=patient).checked == 0
    assert rows()[0].status == "unknown"


def test_an_opted_out_recipient_fails_and_updates_the_patient(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    add_due_messages(3, per_patient=3, due=utcnow() - timedelta(minutes=1))
    add_due_messages(1, per_patient=1, due=utcnow() + timedelta(days=1))
    first, *_ = rows()
    patient = db.session.get(Patient, first.patient_id)
    fake.set_number_error(patient.phone_e164, 21610)
    single = DispatchSettings(**{**FAST.__dict__, "workers": 1, "batch_size": 1})

    report = dispatcher(fake, single).run(limit=1)

    db.session.refresh(patient)
    assert report.failed == 1
    assert patient.sms_opted_out_at is not None
    states = {r.id: (r.status, r.error_reason) for r in rows() if r.patient_id == patient.id}
    assert states[first.id] == ("failed", "opted_out")
    assert sorted(states.values())[0:2] == [("cancelled", "opted_out")] * 2
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "patient.sms_opted_out")
    )
    assert entry is not None and entry.patient_id == patient.id and entry.actor == "test"
    assert "21610" in entry.reason
    assert [r.status for r in rows() if r.patient_id != patient.id] == ["planned"]


def test_an_invalid_number_marks_the_phone_invalid(app_ctx: Flask, fake: FakeTwilio) -> None:
    add_due_messages(1)
    [row] = rows()
    patient = db.session.get(Patient, row.patient_id)
    fake.set_number_error(patient.phone_e164, 21614)

    dispatcher(fake).run()

    db.session.refresh(patient)
    assert patient.phone_status == "invalid"
    assert (rows()[0].status, rows()[0].error_reason, rows()[0].error_code) == (
        "failed",
        "invalid_number",
        21614,
    )


def test_expired_messages_are_not_sent(app_ctx: Flask, fake: FakeTwilio) -> None:
    add_due_messages(2, due=utcnow() - timedelta(days=3))

    report = dispatcher(fake).run()

    assert report.expired == 2 and fake.requests == []
    assert {r.status for r in rows()} == {"expired"}


def test_a_long_overdue_reminder_is_not_sent_but_a_moved_notice_is(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    late, notice = add_due_messages(2, due=utcnow() - timedelta(hours=13))
    db.session.get(OutboxMessage, notice).kind = "moved"
    db.session.commit()
    strict = DispatchSettings(**{**FAST.__dict__, "max_lateness": timedelta(hours=12)})

    report = dispatcher(fake, strict).run()

    assert (report.expired, report.sent) == (1, 1)
    by_id = {r.id: r for r in rows()}
    assert (by_id[late].status, by_id[late].error_reason) == ("expired", "late")
    assert by_id[notice].status == "queued"
    assert [m.body for m in fake.messages] == [by_id[notice].body]


def test_a_stopping_dispatcher_releases_what_it_has_not_started(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    add_due_messages(5)
    d = dispatcher(fake)
    report = DispatchReport()

    for item in d.claim(utcnow(), 5):
        d.record(item, d.attempt(item, should_stop=lambda: True), report)
    db.session.commit()

    assert report.released == 5
    assert {(r.status, r.attempts) for r in rows()} == {("planned", 0)}
    assert fake.requests == []


def test_a_short_lease_is_never_used_to_start_a_send(app_ctx: Flask, fake: FakeTwilio) -> None:
    add_due_messages(1)
    short = DispatchSettings(
        **{**FAST.__dict__, "lease": timedelta(seconds=2), "min_lease_left": timedelta(seconds=5)}
    )

    report = dispatcher(fake, short).run()

    assert report.released == 1 and fake.requests == []


def test_an_expired_lease_is_reconciled_before_any_resend(app_ctx: Flask, fake: FakeTwilio) -> None:
    add_due_messages(6)
    crashed = dispatcher(fake)
    claimed = crashed.claim(utcnow(), 6)
    gateway = gateway_for(fake)
    for item in claimed[:3]:  # sent, then the process died before recording anything
        gateway.send(item.to, item.body)
    later = lambda: utcnow() + timedelta(minutes=10)  # noqa: E731

    result = reconcile(gateway=gateway, settings=FAST, clock=later)
    dispatcher(fake).run(later())

    assert (result.lease_expired, result.found, result.resend) == (6, 3, 3)
    assert {r.status for r in rows()} == {"queued", "sent"}  # sent: as found at the provider
    assert_sent_once(fake, rows())


def test_twenty_percent_faults_end_sent_once_or_clearly_failed(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    add_due_messages(150)
    fake.set_fault_rate(
        0.2, kinds=("500", "429", "timeout", "500_created", "timeout_created"), seed=7
    )
    settings = DispatchSettings(**{**FAST.__dict__, "workers": 8, "max_attempts": 12})

    for _round in range(40):
        dispatcher(fake, settings).run()
        reconcile(gateway=gateway_for(fake), settings=settings)
        pending = [r for r in rows() if r.status in ("planned", "claimed", "unknown")]
        if not pending:
            break

    final = rows()
    assert {r.status for r in final} <= {"queued", "sent", "failed"}
    failed = [r for r in final if r.status == "failed"]
    assert all(r.error_reason == "retries_exhausted" and r.error_message for r in failed)
    sent = [r for r in final if r.status in ("queued", "sent")]
    assert_sent_once(fake, sent) if not failed else None
    created = Counter((m.to, m.body) for m in fake.messages)
    assert all(count == 1 for count in created.values())
    assert all(created[(r.sent_to, r.body)] == 1 for r in sent)
    faults = Counter(r.fault for r in fake.create_requests() if r.fault)
    assert {"500", "429", "timeout", "500_created", "timeout_created"} <= set(faults)
    reconciled = [
        r for r in final if any((h.detail or "").startswith("found at") for h in r.history)
    ]
    assert reconciled  # some ambiguous sends were settled by asking, not by resending


def test_quiet_hours_at_send_time_postpone_a_late_message_to_the_morning(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    night = datetime(2026, 3, 3, 22, 30, tzinfo=shanghai)
    morning = datetime(2026, 3, 4, 8, 0, tzinfo=shanghai)
    add_due_messages(2, due=night - timedelta(hours=1))  # e.g. after an outage
    quiet = DispatchSettings(**{**FAST.__dict__, "quiet_hours": (time(21), time(8))})

    report = Dispatcher(gateway_for(fake), quiet, clock=lambda: night).run()

    assert (report.deferred, report.sent) == (2, 0) and fake.requests == []
    assert {(r.status, r.due_at, r.attempts) for r in rows()} == {("planned", morning, 0)}
    assert Dispatcher(gateway_for(fake), quiet, clock=lambda: night).run().claimed == 0
    later = Dispatcher(gateway_for(fake), quiet, clock=lambda: morning + timedelta(minutes=1))
    assert later.run().sent == 2


def test_the_console_gateway_sends_due_messages_in_process(app_ctx: Flask) -> None:
    add_due_messages(3)
    console = ConsoleGateway()

    report = Dispatcher(console, FAST, actor="test").run()

    assert report.sent == 3
    assert {r.status for r in rows()} == {"sent"}
    assert sorted(m.body for m in console.sent) == sorted(r.body for r in rows())


def test_a_release_after_the_lease_passed_on_is_counted_released_not_lost(
    app_ctx: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    [message_id] = add_due_messages(1)
    paused = Dispatcher(ConsoleGateway(stream=io.StringIO()), FAST, actor="test")
    [claimed] = paused.claim(utcnow(), 1)
    # while this dispatcher was paused its lease expired and another one took the row
    db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id == message_id).values(claimed_by="other")
    )
    db.session.commit()
    report = DispatchReport()

    with caplog.at_level(logging.INFO, logger="cadence.dispatch"):
        paused.record(claimed, Outcome("release", at=utcnow()), report)
    db.session.commit()

    assert (report.released, report.lost) == (1, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "released unsent" in caplog.text
    row = db.session.get(OutboxMessage, message_id)
    assert row is not None and (row.status, row.claimed_by) == ("claimed", "other")
