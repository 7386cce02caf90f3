"""Dispatch outcomes, field by field: what the dispatcher stores for each way a send can end.

Written against the survivors of the first mutation run of dispatch.py (docs/testing.md): the
dispatch tests checked the status a message reached, not the history line, the time, the reason,
the attempt count or the run's counters. Each outcome is recorded here for messages the real
claim leased, at a time other than the clock's now; the expected texts are written out by hand.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select, update

from app.clock import utcnow
from app.extensions import db
from app.models import AuditEntry, CheckinSession, OutboxMessage, OutboxStatusChange, Patient
from app.services.messaging.dispatch import (
    Claimed,
    Dispatcher,
    DispatchReport,
    DispatchSettings,
    Outcome,
    reconcile,
)
from app.sms import ConsoleGateway
from app.sms.base import (
    AmbiguousSmsError,
    ProviderMessage,
    RetryableSmsError,
    SentMessage,
    SmsError,
    TerminalSmsError,
)
from tests.integration.sms_support import add_due_messages, fresh_message, last_history

SETTINGS = DispatchSettings(workers=1, batch_size=10, settle=timedelta(0), max_attempts=3)
NAME = "dispatcher-test"


def _claim(count: int, per_patient: int = 10) -> tuple[Dispatcher, list[Claimed]]:
    add_due_messages(count, per_patient=per_patient)
    dispatcher = Dispatcher(ConsoleGateway(), SETTINGS, actor="user:nurse1", name=NAME)
    claimed = dispatcher.claim(utcnow(), count)
    assert len(claimed) == count
    return dispatcher, claimed


def _at() -> datetime:
    """The outcome's time: later than the clock's now, so a time taken from the clock shows."""
    return utcnow() + timedelta(minutes=7)


def _record_all(dispatcher: Dispatcher, claimed: list[Claimed], outcome: Outcome) -> DispatchReport:
    report = DispatchReport()
    for one in claimed:
        dispatcher.record(one, outcome, report)
    db.session.commit()
    return report


def _assert_moved(message_id: int, status: str, detail: str, at: datetime) -> OutboxMessage:
    row = fresh_message(message_id)
    assert (row.status, row.claimed_by, row.claimed_until) == (status, None, None)
    assert row.updated_at == at
    history = last_history(message_id)
    assert (history.from_status, history.to_status) == ("claimed", status)
    assert (history.detail, history.at, history.source) == (detail, at, f"dispatcher:{NAME}")
    return row


QUIET_UNTIL = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)
LIMIT_UNTIL = datetime(2026, 3, 5, 8, 0, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "fields", "counter", "status", "detail", "reason", "due_at"),
    [
        (
            "blocked",
            {"blocked": "opted_out"},
            "blocked",
            "blocked",
            "not sent: patient opted_out",
            "opted_out",
            None,
        ),
        (
            "expired",
            {"expired": "late"},
            "expired",
            "expired",
            "not sent: more than the allowed delay after its planned time",
            "late",
            None,
        ),
        (
            "expired",
            {"expired": "expired"},
            "expired",
            "expired",
            "not sent: too late, the event is over",
            "expired",
            None,
        ),
        (
            "quiet",
            {"quiet_until": QUIET_UNTIL},
            "deferred",
            "planned",
            "quiet hours for the patient: waits until 2026-03-04 23:30 UTC",
            None,
            QUIET_UNTIL,
        ),
        (
            "limited",
            {"limit_until": LIMIT_UNTIL},
            "limited",
            "planned",
            "provider frequency limit for this number: waits until 2026-03-05 08:00:15 UTC",
            None,
            LIMIT_UNTIL,
        ),
        (
            "release",
            {},
            "released",
            "planned",
            "released unsent (stopping or lease too short)",
            None,
            "unchanged",
        ),
    ],
)
def test_each_unsent_outcome_is_stored_with_its_reason_and_counted_once_per_message(
    app_ctx: Flask,
    kind: str,
    fields: dict[str, object],
    counter: str,
    status: str,
    detail: str,
    reason: str | None,
    due_at: datetime | str | None,
) -> None:
    dispatcher, claimed = _claim(2)
    due_before = {one.id: fresh_message(one.id).due_at for one in claimed}
    at = _at()

    report = _record_all(
        dispatcher, [replace(one, **fields) for one in claimed], Outcome(kind, at=at)
    )

    assert getattr(report, counter) == 2
    assert report.lost == 0
    for one in claimed:
        row = _assert_moved(one.id, status, detail, at)
        assert row.error_reason == reason
        if status == "planned":
            # the claim counted an attempt; nothing reached the provider, so it is given back
            assert row.attempts == one.attempts - 1 == 0
        if due_at == "unchanged":
            assert row.due_at == due_before[one.id]
        elif due_at is not None:
            assert row.due_at == due_at


def test_a_limit_given_in_local_time_is_waited_for_and_shown_in_utc(app_ctx: Flask) -> None:
    dispatcher, [claimed] = _claim(1)
    local = datetime(2026, 3, 6, 0, 0, 15, tzinfo=ZoneInfo("Asia/Shanghai"))

    _record_all(dispatcher, [replace(claimed, limit_until=local)], Outcome("limited", at=_at()))

    assert last_history(claimed.id).detail == (
        "provider frequency limit for this number: waits until 2026-03-05 16:00:15 UTC"
    )


def test_a_later_attempt_gives_back_exactly_one_attempt(app_ctx: Flask) -> None:
    dispatcher, [claimed] = _claim(1)
    db.session.execute(update(OutboxMessage).values(attempts=3))
    db.session.commit()

    _record_all(dispatcher, [replace(claimed, attempts=3)], Outcome("release", at=_at()))

    assert fresh_message(claimed.id).attempts == 2


def test_an_ambiguous_send_is_counted_per_message_and_left_to_reconcile(app_ctx: Flask) -> None:
    dispatcher, claimed = _claim(2)
    at = _at()

    report = _record_all(
        dispatcher, claimed, Outcome("ambiguous", error=SmsError("timed out"), at=at)
    )

    assert report.unknown == 2
    for one in claimed:
        row = _assert_moved(one.id, "unknown", "may have been sent, to reconcile: timed out", at)
        assert (row.error_reason, row.error_message) == ("ambiguous", "timed out")


def test_a_refusal_without_a_reason_is_a_rejection_counted_per_message(app_ctx: Flask) -> None:
    dispatcher, claimed = _claim(2)
    at = _at()

    report = _record_all(
        dispatcher, claimed, Outcome("terminal", error=SmsError("bad body"), at=at)
    )

    assert report.failed == 2
    for one in claimed:
        row = _assert_moved(one.id, "failed", "refused: bad body", at)
        assert row.error_reason == "rejected"


def test_an_opt_out_refusal_marks_the_patient_at_the_outcomes_time(app_ctx: Flask) -> None:
    dispatcher, [claimed] = _claim(1)
    at = _at()
    error = TerminalSmsError("recipient unsubscribed", reason="opted_out", provider_code=21610)

    _record_all(dispatcher, [claimed], Outcome("terminal", error=error, at=at))

    row = _assert_moved(claimed.id, "failed", "refused: recipient unsubscribed (code 21610)", at)
    assert row.error_reason == "opted_out"
    patient = db.session.get(Patient, claimed.patient_id)
    assert patient is not None and patient.sms_opted_out_at == at
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.patient_id == claimed.patient_id)
    ).one()
    assert (entry.actor, entry.action) == ("user:nurse1", "patient.sms_opted_out")
    assert entry.reason == "SMS provider: recipient unsubscribed (code 21610)"


def test_a_refusal_whose_lease_was_lost_marks_nobody(app_ctx: Flask) -> None:
    dispatcher, [claimed] = _claim(1)
    db.session.execute(update(OutboxMessage).values(claimed_by="another-dispatcher"))
    db.session.commit()
    error = TerminalSmsError("recipient unsubscribed", reason="opted_out", provider_code=21610)

    report = _record_all(dispatcher, [claimed], Outcome("terminal", error=error, at=_at()))

    assert report.lost == 1
    patient = db.session.get(Patient, claimed.patient_id)
    assert patient is not None and patient.sms_opted_out_at is None
    assert fresh_message(claimed.id).status == "claimed"


SID = "SM" + "c" * 32


def _callback_already_stored(message_id: int, sid: str) -> None:
    """A delivery callback that beat the API answer has moved the row and stored its SID."""
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status="delivered", provider_id=sid, claimed_by=None, claimed_until=None)
    )
    db.session.commit()


def test_a_send_already_settled_by_its_callback_is_not_lost(app_ctx: Flask) -> None:
    dispatcher, [claimed] = _claim(1)
    _callback_already_stored(claimed.id, SID)

    sent = SentMessage(provider_id=SID, status="queued")
    report = _record_all(dispatcher, [claimed], Outcome("sent", sent=sent, at=_at()))

    assert (report.sent, report.lost) == (1, 0)
    assert fresh_message(claimed.id).status == "delivered"


def test_a_send_whose_row_another_sid_settled_is_counted_lost(app_ctx: Flask) -> None:
    dispatcher, [claimed] = _claim(1)
    _callback_already_stored(claimed.id, "SM" + "d" * 32)

    sent = SentMessage(provider_id=SID, status="queued")
    report = _record_all(dispatcher, [claimed], Outcome("sent", sent=sent, at=_at()))

    assert report.lost == 1


class _LookupGateway(ConsoleGateway):
    """A gateway whose provider holds nothing; it remembers what the reconciler asked."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[tuple[str, datetime, datetime]] = []

    def find_sent(self, to: str, since: datetime, until: datetime) -> list[ProviderMessage]:
        self.lookups.append((to, since, until))
        return []


PAGED = "+8613800138000"
SENT_TO = "+8613900139555"


@pytest.mark.parametrize(
    ("values", "asked"),
    [
        ({"sent_to": SENT_TO}, SENT_TO),  # where the send went
        ({"sent_to": None, "recipient": PAGED, "patient_id": None}, PAGED),  # a page to staff
        ({"sent_to": None}, "patient"),  # never sent: the patient's own number
    ],
)
def test_the_reconciler_asks_the_provider_about_the_number_it_went_to(
    app_ctx: Flask, values: dict[str, object], asked: str
) -> None:
    [message_id] = add_due_messages(1)
    created = fresh_message(message_id).created_at
    patient_phone = fresh_message(message_id).patient.phone_e164
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status="unknown", updated_at=utcnow() - timedelta(hours=1), **values)
    )
    db.session.commit()
    gateway = _LookupGateway()
    now = utcnow()

    report = reconcile(gateway=gateway, settings=SETTINGS, clock=lambda: now, source="test")

    margin = SETTINGS.lookup_margin
    expected = patient_phone if asked == "patient" else asked
    assert gateway.lookups == [(expected, created - margin, now + margin)]
    assert (report.checked, report.resend) == (1, 1)
    row = fresh_message(message_id)
    assert (row.status, row.due_at) == ("planned", now)
    assert last_history(message_id).detail == "not found at console: safe to send again"


def test_the_reconciler_looks_back_from_the_first_attempt(app_ctx: Flask) -> None:
    [message_id] = add_due_messages(1)
    first = utcnow() - timedelta(days=2)
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status="unknown", first_attempt_at=first, updated_at=utcnow() - timedelta(hours=1))
    )
    db.session.commit()
    gateway = _LookupGateway()

    reconcile(gateway=gateway, settings=SETTINGS, source="test")

    [(_, since, _)] = gateway.lookups
    assert since == first - SETTINGS.lookup_margin


class _FoundGateway(ConsoleGateway):
    """A gateway whose provider holds exactly the messages it is given."""

    def __init__(self, held: list[ProviderMessage] | None = None, fail: bool = False) -> None:
        super().__init__()
        self.held = held or []
        self.fail = fail

    def find_sent(self, to: str, since: datetime, until: datetime) -> list[ProviderMessage]:
        if self.fail:
            raise SmsError("lookup timed out")
        return self.held


def _unknown(count: int) -> list[int]:
    ids = add_due_messages(count)
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(status="unknown", updated_at=utcnow() - timedelta(hours=1))
    )
    db.session.commit()
    return ids


def test_a_failed_lookup_leaves_each_message_unknown_and_says_so(
    app_ctx: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _unknown(2)

    with caplog.at_level("WARNING", logger="cadence.dispatch"):
        report = reconcile(gateway=_FoundGateway(fail=True), settings=SETTINGS, source="test")

    assert (report.checked, report.still_unknown, report.found, report.resend) == (2, 2, 0, 0)
    assert [fresh_message(i).status for i in ids] == ["unknown", "unknown"]
    assert [m for m in caplog.messages if "lookup" in m] == [
        f"reconcile {i}: provider lookup failed: lookup timed out" for i in ids
    ]


@pytest.mark.parametrize(
    ("provider_status", "provider", "status", "carrier"),
    [
        ("delivered", "tencent", "delivered", "tencent"),
        ("something-new", None, "queued", "console"),  # a status we do not know: at the provider
    ],
)
def test_a_message_found_at_the_provider_is_settled_at_the_reconcilers_time(
    app_ctx: Flask, provider_status: str, provider: str | None, status: str, carrier: str
) -> None:
    [message_id] = _unknown(1)
    row = fresh_message(message_id)
    created = utcnow() - timedelta(minutes=50)
    found = ProviderMessage(
        provider_id=SID,
        to=row.patient.phone_e164,
        body=row.body,
        status=provider_status,
        date_created=created,
        provider=provider,
    )
    now = utcnow() + timedelta(minutes=3)

    report = reconcile(
        gateway=_FoundGateway([found]), settings=SETTINGS, clock=lambda: now, source="test"
    )

    assert report.found == 1
    row = fresh_message(message_id)
    assert (row.status, row.provider, row.provider_id, row.sent_at) == (
        status,
        carrier,
        SID,
        created,
    )
    history = last_history(message_id)
    assert history.detail == f"found at {carrier} as {SID} ({provider_status})"
    assert history.at == now


def test_a_refusal_for_now_is_retried_later_with_the_error_kept(app_ctx: Flask) -> None:
    dispatcher, claimed = _claim(2)  # first attempts: max_attempts is 3
    at = _at()

    report = _record_all(dispatcher, claimed, Outcome("retry", error=SmsError("busy"), at=at))

    assert (report.retried, report.failed) == (2, 0)
    base = SETTINGS.retry_base  # after one failed try: the base wait, +-20 %
    for one in claimed:
        row = fresh_message(one.id)
        assert at + base * 0.8 <= row.due_at <= at + base * 1.2
        detail = f"retry at {row.due_at:%Y-%m-%d %H:%M:%S} UTC: busy"
        row = _assert_moved(one.id, "planned", detail, at)
        assert (row.error_reason, row.error_message) == ("retrying", "busy")


def test_the_last_allowed_attempt_fails_for_good_and_is_counted_per_message(
    app_ctx: Flask,
) -> None:
    dispatcher, claimed = _claim(2)
    at = _at()
    last = [replace(one, attempts=SETTINGS.max_attempts) for one in claimed]

    report = _record_all(dispatcher, last, Outcome("retry", error=SmsError("busy"), at=at))

    assert (report.failed, report.retried) == (2, 0)
    for one in claimed:
        row = _assert_moved(one.id, "failed", "gave up after 3 attempts: busy", at)
        assert row.error_reason == "retries_exhausted"


@pytest.mark.parametrize("kind", ["quiet", "limited"])
def test_waiting_gives_back_exactly_one_attempt(app_ctx: Flask, kind: str) -> None:
    dispatcher, [claimed] = _claim(1)
    db.session.execute(update(OutboxMessage).values(attempts=3))
    db.session.commit()
    held = replace(claimed, attempts=3, quiet_until=QUIET_UNTIL, limit_until=LIMIT_UNTIL)

    _record_all(dispatcher, [held], Outcome(kind, at=_at()))

    assert fresh_message(claimed.id).attempts == 2


def test_only_a_lease_that_has_passed_is_expired_and_left_to_reconcile(app_ctx: Flask) -> None:
    now = utcnow() + timedelta(minutes=3)
    passed, ending, planned = add_due_messages(3)
    leases = {passed: now - timedelta(seconds=1), ending: now, planned: now - timedelta(hours=1)}
    for message_id, until in leases.items():
        status = "planned" if message_id == planned else "claimed"
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(status=status, claimed_by="gone", claimed_until=until)
        )
    db.session.commit()

    report = reconcile(
        gateway=_FoundGateway(fail=True), settings=SETTINGS, clock=lambda: now, source="test"
    )

    assert report.lease_expired == 1
    assert [fresh_message(i).status for i in (passed, ending, planned)] == [
        "unknown",
        "claimed",
        "planned",
    ]
    assert fresh_message(passed).error_reason == "lease_expired"
    history = last_history(passed)
    assert (history.from_status, history.to_status, history.at) == ("claimed", "unknown", now)
    assert history.detail == "lease expired (dispatcher stopped mid-send?): may have been sent"


def _at_provider(row: OutboxMessage, sid: str, minutes_ago: int, **fields: str) -> ProviderMessage:
    return ProviderMessage(
        provider_id=sid,
        to=row.patient.phone_e164,
        body=fields.get("body", row.body),
        status="delivered",
        date_created=utcnow() - timedelta(minutes=minutes_ago),
        reference=fields.get("reference"),
    )


def test_the_reconciler_takes_the_earliest_copy_no_other_row_owns(app_ctx: Flask) -> None:
    [message_id] = _unknown(1)
    row = fresh_message(message_id)
    owned = "SM" + "e" * 32
    other_id = add_due_messages(1)[0]
    db.session.execute(  # another row already stored this SID: never ours
        update(OutboxMessage).where(OutboxMessage.id == other_id).values(provider_id=owned)
    )
    db.session.commit()
    held = [
        _at_provider(row, owned, 50),  # the earliest, but another row's
        _at_provider(row, "SM" + "f" * 32, 30),
        _at_provider(row, SID, 40),  # the earliest that is nobody else's
        _at_provider(row, "SM" + "9" * 32, 45, body="another text"),
    ]

    reconcile(gateway=_FoundGateway(held), settings=SETTINGS, source="test")

    assert fresh_message(message_id).provider_id == SID


@pytest.mark.parametrize(
    ("case", "found"),
    [
        ("a batch's reference naming this row, another text", True),
        ("a reference naming other rows, the same text", False),
        ("no reference, the same text", True),
        ("no reference, another text", False),
    ],
)
def test_a_copy_with_a_reference_is_matched_by_it_else_by_its_text(
    app_ctx: Flask, case: str, found: bool
) -> None:
    [message_id] = _unknown(1)
    row = fresh_message(message_id)
    reference = None
    if case.startswith("a batch"):
        reference = f"{message_id - 1}-{message_id + 1}"
    elif case.startswith("a reference"):
        reference = f"{message_id + 1}-{message_id + 9}"
    body = row.body if case.endswith("the same text") else "a provider's own rendering"
    copy = _at_provider(row, SID, 20, body=body, reference=reference or "")
    copy = replace(copy, reference=reference)

    report = reconcile(gateway=_FoundGateway([copy]), settings=SETTINGS, source="test")

    assert (report.found, report.resend) == ((1, 0) if found else (0, 1))


# -- accepted sends, field by field: the single path (``record``) and the batch path --------------
# (``record_many`` with several accepted sends: one UPDATE and one history INSERT for the lot)

PATHS = ["alone", "together"]


def _store_accepted(
    dispatcher: Dispatcher,
    claimed: list[Claimed],
    outcomes: list[Outcome],
    path: str,
    report: DispatchReport,
) -> DispatchReport:
    """Store accepted sends as a run does: one ``record_many`` per message (alone) or one for
    all of them (together); commit."""
    pairs = list(zip(claimed, outcomes, strict=True))
    for wave in [[pair] for pair in pairs] if path == "alone" else [pairs]:
        dispatcher.record_many(wave, report)
    db.session.commit()
    return report


def _after_a_retry(ids: list[int]) -> None:
    """The rows carry an earlier try's error, as after a retry: an accepted send clears it."""
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(error_code=30001, error_reason="retrying", error_message="queue overflow")
    )
    db.session.commit()


SIDS = ["SM" + "1" * 32, "SM" + "2" * 32]


@pytest.mark.parametrize("path", PATHS)
def test_an_accepted_send_stores_the_providers_answer_at_the_outcomes_time(
    app_ctx: Flask, path: str
) -> None:
    dispatcher, claimed = _claim(2)
    _after_a_retry([one.id for one in claimed])
    at = _at()
    outcomes = [
        Outcome("sent", sent=SentMessage(provider_id=sid, status="sent", provider="tencent"), at=at)
        for sid in SIDS
    ]

    report = _store_accepted(dispatcher, claimed, outcomes, path, DispatchReport(sent=1))

    assert (report.sent, report.lost) == (3, 0)  # one from before, and these two
    for one, sid in zip(claimed, SIDS, strict=True):
        row = _assert_moved(one.id, "sent", f"accepted by tencent as {sid}", at)
        assert (row.provider, row.provider_id, row.provider_status) == ("tencent", sid, "sent")
        assert row.sent_at == at
        assert (row.error_code, row.error_reason, row.error_message) == (None, None, None)
        assert row.attempts == 1


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("answered", "carrier", "status", "provider"),
    [
        ("accepted", None, "queued", "console"),  # no carrier named: the gateway's own name
        ("queued", "aliyun", "queued", "aliyun"),
        ("delivered", "tencent", "delivered", "tencent"),
        ("read", None, "delivered", "console"),
        ("undelivered", None, "undelivered", "console"),
        ("something-new", None, "queued", "console"),  # a status we do not know: at the provider
        ("", None, "queued", "console"),
    ],
)
def test_an_accepted_sends_status_is_the_providers_mapped_to_ours(
    app_ctx: Flask, path: str, answered: str, carrier: str | None, status: str, provider: str
) -> None:
    dispatcher, claimed = _claim(2)
    at = _at()
    outcomes = [
        Outcome("sent", sent=SentMessage(provider_id=sid, status=answered, provider=carrier), at=at)
        for sid in SIDS
    ]

    _store_accepted(dispatcher, claimed, outcomes, path, DispatchReport())

    for one, sid in zip(claimed, SIDS, strict=True):
        row = _assert_moved(one.id, status, f"accepted by {provider} as {sid}", at)
        assert (row.provider, row.provider_id, row.provider_status) == (provider, sid, answered)


@pytest.mark.parametrize("path", PATHS)
def test_an_accepted_send_without_a_time_is_stored_at_the_dispatchers_clock(
    app_ctx: Flask, path: str
) -> None:
    _, claimed = _claim(2)
    ticked = datetime(2026, 3, 4, 1, 23, 45, tzinfo=UTC)  # not the test's fixed now
    dispatcher = Dispatcher(ConsoleGateway(), SETTINGS, name=NAME, clock=lambda: ticked)
    outcomes = [Outcome("sent", sent=SentMessage(provider_id=sid, status="sent")) for sid in SIDS]

    _store_accepted(dispatcher, claimed, outcomes, path, DispatchReport())

    for one, sid in zip(claimed, SIDS, strict=True):
        row = _assert_moved(one.id, "sent", f"accepted by console as {sid}", ticked)
        assert row.sent_at == ticked


@pytest.mark.parametrize("path", PATHS)
def test_accepted_sends_whose_lease_was_taken_over_are_counted_lost_and_left_alone(
    app_ctx: Flask, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher, claimed = _claim(4)
    taken, settled, mine = claimed[:2], claimed[2], claimed[3]
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_([one.id for one in taken]))
        .values(claimed_by="another-dispatcher")
    )
    db.session.commit()
    _callback_already_stored(settled.id, SID)
    sids = ["SM" + "a" * 32, "SM" + "b" * 32, SID, "SM" + "3" * 32]
    at = _at()
    outcomes = [
        Outcome("sent", sent=SentMessage(provider_id=s, status="sent"), at=at) for s in sids
    ]

    with caplog.at_level("ERROR", logger="cadence.dispatch"):
        report = _store_accepted(dispatcher, claimed, outcomes, path, DispatchReport())

    assert (report.sent, report.lost) == (4, 2)
    assert [m for m in caplog.messages if "not stored" in m] == [
        f"message {one.id}: outcome sent not stored, the lease was taken over" for one in taken
    ]
    for one in taken:
        row = fresh_message(one.id)
        assert (row.status, row.claimed_by, row.provider_id) == (
            "claimed",
            "another-dispatcher",
            None,
        )
        assert last_history(one.id).to_status == "claimed"
    assert fresh_message(settled.id).status == "delivered"
    assert fresh_message(mine.id).status == "sent"


@pytest.mark.parametrize("path", PATHS)
def test_a_long_dispatcher_name_is_cut_to_the_history_sources_120_characters(
    app_ctx: Flask, path: str
) -> None:
    _, claimed = _claim(2)
    name = "host-" + "x" * 110  # claimed_by holds 120 characters: the name fits, the source not
    db.session.execute(update(OutboxMessage).values(claimed_by=name))
    db.session.commit()
    dispatcher = Dispatcher(ConsoleGateway(), SETTINGS, name=name)
    outcomes = [
        Outcome("sent", sent=SentMessage(provider_id=sid, status="sent"), at=_at()) for sid in SIDS
    ]

    _store_accepted(dispatcher, claimed, outcomes, path, DispatchReport())

    for one in claimed:
        source = last_history(one.id).source
        assert source == "dispatcher:host-" + "x" * 104
        assert len(source) == 120


def _checkin_invited_by(message_id: int, patient_id: int) -> int:
    """A scheduled check-in whose first question is ``message_id``; its id."""
    issued = utcnow() - timedelta(hours=1)
    session = CheckinSession(
        patient_id=patient_id,
        event_key=f"checkin-{message_id}",
        event_date=issued.date(),
        phase="cycle",
        status="scheduled",
        sent_at=issued,
        expires_at=issued + timedelta(days=2),
    )
    db.session.add(session)
    db.session.flush()
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(invites={"reply": "checkin", "session": session.id, "question": "Q1"})
    )
    db.session.commit()
    return session.id


@pytest.mark.parametrize("path", PATHS)
def test_a_check_in_question_handed_over_marks_its_check_in_sent_at_that_time(
    app_ctx: Flask, path: str
) -> None:
    dispatcher, claimed = _claim(2)
    sessions = [_checkin_invited_by(one.id, one.patient_id or 0) for one in claimed]
    at = _at()
    outcomes = [
        Outcome("sent", sent=SentMessage(provider_id=sid, status="queued"), at=at) for sid in SIDS
    ]

    _store_accepted(dispatcher, claimed, outcomes, path, DispatchReport())

    db.session.expire_all()
    for session_id in sessions:
        session = db.session.get(CheckinSession, session_id)
        assert session is not None
        assert (session.status, session.sent_at, session.updated_at) == ("sent", at, at)


@pytest.mark.parametrize("accepted", [1, 2])
def test_accepted_and_other_outcomes_of_one_wave_are_each_stored_once(
    app_ctx: Flask, accepted: int
) -> None:
    dispatcher, claimed = _claim(2 + accepted)
    at = _at()
    retry = Outcome("retry", error=SmsError("busy"), at=at)
    blocked = Outcome("blocked", at=at)
    sent = [
        Outcome("sent", sent=SentMessage(provider_id=sid, status="sent"), at=at)
        for sid in SIDS[:accepted]
    ]
    outcomes = [retry, *sent, blocked]  # accepted sends among the others, as a wave comes
    wave = list(zip(claimed, outcomes, strict=True))
    wave[-1] = (replace(claimed[-1], blocked="opted_out"), blocked)

    report = DispatchReport()
    dispatcher.record_many(wave, report)
    db.session.commit()

    assert (report.sent, report.retried, report.blocked, report.lost) == (accepted, 1, 1, 0)
    statuses = [fresh_message(one.id).status for one in claimed]
    assert statuses == ["planned", *["sent"] * accepted, "blocked"]
    for one, sid in zip(claimed[1:-1], SIDS, strict=False):
        assert fresh_message(one.id).provider_id == sid
    for one in claimed:  # one history line per message: its claim, then its outcome
        history = db.session.scalars(
            select(OutboxStatusChange.from_status).where(OutboxStatusChange.message_id == one.id)
        ).all()
        assert sorted(history, key=str) == ["claimed", "planned"]


class _BatchGateway(ConsoleGateway):
    """A batching provider that answers each member as it is told (``answers``, in order)."""

    max_batch = 10
    reference_room = 64

    def __init__(self, answers: list[SentMessage | SmsError]) -> None:
        super().__init__()
        self.answers = answers
        self.batches: list[tuple[list[str], str, list[str]]] = []

    def send_batch(
        self,
        to_list: Sequence[str],
        body: str,
        *,
        references: Sequence[str],
        status_callbacks: Sequence[str | None] | None = None,
    ) -> list[SentMessage | SmsError]:
        self.batches.append((list(to_list), body, list(references)))
        return self.answers


def test_each_batch_members_answer_is_its_own_outcome_at_the_answers_time(
    app_ctx: Flask,
) -> None:
    _, claimed = _claim(4)
    accepted = SentMessage(provider_id=SIDS[0], status="queued", provider="tencent")
    busy = RetryableSmsError("number busy", provider_code=1023)
    invalid = TerminalSmsError("invalid number", reason="invalid_number", provider_code=1016)
    unclear = AmbiguousSmsError("no answer for this number")
    gateway = _BatchGateway([accepted, busy, invalid, unclear])
    asked, answered = utcnow(), utcnow() + timedelta(seconds=2)
    times = iter([asked, answered])
    dispatcher = Dispatcher(gateway, SETTINGS, name=NAME, clock=lambda: next(times))

    pairs = dispatcher.attempt_batch(claimed, lambda: False)

    assert [c for c, _ in pairs] == claimed
    assert [(o.kind, o.sent, o.error, o.at) for _, o in pairs] == [
        ("sent", accepted, None, answered),
        ("retry", None, busy, answered),
        ("terminal", None, invalid, answered),
        ("ambiguous", None, unclear, answered),
    ]
    assert gateway.batches == [
        ([c.to for c in claimed], claimed[0].body, [str(c.id) for c in claimed])
    ]


def test_a_batch_members_plain_provider_error_is_ambiguous(app_ctx: Flask) -> None:
    _, claimed = _claim(2)
    accepted = SentMessage(provider_id=SIDS[0], status="queued")
    error = SmsError("answer not understood")
    dispatcher = Dispatcher(_BatchGateway([accepted, error]), SETTINGS, name=NAME)

    pairs = dispatcher.attempt_batch(claimed, lambda: False)

    assert [(o.kind, o.sent, o.error) for _, o in pairs] == [
        ("sent", accepted, None),
        ("ambiguous", None, error),
    ]


def test_a_batchs_answers_are_stored_member_by_member(app_ctx: Flask) -> None:
    _, claimed = _claim(4, per_patient=1)  # one patient's invalid number cancels their others
    gateway = _BatchGateway(
        [
            SentMessage(provider_id=SIDS[0], status="queued", provider="tencent"),
            RetryableSmsError("number busy", provider_code=1023),
            TerminalSmsError("invalid number", reason="invalid_number", provider_code=1016),
            SentMessage(provider_id=SIDS[1], status="sent", provider="tencent"),
        ]
    )
    at = utcnow() + timedelta(seconds=2)
    batcher = Dispatcher(gateway, SETTINGS, actor="user:nurse1", name=NAME, clock=lambda: at)

    report = DispatchReport()
    batcher.record_many(batcher.attempt_batch(claimed, lambda: False), report)
    db.session.commit()

    assert (report.sent, report.retried, report.failed, report.lost) == (2, 1, 1, 0)
    first, busy, invalid, last = (fresh_message(one.id) for one in claimed)
    assert (first.status, first.provider_id, first.sent_at) == ("queued", SIDS[0], at)
    assert (last.status, last.provider_id, last.sent_at) == ("sent", SIDS[1], at)
    assert (busy.status, busy.error_reason, busy.error_code) == ("planned", "retrying", 1023)
    assert (invalid.status, invalid.error_reason, invalid.error_code) == (
        "failed",
        "invalid_number",
        1016,
    )
    patient = db.session.get(Patient, claimed[2].patient_id)
    assert patient is not None and patient.phone_status == "invalid"


# -- the reconciler, field by field: leases that passed, then found or safe to send again --------


def _leases_passed(count: int, now: datetime) -> list[int]:
    """``count`` messages a dispatcher that stopped had claimed, leases passed a minute ago."""
    ids = add_due_messages(count, per_patient=1)
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(
            status="claimed",
            claimed_by="gone",
            claimed_until=now - timedelta(minutes=1),
            sent_to=SENT_TO,
            error_code=30001,
        )
    )
    db.session.commit()
    return ids


def test_every_passed_lease_is_expired_and_reconciled_in_the_same_run(app_ctx: Flask) -> None:
    now = utcnow() + timedelta(minutes=3)
    found_ids, resent_ids = _leases_passed(2, now), _leases_passed(2, now)
    delivered = utcnow() - timedelta(minutes=20)
    held = [
        ProviderMessage(
            provider_id=SIDS[0],
            to=SENT_TO,
            body="the provider's own rendering",
            status="delivered",
            date_created=delivered,
            reference=str(found_ids[0]),
            provider="tencent",
        ),
        ProviderMessage(
            provider_id=SIDS[1],
            to=SENT_TO,
            body="the provider's own rendering",
            status="undelivered",
            date_created=delivered + timedelta(minutes=1),
            error_code=30005,
            reference=str(found_ids[1]),
        ),
    ]

    report = reconcile(
        gateway=_FoundGateway(held), settings=SETTINGS, clock=lambda: now, source="test"
    )

    assert (report.lease_expired, report.checked) == (4, 4)
    assert (report.found, report.resend, report.still_unknown) == (2, 2, 0)
    expired = "lease expired (dispatcher stopped mid-send?): may have been sent"
    for message_id in [*found_ids, *resent_ids]:
        [lease, settled] = db.session.scalars(
            select(OutboxStatusChange)
            .where(OutboxStatusChange.message_id == message_id)
            .order_by(OutboxStatusChange.id)
        ).all()[-2:]
        assert (lease.from_status, lease.to_status, lease.detail) == ("claimed", "unknown", expired)
        assert (lease.at, lease.source, settled.at, settled.source) == (now, "test", now, "test")
        assert settled.from_status == "unknown"
        row = fresh_message(message_id)
        assert (row.claimed_by, row.claimed_until, row.error_reason) == (None, None, None)
        assert row.updated_at == now
    first, second = (fresh_message(i) for i in found_ids)
    assert (first.status, first.provider, first.provider_id, first.provider_status) == (
        "delivered",
        "tencent",
        SIDS[0],
        "delivered",
    )
    assert (first.sent_at, first.sent_to, first.error_code) == (delivered, SENT_TO, None)
    assert (second.status, second.provider, second.provider_id, second.provider_status) == (
        "undelivered",
        "console",
        SIDS[1],
        "undelivered",
    )
    assert (second.sent_at, second.error_code) == (delivered + timedelta(minutes=1), 30005)
    assert last_history(found_ids[1]).detail == f"found at console as {SIDS[1]} (undelivered)"
    for message_id in resent_ids:
        row = fresh_message(message_id)
        assert (row.status, row.due_at, row.provider_id) == ("planned", now, None)
        assert last_history(message_id).to_status == "planned"


# -- the claim, field by field: the lease, the attempt, the number, the history line -------------


def test_a_claim_leases_each_due_message_and_writes_its_history_line(app_ctx: Flask) -> None:
    now = utcnow()
    fresh, retried, page, later = add_due_messages(4, due=now - timedelta(minutes=5))
    earlier = now - timedelta(hours=2)
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == retried)
        .values(attempts=2, first_attempt_at=earlier, last_attempt_at=earlier, due_at=now)
    )
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == page)
        .values(kind="page", patient_id=None, recipient=PAGED, due_at=now - timedelta(minutes=1))
    )
    db.session.execute(  # due a minute after the claim's now (though before the clock's)
        update(OutboxMessage)
        .where(OutboxMessage.id == later)
        .values(due_at=now + timedelta(minutes=1))
    )
    db.session.commit()
    patient_id, phone = fresh_message(fresh).patient_id, fresh_message(fresh).patient.phone_e164
    started = now + timedelta(minutes=4)  # the dispatcher's clock: the lease is real time
    dispatcher = Dispatcher(ConsoleGateway(), SETTINGS, name=NAME, clock=lambda: started)

    [first] = dispatcher.claim(now, 1)  # a page to staff goes first, though due later
    rest = dispatcher.claim(now, 5)

    assert first.id == page
    assert [one.id for one in rest] == [fresh, retried]  # nothing due after ``now``
    until = started + SETTINGS.lease
    expired = {one: fresh_message(one).expires_at for one in (fresh, retried)}
    body = {one: fresh_message(one).body for one in (fresh, retried, page)}
    assert [first, *rest] == [
        Claimed(page, None, PAGED, body[page], 1, until, fresh_message(page).expires_at),
        Claimed(fresh, patient_id, phone, body[fresh], 1, until, expired[fresh]),
        Claimed(retried, patient_id, phone, body[retried], 3, until, expired[retried]),
    ]
    for message_id, attempts, first_try in [
        (page, 1, started),
        (fresh, 1, started),
        (retried, 3, earlier),
    ]:
        row = fresh_message(message_id)
        assert (row.status, row.claimed_by, row.claimed_until) == ("claimed", NAME, until)
        assert (row.attempts, row.first_attempt_at, row.last_attempt_at) == (
            attempts,
            first_try,
            started,
        )
        assert (row.sent_to, row.updated_at) == (PAGED if message_id == page else phone, started)
        history = last_history(message_id)
        assert (history.from_status, history.to_status, history.at) == (
            "planned",
            "claimed",
            started,
        )
        assert (history.source, history.detail) == (f"dispatcher:{NAME}", f"attempt {attempts}")
    assert fresh_message(later).status == "planned"
    assert fresh_message(later).claimed_by is None


def test_a_message_due_exactly_at_the_claims_now_is_claimed(app_ctx: Flask) -> None:
    now = utcnow()
    [message_id] = add_due_messages(1, due=now)
    dispatcher = Dispatcher(ConsoleGateway(), SETTINGS, name=NAME)

    assert [one.id for one in dispatcher.claim(now, 1)] == [message_id]
    assert dispatcher.claim(now, 1) == []  # claimed once


def test_a_claim_of_nothing_due_changes_nothing(app_ctx: Flask) -> None:
    now = utcnow()
    [message_id] = add_due_messages(1, due=now + timedelta(seconds=1))
    dispatcher = Dispatcher(ConsoleGateway(), SETTINGS, name=NAME)

    assert dispatcher.claim(now, 5) == []
    assert dispatcher.claim(now + timedelta(seconds=1), 0) == []
    row = fresh_message(message_id)
    assert (row.status, row.attempts, row.claimed_by) == ("planned", 0, None)


def test_a_copy_every_match_of_which_another_row_owns_is_sent_again(app_ctx: Flask) -> None:
    [message_id] = _unknown(1)
    row = fresh_message(message_id)
    other_id = add_due_messages(1)[0]
    db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id == other_id).values(provider_id=SID)
    )
    db.session.commit()

    report = reconcile(
        gateway=_FoundGateway([_at_provider(row, SID, 30)]), settings=SETTINGS, source="test"
    )

    assert (report.found, report.resend) == (0, 1)
    assert fresh_message(message_id).status == "planned"


def test_a_copy_with_the_rows_own_provider_id_is_the_rows(app_ctx: Flask) -> None:
    [message_id] = _unknown(1)
    db.session.execute(  # a provider id stored with the row before it became unknown
        update(OutboxMessage).where(OutboxMessage.id == message_id).values(provider_id=SID)
    )
    db.session.commit()
    row = fresh_message(message_id)

    report = reconcile(
        gateway=_FoundGateway([_at_provider(row, SID, 30)]), settings=SETTINGS, source="test"
    )

    assert (report.found, report.resend) == (1, 0)
    assert (fresh_message(message_id).status, fresh_message(message_id).provider_id) == (
        "delivered",
        SID,
    )


def test_a_limit_is_shown_in_utc_whatever_the_servers_time_zone(app_ctx: Flask) -> None:
    dispatcher, [claimed] = _claim(1)
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"  # a server set to local time
    time.tzset()
    try:
        _record_all(
            dispatcher, [replace(claimed, limit_until=LIMIT_UNTIL)], Outcome("limited", at=_at())
        )
    finally:
        if zone is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = zone
        time.tzset()

    assert last_history(claimed.id).detail == (
        "provider frequency limit for this number: waits until 2026-03-05 08:00:15 UTC"
    )
    assert fresh_message(claimed.id).due_at == LIMIT_UNTIL


def test_unsent_outcomes_whose_lease_passed_are_logged_and_lose_nothing(
    app_ctx: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher, claimed = _claim(2)
    db.session.execute(update(OutboxMessage).values(claimed_by="another-dispatcher"))
    db.session.commit()
    released, blocked = claimed
    report = DispatchReport()

    with caplog.at_level("INFO", logger="cadence.dispatch"):
        dispatcher.record(released, Outcome("release", at=_at()), report)
        dispatcher.record(blocked, Outcome("blocked", at=_at()), report)
        db.session.commit()

    assert report.lost == 0
    assert [m for m in caplog.messages if "unsent" in m] == [
        f"message {released.id}: released unsent; its lease had already passed to another "
        "dispatcher",
        f"message {blocked.id}: left (blocked) unsent; its lease had already passed to another "
        "dispatcher",
    ]
    for one in claimed:
        assert (fresh_message(one.id).status, fresh_message(one.id).claimed_by) == (
            "claimed",
            "another-dispatcher",
        )


def test_the_claim_marks_expired_from_the_expiry_itself_and_late_only_past_the_allowed_delay(
    app_ctx: Flask,
) -> None:
    now = utcnow()
    lateness = timedelta(hours=6)
    ids = add_due_messages(4)
    edges = {
        ids[0]: {"expires_at": now},  # the event is over at that very moment
        ids[1]: {"expires_at": now + timedelta(seconds=1)},  # not yet
        ids[2]: {"send_after": now - lateness},  # exactly the allowed delay: still sent
        ids[3]: {"send_after": now - lateness - timedelta(seconds=1)},  # past it
    }
    for message_id, values in edges.items():
        db.session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values)
        )
    db.session.commit()
    dispatcher = Dispatcher(
        ConsoleGateway(), replace(SETTINGS, max_lateness=lateness), name=NAME, clock=lambda: now
    )

    claimed = {one.id: one for one in dispatcher.claim(now, 4)}

    assert [claimed[i].expired for i in ids] == ["expired", None, None, "late"]
    at = _at()
    _record_all(dispatcher, [claimed[ids[0]]], Outcome("expired", at=at))
    row = _assert_moved(ids[0], "expired", "not sent: too late, the event is over", at)
    assert row.error_reason == "expired"


def _claim_at(
    moment: datetime, quiet: tuple[clock_time, clock_time], timezone: str | None = None
) -> list[Claimed]:
    """Two messages due a minute before ``moment`` (the first made a page to staff), claimed
    then by a dispatcher with quiet hours ``quiet``; the patient's time zone set if given."""
    first, second = add_due_messages(2, per_patient=2, due=moment - timedelta(minutes=1))
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == first)
        .values(kind="page", patient_id=None, recipient=PAGED)
    )
    if timezone is not None:
        patient_id = fresh_message(second).patient_id
        db.session.execute(
            update(Patient).where(Patient.id == patient_id).values(timezone=timezone)
        )
    db.session.commit()
    settings = replace(SETTINGS, quiet_hours=quiet)
    dispatcher = Dispatcher(ConsoleGateway(), settings, name=NAME, clock=lambda: moment)
    return sorted(dispatcher.claim(moment, 2), key=lambda one: one.id)


def test_quiet_hours_are_the_patients_own_and_never_hold_a_page(app_ctx: Flask) -> None:
    # 06:00 UTC in January: 06:00 in London (quiet until 08:00), 14:00 in Nanjing (not quiet)
    moment = datetime(2027, 1, 12, 6, 0, tzinfo=UTC)
    page, reminder = _claim_at(moment, (clock_time(21, 0), clock_time(8, 0)), "Europe/London")
    assert page.quiet_until is None  # pages to staff go out at any hour
    assert reminder.quiet_until == datetime(2027, 1, 12, 8, 0, tzinfo=UTC)


def test_quiet_hours_other_than_the_default_are_kept_whole(app_ctx: Flask) -> None:
    # quiet 20:00-06:30 in Nanjing; 20:30 local (12:30 UTC) is quiet until 06:30 the next day
    moment = datetime(2027, 1, 12, 12, 30, tzinfo=UTC)
    page, reminder = _claim_at(moment, (clock_time(20, 0), clock_time(6, 30)))
    assert page.quiet_until is None
    assert reminder.quiet_until == datetime(2027, 1, 12, 22, 30, tzinfo=UTC)  # 06:30 on the 13th
