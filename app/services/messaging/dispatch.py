"""Send what is due, exactly once, through the configured gateway; reconcile what is unclear.

How exactly-once holds (ARCHITECTURE.md, "Sending exactly once"):

- ``claim``: one statement moves due ``planned`` rows to ``claimed`` with a lease
  (``claimed_by``, ``claimed_until``). PostgreSQL: ``UPDATE ... WHERE id IN (SELECT ... FOR
  UPDATE SKIP LOCKED) RETURNING``; SQLite: the same conditional ``UPDATE ... RETURNING`` (SQLite
  has one writer at a time, and SQLAlchemy leaves out SKIP LOCKED there). Any number of
  dispatchers in any number of processes and hosts can run at once.
- A worker thread sends only while its lease has more than ``min_lease_left`` to run, so the
  reconciler never sees a lease expire while a request may still be in flight.
- Every outcome is a conditional update (``WHERE status='claimed' AND claimed_by=me``):
  accepted -> provider id stored; ``RetryableSmsError`` -> planned again with exponential
  backoff (or ``failed`` after ``max_attempts``); ``AmbiguousSmsError`` (timeout, 5xx) and any
  unexpected error -> ``unknown``; ``TerminalSmsError`` -> ``failed`` and the patient updated
  (opted out / invalid number) with an audit row.
- ``reconcile``: claimed rows whose lease expired (a dispatcher died) become ``unknown``; an
  ``unknown`` row is looked up at the provider (``find_sent``: recipient + time window, matched
  on the exact body) and only resent when the provider does not have it.
- Batches (``SMS_SEND_BATCH``): a gateway that can batch (Tencent, Alibaba) gets claimed
  messages with the same text to distinct numbers in one request; each member keeps its own
  outcome and provider id, a whole-request failure is every member's, and the shared reference
  names every member so ``reconcile`` finds each one before any resend.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time as timer
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from queue import Queue, SimpleQueue
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from app.domain.reminders import ReminderPolicy, in_quiet_hours, move_out_of_quiet_hours
from app.domain.sms_limits import FrequencyLimits
from app.extensions import db
from app.models import Contact, OutboxMessage, OutboxStatusChange, Patient, utcnow
from app.services.messaging import recipients
from app.services.messaging.frequency import ClaimedRow, limit_waits, limits_from_config
from app.services.messaging.invitations import follow_status
from app.services.messaging.outbox import transition
from app.services.messaging.reminders import (
    cancel_unsent,
    cancel_unsent_to_contact,
    plan_patient,
    reminder_policy,
    row_blocked_reason,
)
from app.services.shared import audit
from app.sms import (
    AmbiguousSmsError,
    BatchSmsGateway,
    ProviderMessage,
    RetryableSmsError,
    SendAloneError,
    SentMessage,
    SmsError,
    SmsGateway,
    TerminalSmsError,
    batch_chunks,
    make_gateway,
    reference_covers,
)

logger = logging.getLogger("cadence.dispatch")

Clock = Callable[[], datetime]
PROVIDER_STATUS_MAP = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
}
TERMINAL_PATIENT_ACTIONS = {
    "opted_out": "patient.sms_opted_out",
    "invalid_number": "patient.phone_invalid",
}


def _setting(config: Mapping[str, Any], key: str, default: float) -> float:
    """A numeric setting from the app config, else the environment, else ``default``."""
    value = config.get(key)
    if value in (None, ""):
        value = os.environ.get(key)
    return float(value) if value not in (None, "") else float(default)


@dataclass(frozen=True)
class DispatchSettings:
    """Tunables of the dispatcher and the reconciler (SMS_* settings)."""

    batch_size: int = 50
    workers: int = 8
    lease: timedelta = timedelta(minutes=5)
    min_lease_left: timedelta = timedelta(seconds=30)
    max_attempts: int = 8
    retry_base: timedelta = timedelta(seconds=30)
    retry_cap: timedelta = timedelta(hours=1)
    settle: timedelta = timedelta(seconds=60)
    lookup_margin: timedelta = timedelta(minutes=10)
    status_callback_base: str | None = None
    quiet_hours: tuple[time, time] | None = None
    max_lateness: timedelta | None = None
    limits: FrequencyLimits | None = None  # the provider's per-number limits, planned for
    send_batch: int = 200  # most numbers in one provider request (identical texts); 1: never

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DispatchSettings:
        """Read SMS_DISPATCH_* / SMS_* settings (app config first, then the environment)."""
        timeout = _setting(config, "TWILIO_TIMEOUT", 10)
        lease = _setting(config, "SMS_LEASE_SECONDS", 300)
        min_left = min(2 * timeout + 5, lease / 2)
        base = config.get("SMS_STATUS_CALLBACK_URL") or _callback_from_public(config)
        quiet = None
        if _setting(config, "SMS_RESPECT_QUIET_HOURS", 1):
            policy = reminder_policy()
            quiet = (policy.quiet_start, policy.quiet_end)
        return cls(
            batch_size=int(_setting(config, "SMS_DISPATCH_BATCH", 50)),
            workers=int(_setting(config, "SMS_DISPATCH_WORKERS", 8)),
            lease=timedelta(seconds=lease),
            min_lease_left=timedelta(seconds=min_left),
            max_attempts=int(_setting(config, "SMS_MAX_ATTEMPTS", 8)),
            retry_base=timedelta(seconds=_setting(config, "SMS_RETRY_BASE_SECONDS", 30)),
            retry_cap=timedelta(seconds=_setting(config, "SMS_RETRY_MAX_SECONDS", 3600)),
            settle=timedelta(seconds=_setting(config, "SMS_RECONCILE_SETTLE_SECONDS", 60)),
            status_callback_base=base,
            quiet_hours=quiet,
            max_lateness=timedelta(hours=_setting(config, "SMS_MAX_LATENESS_HOURS", 12)),
            limits=limits_from_config(config),
            send_batch=int(_setting(config, "SMS_SEND_BATCH", 200)),
        )

    def backoff(self, attempts: int) -> timedelta:
        """Exponential backoff with +-20 % jitter after ``attempts`` failed tries."""
        seconds = self.retry_base.total_seconds() * 2 ** max(attempts - 1, 0)
        seconds = min(seconds, self.retry_cap.total_seconds())
        return timedelta(seconds=seconds * random.uniform(0.8, 1.2))

    def callback_url(self, message_id: int) -> str | None:
        """The status callback URL for one message (None when no public URL is configured)."""
        if not self.status_callback_base:
            return None
        return f"{self.status_callback_base}?m={message_id}"


def _callback_from_public(config: Mapping[str, Any]) -> str | None:
    public = config.get("PUBLIC_BASE_URL")
    if not public or str(config.get("SMS_BACKEND", "console")).lower() == "console":
        return None
    return str(public).rstrip("/") + "/webhooks/twilio/status"


@dataclass
class DispatchTimings:
    """Where one run's time went, in seconds (the benchmark prints it).

    ``claim``, ``record`` (outcomes stored, commits included) and ``wait`` (nothing to do but
    wait for a worker) add up to the main thread's wall time; ``provider`` and ``attempts`` are
    summed over the worker threads (gateway calls; whole attempts, the calls included).
    """

    claim: float = 0.0
    record: float = 0.0
    wait: float = 0.0
    provider: float = 0.0
    attempts: float = 0.0
    claims: int = 0
    waves: int = 0
    recorder: bool = False  # outcomes stored by a recorder thread (``record`` is its busy time)


@dataclass
class DispatchReport:
    """What one dispatch run did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    unknown: int = 0
    failed: int = 0
    blocked: int = 0
    expired: int = 0
    deferred: int = 0
    limited: int = 0
    released: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)
    timings: DispatchTimings = field(default_factory=DispatchTimings)

    @property
    def finished(self) -> int:
        """Messages whose attempt ended (any outcome)."""
        return self.claimed

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"claimed {self.claimed}, sent {self.sent}, retry later {self.retried}, "
            f"unknown {self.unknown}, failed {self.failed}, blocked {self.blocked}, "
            f"expired {self.expired}, quiet hours {self.deferred}, released {self.released}"
            + (f", held by frequency limits {self.limited}" if self.limited else "")
        )


@dataclass(frozen=True)
class Claimed:
    """A claimed message, as plain data a worker thread can use without the database."""

    id: int
    patient_id: int | None  # None: a page to a staff number
    to: str
    body: str
    attempts: int
    claimed_until: datetime
    expires_at: datetime | None
    blocked: str | None = None
    quiet_until: datetime | None = None
    expired: str | None = None  # "expired" (the event is over) or "late" (sent too late)
    contact_id: int | None = None  # the patient's contact it goes to (None: own number, page)
    limit_until: datetime | None = None  # a provider frequency limit holds it until then


@dataclass(frozen=True)
class Outcome:
    """What happened to one send attempt."""

    kind: str  # sent | retry | ambiguous | terminal | blocked | expired | quiet | limited | release
    sent: SentMessage | None = None
    error: Exception | None = None
    at: datetime | None = None
    provider_seconds: float = 0.0  # time spent in the gateway call
    seconds: float = 0.0  # the whole attempt, in its worker thread


UNSENT_OUTCOMES = frozenset({"release", "quiet", "limited", "blocked", "expired"})
"""Outcomes where nothing reached the provider: a lease lost meanwhile loses no message."""


class _Recorder:
    """Stores outcomes on its own thread and database session (PostgreSQL), one commit per wave
    (all the waves queued meanwhile together), while the main thread claims.

    Claims and outcomes touch different rows (``planned`` vs ``claimed`` ones), and a claim
    never waits for a row lock (SKIP LOCKED), so the two sessions cannot deadlock. An error
    here stops the run: ``put`` raises it in the main thread.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.app = current_app._get_current_object()  # type: ignore[attr-defined]
        self.report = DispatchReport()
        self.error: BaseException | None = None
        self.stopped = False
        self.queue: Queue[list[tuple[Claimed, Outcome]] | None] = Queue()
        self.thread = threading.Thread(target=self._loop, name="sms-record", daemon=True)
        self.thread.start()

    def put(self, results: list[tuple[Claimed, Outcome]]) -> None:
        """Queue one wave of outcomes (main thread); raise the recorder's error, if any."""
        if self.error is not None:
            raise self.error
        if results:
            self.queue.put(results)

    def close(self, report: DispatchReport) -> None:
        """Store what is queued, stop the thread, add its counts to ``report``; raise its error."""
        self.queue.put(None)
        self.thread.join()
        mine = self.report
        for name in ("sent", "retried", "unknown", "failed", "blocked", "expired", "deferred",
                     "limited", "released", "lost"):  # fmt: skip
            setattr(report, name, getattr(report, name) + getattr(mine, name))
        report.errors.extend(mine.errors)
        report.timings.record = mine.timings.record
        report.timings.waves = mine.timings.waves
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        with self.app.app_context():
            try:
                while self._store_next():
                    pass
            except BaseException as exc:
                self.error = exc
                logger.exception("dispatch: storing outcomes failed")
                db.session.rollback()
                while not self.stopped:  # take what is still queued, until close()
                    self.stopped = self.queue.get() is None
            finally:
                db.session.remove()

    def _store_next(self) -> bool:
        """Store every wave queued now in one transaction; False once told to stop."""
        waves = [self.queue.get()]
        while not self.queue.empty():
            waves.append(self.queue.get())
        self.stopped = None in waves
        results = [pair for wave in waves if wave is not None for pair in wave]
        if results:
            started = timer.perf_counter()
            self.dispatcher.record_many(results, self.report)
            db.session.commit()
            self.report.timings.record += timer.perf_counter() - started
            self.report.timings.waves += 1
        return not self.stopped


def worker_name() -> str:
    """A unique name for this dispatcher: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """Claims due messages and sends them with a small thread pool (see the module docstring)."""

    def __init__(
        self,
        gateway: SmsGateway,
        settings: DispatchSettings,
        *,
        actor: str = "system",
        clock: Clock = utcnow,
        name: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.settings = settings
        self.actor = actor
        self.clock = clock
        self.name = name or worker_name()

    # -- claiming ------------------------------------------------------------------------------

    def claim(self, now: datetime, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` planned messages due at ``now`` to this dispatcher; commit.

        ``now`` also decides whether a message is too late (its event is over) and whether it
        is quiet time for its patient: a simulated ``now`` simulates all three. Leases use the
        real clock.
        """
        if limit <= 0:
            return []
        started = self.clock()
        until = started + self.settings.lease
        due = due_query(now, limit)
        phone = select(Patient.phone_e164).where(Patient.id == OutboxMessage.patient_id)
        contact_phone = select(Contact.phone_e164).where(Contact.id == OutboxMessage.contact_id)
        to = func.coalesce(
            OutboxMessage.recipient, contact_phone.scalar_subquery(), phone.scalar_subquery()
        )
        stmt = (
            update(OutboxMessage)
            .where(_among(due), OutboxMessage.status == "planned")
            .values(
                status="claimed",
                claimed_by=self.name,
                claimed_until=until,
                attempts=OutboxMessage.attempts + 1,
                last_attempt_at=started,
                first_attempt_at=func.coalesce(OutboxMessage.first_attempt_at, started),
                sent_to=to,
                updated_at=started,
            )
            .returning(
                OutboxMessage.id,
                OutboxMessage.patient_id,
                OutboxMessage.sent_to,
                OutboxMessage.body,
                OutboxMessage.attempts,
                OutboxMessage.expires_at,
                OutboxMessage.send_after,
                OutboxMessage.kind,
                OutboxMessage.contact_id,
            )
            .execution_options(synchronize_session=False)
        )
        source = f"dispatcher:{self.name}"
        if _postgres():
            rows = db.session.execute(_with_claim_history(stmt, started, source)).all()
        else:
            rows = db.session.execute(stmt).all()
            if rows:
                db.session.execute(
                    insert(OutboxStatusChange),
                    [
                        {
                            "message_id": row.id,
                            "at": started,
                            "from_status": "planned",
                            "to_status": "claimed",
                            "source": source,
                            "detail": f"attempt {row.attempts}",
                        }
                        for row in rows
                    ],
                )
        if not rows:
            db.session.commit()
            return []
        patient_ids = {row.patient_id for row in rows if row.patient_id is not None}
        patients, contacts = recipients.patients_and_contacts(patient_ids)
        waits = limit_waits(
            [ClaimedRow(r.id, r.sent_to or "", r.body, r.kind) for r in rows],
            now,
            self.settings.limits,
        )
        claimed = [
            Claimed(
                id=row.id,
                patient_id=row.patient_id,
                to=row.sent_to or "",
                body=row.body,
                attempts=row.attempts,
                claimed_until=until,
                expires_at=row.expires_at,
                blocked=_blocked(
                    patients.get(row.patient_id),
                    row.kind,
                    row.contact_id,
                    contacts.get(row.patient_id, []) if row.patient_id is not None else [],
                ),
                quiet_until=_quiet(self, patients.get(row.patient_id), now),
                expired=self._too_late(row, now),
                contact_id=row.contact_id,
                limit_until=waits.get(row.id),
            )
            for row in sorted(rows, key=lambda r: r.id)
        ]
        db.session.commit()
        return claimed

    def _too_late(self, row: Any, now: datetime) -> str | None:
        """'expired' when the event is over, 'late' when a reminder is long overdue, else None."""
        if row.expires_at is not None and now >= row.expires_at:
            return "expired"
        lateness = self.settings.max_lateness
        if row.kind == "reminder" and lateness is not None and now - row.send_after > lateness:
            return "late"
        return None

    def _quiet_until(self, patient: Patient, moment: datetime) -> datetime | None:
        """The end of the quiet hours when it is quiet time for the patient now, else None."""
        if self.settings.quiet_hours is None:
            return None
        start, end = self.settings.quiet_hours
        local = moment.astimezone(ZoneInfo(patient.timezone or "Asia/Shanghai"))
        if not in_quiet_hours(local, start, end):
            return None
        policy = ReminderPolicy(quiet_start=start, quiet_end=end)
        return move_out_of_quiet_hours(local, policy, "later").astimezone(UTC)

    # -- sending -------------------------------------------------------------------------------

    def attempt(self, claimed: Claimed, should_stop: Callable[[], bool]) -> Outcome:
        """Send one claimed message (worker thread: no database access here)."""
        now = self.clock()
        if claimed.blocked:
            return Outcome("blocked", at=now)
        if claimed.expired:
            return Outcome("expired", at=now)
        if claimed.quiet_until is not None:
            return Outcome("quiet", at=now)
        if claimed.limit_until is not None:
            return Outcome("limited", at=now)
        if should_stop() or claimed.claimed_until - now < self.settings.min_lease_left:
            return Outcome("release", at=now)
        started = timer.perf_counter()
        try:
            sent = self.gateway.send(
                claimed.to,
                claimed.body,
                status_callback=self.settings.callback_url(claimed.id),
                reference=str(claimed.id),
            )
        except Exception as exc:
            return replace(self._failed(exc, [claimed.id]), provider_seconds=_since(started))
        return Outcome("sent", sent=sent, at=self.clock(), provider_seconds=_since(started))

    def _attempt_into(
        self, group: list[Claimed], should_stop: Callable[[], bool], finished: SimpleQueue[Any]
    ) -> None:
        """``attempt`` (one message) or ``attempt_batch`` (worker thread); each member's outcome
        and its share of the duration put on ``finished``: the main thread takes outcomes as
        they come, at no cost per message in flight."""
        started = timer.perf_counter()
        try:
            if len(group) > 1:
                pairs = self.attempt_batch(group, should_stop)
            else:
                pairs = [(group[0], self.attempt(group[0], should_stop))]
        except BaseException as exc:
            for claimed in group:
                finished.put((claimed, exc))
            raise
        share = _since(started) / len(group)
        for claimed, outcome in pairs:
            finished.put((claimed, replace(outcome, seconds=share)))

    def attempt_batch(
        self, group: list[Claimed], should_stop: Callable[[], bool]
    ) -> list[tuple[Claimed, Outcome]]:
        """Send one text to every member of ``group`` in one provider request (worker thread).

        Each member's answer is its own outcome; a whole-request failure is every member's
        (ambiguous: all ``unknown``, reconciled one by one; retryable: all retried). A member
        answered ``SendAloneError`` (the batch was refused for what may be one number's fault,
        nothing created) is sent alone here, each send checking the lease as ``attempt`` does.
        """
        now = self.clock()
        lease_left = min(c.claimed_until for c in group) - now
        if should_stop() or lease_left < self.settings.min_lease_left:
            return [(c, Outcome("release", at=now)) for c in group]
        gateway = self.gateway
        assert isinstance(gateway, BatchSmsGateway)
        started = timer.perf_counter()
        try:
            answers = gateway.send_batch(
                [c.to for c in group],
                group[0].body,
                references=[str(c.id) for c in group],
                status_callbacks=[self.settings.callback_url(c.id) for c in group],
            )
        except Exception as exc:
            failed = self._failed(exc, [c.id for c in group])
            share = replace(failed, provider_seconds=_since(started) / len(group))
            return [(c, share) for c in group]
        at, each = self.clock(), _since(started) / len(group)
        return [
            (
                c,
                self.attempt(c, should_stop)
                if isinstance(a, SendAloneError)
                else replace(_answer_outcome(a, at), provider_seconds=each),
            )
            for c, a in zip(group, answers, strict=True)
        ]

    def _failed(self, exc: Exception, ids: list[int]) -> Outcome:
        """The outcome of a request that raised (unexpected errors count as ambiguous)."""
        at = self.clock()
        if isinstance(exc, RetryableSmsError):
            return Outcome("retry", error=exc, at=at)
        if isinstance(exc, TerminalSmsError):
            return Outcome("terminal", error=exc, at=at)
        if not isinstance(exc, AmbiguousSmsError):
            logger.exception("unexpected error sending message(s) %s", ids)
        return Outcome("ambiguous", error=exc, at=at)

    def _send_groups(self, batch: list[Claimed]) -> list[list[Claimed]]:
        """Claimed messages in groups of one request each: identical texts to distinct numbers
        share a request when the gateway can batch (everything not to be sent goes alone)."""
        gateway = self.gateway
        size = min(batch_capacity(gateway), self.settings.send_batch)
        if size <= 1 or not isinstance(gateway, BatchSmsGateway):
            return [[c] for c in batch]
        groups: list[list[Claimed]] = []
        by_text: dict[tuple[str, bool], list[list[Claimed]]] = {}
        for claimed in batch:
            if not _goes_to_provider(claimed):
                groups.append([claimed])
                continue
            # Tencent refuses a request mixing mainland and international numbers
            rounds = by_text.setdefault((claimed.body, claimed.to.startswith("+86")), [])
            free = next((r for r in rounds if all(c.to != claimed.to for c in r)), None)
            if free is None:
                rounds.append([claimed])
            else:
                free.append(claimed)
        for rounds in by_text.values():
            for members in rounds:
                refs = [str(c.id) for c in members]
                for chunk in batch_chunks(refs, size, gateway.reference_room):
                    groups.append([members[i] for i in chunk])
        return groups

    def run(
        self,
        now: datetime | None = None,
        *,
        limit: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        progress: Callable[[int], None] | None = None,
    ) -> DispatchReport:
        """Send every message due at ``now`` (default: the clock at each claim), then return.

        The main thread claims (whole batches, when one fits in the window) and hands claimed
        messages to the workers; the window holds up to ``window_size`` claimed messages, so
        the workers still have queued sends while the main thread is in the database, and a
        round's cost (a few statements, one commit) is shared by many messages. A claim always
        commits before its messages go to a worker. Outcomes are stored on PostgreSQL by a
        recorder thread with its own session (``_Recorder``), while the main thread claims; on
        SQLite (one writer at a time) by the main thread, committed with the next claim. A
        claim that comes back short ends the claiming: what becomes due after it (a retry
        without backoff, a new reminder) waits for the next run.
        """
        report = DispatchReport()
        timings = report.timings
        window = self.window_size()
        finished: SimpleQueue[tuple[Claimed, Outcome | BaseException]] = SimpleQueue()
        held = 0  # claimed and not yet finished
        exhausted = False
        recorder = _Recorder(self) if _postgres() else None
        timings.recorder = recorder is not None
        try:
            with ThreadPoolExecutor(self.settings.workers, thread_name_prefix="sms-send") as pool:
                results: list[tuple[Claimed, Outcome]] = []
                while True:
                    started = timer.perf_counter()
                    if recorder is not None:
                        recorder.put(results)
                    elif results:
                        self.record_many(results, report)
                        timings.waves += 1
                    recorded = timer.perf_counter()
                    timings.record += recorded - started
                    batches: list[list[Claimed]] = []
                    committed = False
                    while not exhausted and not should_stop():
                        want = self._want(window, held, limit, report)
                        if want <= 0:
                            break
                        batch = self.claim(now or self.clock(), want)  # commits outcomes too
                        committed = True
                        timings.claims += 1
                        report.claimed += len(batch)
                        held += len(batch)
                        if batch:
                            batches.append(batch)
                        if len(batch) < want:  # nothing more due now: finish what is held
                            exhausted = True
                    if results and not committed and recorder is None:
                        db.session.commit()
                    timings.claim += timer.perf_counter() - recorded
                    for batch in batches:
                        for group in self._send_groups(batch):
                            pool.submit(self._attempt_into, group, should_stop, finished)
                    if progress is not None and results:
                        progress(len(results))
                    if not held:
                        break
                    started = timer.perf_counter()
                    results = _take_finished(finished)
                    timings.wait += timer.perf_counter() - started
                    held -= len(results)
                    for _, outcome in results:
                        timings.provider += outcome.provider_seconds
                        timings.attempts += outcome.seconds
        finally:
            if recorder is not None:
                recorder.close(report)
        return report

    def window_size(self) -> int:
        """How many claimed messages a run keeps in hand (queued or being sent): four per
        worker and two batches at least, so the workers still have queued sends while the
        main thread claims the next batch."""
        return max(self.settings.workers * 4, self.settings.batch_size * 2, 1)

    def _want(self, window: int, held: int, limit: int | None, report: DispatchReport) -> int:
        """How many to claim now: a whole batch when one fits in the window, or what fits when
        the workers would run dry; never more than ``limit`` allows; else 0."""
        room = window - held
        batch = self.settings.batch_size
        if room < batch and held >= self.settings.workers:
            return 0
        want = min(batch, room)
        if limit is not None:
            want = min(want, limit - report.claimed)
        return want

    # -- recording -----------------------------------------------------------------------------

    def record_many(self, results: list[tuple[Claimed, Outcome]], report: DispatchReport) -> None:
        """Store many outcomes; the caller commits. Accepted sends are stored together (one
        UPDATE, one history INSERT for the lot: the dispatcher's hot path), the rest one by one.
        """
        sent = [(c, o) for c, o in results if o.kind == "sent" and o.sent is not None]
        for claimed, outcome in results:
            if outcome.kind != "sent" or outcome.sent is None:
                self.record(claimed, outcome, report)
        if len(sent) == 1:
            self.record(*sent[0], report)
        elif sent:
            self._record_sent_together(sent, report)

    def _record_sent_together(
        self, results: list[tuple[Claimed, Outcome]], report: DispatchReport
    ) -> None:
        """Accepted sends: each row moves only if still claimed by us (as ``_move`` does)."""
        rows = {claimed.id: (claimed, outcome) for claimed, outcome in results}
        values = {
            mid: _sent_values(o, self.gateway.name, self.clock) for mid, (_, o) in rows.items()
        }
        report.sent += len(rows)
        source = f"dispatcher:{self.name}"[:120]
        if _postgres():
            moved = self._store_sent_postgres(values, source)
        else:
            moved = self._update_sent(values)
            history = [
                {"message_id": message_id, "at": values[message_id]["at"],
                 "from_status": "claimed", "to_status": values[message_id]["status"],
                 "source": source, "detail": _accepted_detail(values[message_id])}
                for message_id, _ in moved
            ]  # fmt: skip
            if history:
                db.session.execute(insert(OutboxStatusChange), history)
        for message_id, invites in moved:
            follow_status(invites, values[message_id]["status"], values[message_id]["at"])
        stored = {message_id for message_id, _ in moved}
        for message_id, (claimed, outcome) in rows.items():
            if message_id not in stored and not _settled_by_callback(claimed, outcome):
                report.lost += 1
                logger.error(
                    "message %s: outcome sent not stored, the lease was taken over", message_id
                )

    def _update_sent(self, values: dict[int, dict[str, Any]]) -> list[tuple[int, Any]]:
        """SQLite: one conditional UPDATE for all the accepted rows, their values passed as one
        JSON array (the same SQL text for any number of rows: nothing compiled per wave);
        (id, invites) of the rows moved."""
        dialect = db.session.get_bind().dialect
        to_db = OutboxMessage.__table__.c.sent_at.type.dialect_impl(dialect).bind_processor(dialect)
        payload = [
            {"id": mid, "status": v["status"], "provider": v["provider"],
             "provider_id": v["provider_id"], "provider_status": v["provider_status"],
             "at": to_db(v["at"]) if to_db else v["at"]}
            for mid, v in values.items()
        ]  # fmt: skip
        params = {"rows": json.dumps(payload), "me": self.name}
        return [(row.id, row.invites) for row in db.session.execute(_STORE_SENT_SQLITE, params)]

    def _store_sent_postgres(
        self, values: dict[int, dict[str, Any]], source: str
    ) -> list[tuple[int, Any]]:
        """PostgreSQL: the conditional UPDATE and its history rows in one statement, the rows'
        values passed as arrays (one round trip, and the same SQL text for any number of rows,
        so nothing is compiled per wave); (id, invites) of the rows moved."""
        ids = list(values)
        params = {
            "ids": ids,
            "statuses": [values[i]["status"] for i in ids],
            "providers": [values[i]["provider"] for i in ids],
            "provider_ids": [values[i]["provider_id"] for i in ids],
            "provider_statuses": [values[i]["provider_status"] for i in ids],
            "ats": [values[i]["at"].astimezone(UTC) for i in ids],
            "details": [_accepted_detail(values[i]) for i in ids],
            "me": self.name,
            "source": source,
        }
        return [(row.id, row.invites) for row in db.session.execute(_STORE_SENT_PG, params)]

    def record(self, claimed: Claimed, outcome: Outcome, report: DispatchReport) -> None:
        """Store one outcome (conditional on our lease); the caller commits."""
        at = outcome.at or self.clock()
        handler = getattr(self, f"_record_{outcome.kind}")
        if handler(claimed, outcome, at, report) or _settled_by_callback(claimed, outcome):
            return
        if outcome.kind in UNSENT_OUTCOMES:
            logger.info(
                "message %s: %s unsent; its lease had already passed to another dispatcher",
                claimed.id,
                "released" if outcome.kind == "release" else f"left ({outcome.kind})",
            )
            return
        report.lost += 1
        logger.error(
            "message %s: outcome %s not stored, the lease was taken over",
            claimed.id,
            outcome.kind,
        )

    def _move(self, claimed: Claimed, to: str, at: datetime, detail: str, **values: Any) -> bool:
        values = {"claimed_by": None, "claimed_until": None, **values}
        return transition(
            claimed.id,
            expect=("claimed",),
            to=to,
            source=f"dispatcher:{self.name}",
            detail=detail,
            values=values,
            claimed_by=self.name,
            at=at,
        )

    def _record_sent(
        self, claimed: Claimed, outcome: Outcome, at: datetime, report: DispatchReport
    ) -> bool:
        assert outcome.sent is not None
        status = PROVIDER_STATUS_MAP.get(outcome.sent.status or "", "queued")
        report.sent += 1
        provider = outcome.sent.provider or self.gateway.name
        return self._move(
            claimed,
            status,
            at,
            f"accepted by {provider} as {outcome.sent.provider_id}",
            provider=provider,
            provider_id=outcome.sent.provider_id,
            provider_status=outcome.sent.status,
            sent_at=at,
            error_code=None,
            error_reason=None,
            error_message=None,
        )

    def _record_retry(
        self, claimed: Claimed, outcome: Outcome, at: datetime, report: DispatchReport
    ) -> bool:
        error = _error_values(outcome.error)
        if claimed.attempts >= self.settings.max_attempts:
            report.failed += 1
            error["error_reason"] = "retries_exhausted"
            detail = f"gave up after {claimed.attempts} attempts: {outcome.error}"
            return self._move(claimed, "failed", at, detail, **error)
        report.retried += 1
        due = at + self.settings.backoff(claimed.attempts)
        error["error_reason"] = "retrying"
        detail = f"retry at {due:%Y-%m-%d %H:%M:%S} UTC: {outcome.error}"
        return self._move(claimed, "planned", at, detail, due_at=due, **error)

    def _record_ambiguous(
        self, claimed: Claimed, outcome: Outcome, at: datetime, report: DispatchReport
    ) -> bool:
        report.unknown += 1
        error = _error_values(outcome.error) | {"error_reason": "ambiguous"}
        detail = f"may have been sent, to reconcile: {outcome.error}"
        return self._move(claimed, "unknown", at, detail, **error)

    def _record_terminal(
        self, claimed: Claimed, outcome: Outcome, at: datetime, report: DispatchReport
    ) -> bool:
        report.failed += 1
        error = outcome.error
        reason = error.reason if isinstance(error, TerminalSmsError) else "rejected"
        values = _error_values(error) | {"error_reason": reason}
        moved = self._move(claimed, "failed", at, f"refused: {error}", **values)
        if moved and reason in TERMINAL_PATIENT_ACTIONS and claimed.patient_id is not None:
            mark_patient_unreachable(
                claimed.patient_id,
                reason,
                str(error),
                actor=self.actor,
                at=at,
                contact_id=claimed.contact_id,
            )
        return moved

    def _record_blocked(
        self, claimed: Claimed, outcome: Outcome, at: datetime, report: DispatchReport
    ) -> bool:
        report.blocked += 1
        detail = f"not sent: patient {claimed.blocked}"
        return self._move(claimed, "blocked", at, detail, error_reason=claimed.blocked)

    def _record_expired(
        self, claimed: Claimed, outcome: Outcome, at: datetime, report: DispatchReport
    ) -> bool:
        report.expired += 1
        if claimed.expired == "late":
            detail = "not sent: more than the allowed delay after its planned time"
        else:
            detail = "not sent: too late, the event is over"
        return self._move(claimed, "expired", at, detail, error_reason=claimed.expired)

    def _record_quiet(
        self, claimed: Claimed, outcome: Outcome, at: datetime, report: DispatchReport
    ) -> bool:
        report.deferred += 1
        assert claimed.quiet_until is not None
        detail = (
            f"quiet hours for the patient: waits until {claimed.quiet_until:%Y-%m-%d %H:%M} UTC"
        )
        return self._move(
            claimed,
            "planned",
            at,
            detail,
            due_at=claimed.quiet_until,
            attempts=max(claimed.attempts - 1, 0),
        )

    def _record_limited(
        self, claimed: Claimed, outcome: Outcome, at: datetime, report: DispatchReport
    ) -> bool:
        report.limited += 1
        assert claimed.limit_until is not None
        until = claimed.limit_until.astimezone(UTC)
        detail = (
            f"provider frequency limit for this number: waits until {until:%Y-%m-%d %H:%M:%S} UTC"
        )
        return self._move(
            claimed,
            "planned",
            at,
            detail,
            due_at=until,
            attempts=max(claimed.attempts - 1, 0),
        )

    def _record_release(
        self, claimed: Claimed, outcome: Outcome, at: datetime, report: DispatchReport
    ) -> bool:
        report.released += 1
        detail = "released unsent (stopping or lease too short)"
        return self._move(claimed, "planned", at, detail, attempts=max(claimed.attempts - 1, 0))


def due_query(now: datetime, limit: int) -> Select[Any]:
    """The ids of up to ``limit`` planned messages due at ``now``, pages first, locked.

    Served by the partial index ``ix_outbox_message_unsent_due`` (planned rows only), so its
    cost follows the unsent messages, not the outbox's history (bench/bench_claim.py).
    """
    return (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "planned", OutboxMessage.due_at <= now)
        .order_by(_pages_first(), OutboxMessage.due_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _pages_first() -> ColumnElement[int]:
    """Pages to staff (red alerts) are claimed before anything else that is due."""
    return case((OutboxMessage.kind == "page", 0), else_=1)


def _blocked(
    patient: Patient | None, kind: str, contact_id: int | None, contacts: list[Contact]
) -> str | None:
    """Why a patient's message may not go out to its contact (consent, opt-out...); pages are
    never blocked. ``contacts``: the patient's contacts, loaded once per claim."""
    if patient is None:
        return None
    return row_blocked_reason(patient, kind, contact_id, contacts)


def _quiet(dispatcher: Dispatcher, patient: Patient | None, now: datetime) -> datetime | None:
    """Quiet hours are the patient's; pages to staff go out at any hour."""
    return dispatcher._quiet_until(patient, now) if patient is not None else None


def batch_capacity(gateway: SmsGateway) -> int:
    """How many numbers ``gateway`` takes in one request (1: it cannot batch)."""
    return max(gateway.max_batch, 1) if isinstance(gateway, BatchSmsGateway) else 1


def _goes_to_provider(claimed: Claimed) -> bool:
    """False for a claimed message that will be left unsent (blocked, late, quiet, limited)."""
    return not (
        claimed.blocked
        or claimed.expired
        or claimed.quiet_until is not None
        or claimed.limit_until is not None
    )


def _answer_outcome(answer: SentMessage | SmsError, at: datetime) -> Outcome:
    """One batch member's answer as an outcome (a per-number refusal is that member's)."""
    if isinstance(answer, SentMessage):
        return Outcome("sent", sent=answer, at=at)
    if isinstance(answer, RetryableSmsError):
        return Outcome("retry", error=answer, at=at)
    if isinstance(answer, TerminalSmsError):
        return Outcome("terminal", error=answer, at=at)
    return Outcome("ambiguous", error=answer, at=at)


def _among(due: Select[Any]) -> ColumnElement[bool]:
    """``id IN (due)``, with the subquery evaluated exactly once.

    PostgreSQL may plan ``id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` as a semi-join that
    re-runs the locking subquery for every outer row, and so claim more than ``n`` rows;
    ``= ANY(ARRAY(subquery))`` is an init-plan, run once. SQLite runs IN (subquery) once.
    """
    if _postgres():
        return OutboxMessage.id == func.any(func.array(due.scalar_subquery()))
    return OutboxMessage.id.in_(due.scalar_subquery())


_STORE_SENT_PG = text(
    """
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:ids AS integer[]), CAST(:statuses AS varchar[]), CAST(:providers AS varchar[]),
            CAST(:provider_ids AS varchar[]), CAST(:provider_statuses AS varchar[]),
            CAST(:ats AS timestamptz[]), CAST(:details AS text[])
        ) AS v(id, status, provider, provider_id, provider_status, at, detail)
    ), moved AS (
        UPDATE outbox_message AS m
        SET status = v.status, provider = v.provider, provider_id = v.provider_id,
            provider_status = v.provider_status, sent_at = v.at, updated_at = v.at,
            claimed_by = NULL, claimed_until = NULL,
            error_code = NULL, error_reason = NULL, error_message = NULL
        FROM v
        WHERE m.id = v.id AND m.status = 'claimed' AND m.claimed_by = :me
        RETURNING m.id, m.invites, v.status, v.at, v.detail
    ), history AS (
        INSERT INTO outbox_status_change (message_id, at, from_status, to_status, source, detail)
        SELECT id, at, 'claimed', status, :source, detail FROM moved
    )
    SELECT id, invites FROM moved
    """
).columns(
    OutboxMessage.__table__.c.id,
    OutboxMessage.__table__.c.invites,
)
"""Accepted sends on PostgreSQL (``Dispatcher._store_sent_postgres``)."""


_STORE_SENT_SQLITE = text(
    """
    UPDATE outbox_message
    SET status = v.status, provider = v.provider, provider_id = v.provider_id,
        provider_status = v.provider_status, sent_at = v.at, updated_at = v.at,
        claimed_by = NULL, claimed_until = NULL,
        error_code = NULL, error_reason = NULL, error_message = NULL
    FROM (
        SELECT value ->> '$.id' AS id, value ->> '$.status' AS status,
               value ->> '$.provider' AS provider, value ->> '$.provider_id' AS provider_id,
               value ->> '$.provider_status' AS provider_status, value ->> '$.at' AS at
        FROM json_each(:rows)
    ) AS v
    WHERE outbox_message.id = v.id AND +outbox_message.status = 'claimed'
        AND outbox_message.claimed_by = :me
    RETURNING outbox_message.id, outbox_message.invites
    """
).columns(
    OutboxMessage.__table__.c.id,
    OutboxMessage.__table__.c.invites,
)
"""Accepted sends on SQLite (``Dispatcher._update_sent``); the history rows follow. ``+status``
keeps SQLite off the status index (every claimed row, the JSON array re-read for each): the
array is read once and each row found by its primary key."""


def _with_claim_history(claim: Any, at: datetime, source: str) -> Select[Any]:
    """PostgreSQL: the claim's UPDATE ... RETURNING with its history rows written by the same
    statement (a data-modifying CTE), one round trip instead of two."""
    claimed = claim.cte("claimed")
    history = insert(OutboxStatusChange).from_select(
        ["message_id", "at", "from_status", "to_status", "source", "detail"],
        select(
            claimed.c.id,
            literal(at, OutboxStatusChange.__table__.c.at.type),
            literal("planned"),
            literal("claimed"),
            literal(source),
            literal("attempt ") + cast(claimed.c.attempts, String),
        ),
    )
    return select(claimed).add_cte(history.cte("history"))


def _accepted_detail(values: Mapping[str, Any]) -> str:
    """The history detail of an accepted send."""
    return f"accepted by {values['provider']} as {values['provider_id']}"


def _postgres() -> bool:
    """True when the session's database is PostgreSQL."""
    return db.session.get_bind().dialect.name == "postgresql"


def _take_finished(
    finished: SimpleQueue[tuple[Claimed, Outcome | BaseException]],
) -> list[tuple[Claimed, Outcome]]:
    """Wait for one finished attempt, then take every other one already finished; an error
    a worker raised is raised here."""
    items = [finished.get()]
    while not finished.empty():
        items.append(finished.get())
    results: list[tuple[Claimed, Outcome]] = []
    for claimed, outcome in items:
        if isinstance(outcome, BaseException):
            raise outcome
        results.append((claimed, outcome))
    return results


def _since(started: float) -> float:
    """Seconds since ``started`` (``time.perf_counter``)."""
    return timer.perf_counter() - started


def _sent_values(outcome: Outcome, gateway: str, clock: Clock) -> dict[str, Any]:
    """What an accepted send stores (as ``_record_sent``)."""
    assert outcome.sent is not None
    return {
        "status": PROVIDER_STATUS_MAP.get(outcome.sent.status or "", "queued"),
        "provider": outcome.sent.provider or gateway,
        "provider_id": outcome.sent.provider_id,
        "provider_status": outcome.sent.status,
        "at": outcome.at or clock(),
    }


def _settled_by_callback(claimed: Claimed, outcome: Outcome) -> bool:
    """True when a status callback already stored this very send (it raced the API answer)."""
    if outcome.sent is None:
        return False
    stored = db.session.scalar(
        select(OutboxMessage.provider_id).where(OutboxMessage.id == claimed.id)
    )
    return stored == outcome.sent.provider_id


def _error_values(error: Exception | None) -> dict[str, Any]:
    if isinstance(error, SmsError):
        return {"error_code": error.provider_code, "error_message": str(error)[:2000]}
    return {"error_code": None, "error_message": repr(error)[:2000]}


def mark_patient_unreachable(
    patient_id: int | None,
    reason: str,
    detail: str,
    *,
    actor: str,
    at: datetime,
    contact_id: int | None = None,
) -> None:
    """Record an opt-out or an invalid number on the patient, audit it, cancel unsent SMS.

    A caregiver's number (``contact_id`` of another number than the patient's own) marks that
    contact only; the patient's reminders are re-planned to the next contact.
    """
    if patient_id is None:  # a page to a staff number: no patient to update
        return
    patient = db.session.get(Patient, patient_id)
    if patient is None:
        return
    contact = db.session.get(Contact, contact_id) if contact_id is not None else None
    if contact is not None and contact.phone_e164 != patient.phone_e164:
        _mark_contact_unreachable(patient, contact, reason, detail, actor=actor, at=at)
        return
    before = {
        "sms_opted_out_at": _iso(patient.sms_opted_out_at),
        "phone_status": patient.phone_status,
    }
    if reason == "opted_out" and patient.sms_opted_out_at is None:
        patient.sms_opted_out_at = at
    elif reason == "invalid_number" and patient.phone_status != "invalid":
        patient.phone_status = "invalid"
    else:
        return
    audit.record(
        actor,
        TERMINAL_PATIENT_ACTIONS[reason],
        entity_type="patient",
        entity_id=patient.id,
        patient_id=patient.id,
        before=before,
        after={
            "sms_opted_out_at": _iso(patient.sms_opted_out_at),
            "phone_status": patient.phone_status,
        },
        reason=f"SMS provider: {detail}"[:500],
        at=at,
    )
    db.session.flush()
    cancel_unsent(patient, reason=reason, source=actor)


def _mark_contact_unreachable(
    patient: Patient, contact: Contact, reason: str, detail: str, *, actor: str, at: datetime
) -> None:
    """The provider says a caregiver's number opted out or is invalid: that contact only."""
    before = {"opted_out_at": _iso(contact.opted_out_at), "phone_status": contact.phone_status}
    if reason == "opted_out" and contact.opted_out_at is None:
        contact.opted_out_at = at
    elif reason == "invalid_number" and contact.phone_status != "invalid":
        contact.phone_status = "invalid"
    else:
        return
    audit.record(
        actor,
        f"contact.{'sms_opted_out' if reason == 'opted_out' else 'number_invalid'}",
        entity_type="contact",
        entity_id=contact.id,
        patient_id=patient.id,
        before=before,
        after={"opted_out_at": _iso(contact.opted_out_at), "phone_status": contact.phone_status},
        reason=f"SMS provider: {detail}"[:500],
        at=at,
    )
    db.session.flush()
    cancel_unsent_to_contact(contact.id, reason=reason, source=actor)
    plan_patient(patient, now=at, source=actor)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- entry points for the CLI and jobs ---------------------------------------------------------


def gateway_from_config() -> SmsGateway:
    """The gateway named by SMS_BACKEND, built once per app and process."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cached = app.extensions.get("cadence.sms_gateway")
    if cached is None:
        with _gateway_lock:
            cached = app.extensions.get("cadence.sms_gateway")
            if cached is None:
                cached = make_gateway(app.config)
                app.extensions["cadence.sms_gateway"] = cached
    return cached


_gateway_lock = threading.Lock()


def dispatch_due(
    now: datetime | None = None,
    *,
    actor: str = "system",
    gateway: SmsGateway | None = None,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] | None = None,
) -> DispatchReport:
    """Send everything due (at ``now``, default the clock) with the configured gateway."""
    dispatcher = Dispatcher(
        gateway or gateway_from_config(),
        DispatchSettings.from_config(current_app.config),
        actor=actor,
    )
    report = dispatcher.run(now, limit=limit, should_stop=should_stop, progress=progress)
    if report.claimed:
        logger.info("dispatch: %s", report.summary())
    return report


def due_messages(now: datetime, *, limit: int | None = None) -> list[OutboxMessage]:
    """The planned messages due at ``now`` (nothing is claimed: for --dry-run)."""
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.status == "planned", OutboxMessage.due_at <= now)
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(db.session.scalars(stmt))


def count_due(now: datetime) -> int:
    """How many planned messages are due at ``now``."""
    stmt = select(func.count()).where(
        OutboxMessage.status == "planned", OutboxMessage.due_at <= now
    )
    return int(db.session.scalar(stmt) or 0)


# -- reconciliation ----------------------------------------------------------------------------


@dataclass
class ReconcileReport:
    """What one reconcile run did."""

    lease_expired: int = 0
    checked: int = 0
    found: int = 0
    resend: int = 0
    still_unknown: int = 0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"expired leases {self.lease_expired}, checked {self.checked}, found at provider "
            f"{self.found}, to resend {self.resend}, still unknown {self.still_unknown}"
        )


def reconcile(
    *,
    gateway: SmsGateway | None = None,
    settings: DispatchSettings | None = None,
    clock: Clock = utcnow,
    source: str = "reconciler",
) -> ReconcileReport:
    """Resolve messages that may or may not have been sent; never resend one that exists."""
    gateway = gateway or gateway_from_config()
    settings = settings or DispatchSettings.from_config(current_app.config)
    report = ReconcileReport()
    now = clock()
    report.lease_expired = _expire_leases(now, source)
    db.session.commit()
    cutoff = now - settings.settle
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.status == "unknown", OutboxMessage.updated_at <= cutoff)
        .order_by(OutboxMessage.id)
    ).all()
    for row in rows:
        report.checked += 1
        _reconcile_one(row, gateway, settings, clock(), source, report)
        db.session.commit()
    if report.checked or report.lease_expired:
        logger.info("reconcile: %s", report.summary())
    return report


def _expire_leases(now: datetime, source: str) -> int:
    stale = db.session.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.status == "claimed", OutboxMessage.claimed_until < now
        )
    ).all()
    count = 0
    for message_id in stale:
        count += transition(
            message_id,
            expect=("claimed",),
            to="unknown",
            source=source,
            detail="lease expired (dispatcher stopped mid-send?): may have been sent",
            values={"error_reason": "lease_expired"},
            at=now,
        )
    return count


def _reconcile_one(
    row: OutboxMessage,
    gateway: SmsGateway,
    settings: DispatchSettings,
    now: datetime,
    source: str,
    report: ReconcileReport,
) -> None:
    to = row.sent_to or row.recipient or (row.patient.phone_e164 if row.patient else "")
    since = (row.first_attempt_at or row.created_at) - settings.lookup_margin
    try:
        candidates = gateway.find_sent(to, since, now + settings.lookup_margin)
    except SmsError as exc:
        report.still_unknown += 1
        logger.warning("reconcile %s: provider lookup failed: %s", row.id, exc)
        return
    match = _match(row, candidates)
    if match is not None:
        report.found += 1
        status = PROVIDER_STATUS_MAP.get(match.status, "queued")
        transition(
            row.id,
            expect=("unknown",),
            to=status,
            source=source,
            detail=f"found at {match.provider or gateway.name} as {match.provider_id} "
            f"({match.status})",
            values={
                "provider": match.provider or gateway.name,
                "provider_id": match.provider_id,
                "provider_status": match.status,
                "sent_at": match.date_created,
                "sent_to": to,
                "claimed_by": None,
                "claimed_until": None,
                "error_reason": None,
                "error_code": match.error_code,
            },
            at=now,
        )
        return
    report.resend += 1
    transition(
        row.id,
        expect=("unknown",),
        to="planned",
        source=source,
        detail=f"not found at {gateway.name}: safe to send again",
        values={"due_at": now, "claimed_by": None, "claimed_until": None, "error_reason": None},
        at=now,
    )


def _match(row: OutboxMessage, candidates: list[ProviderMessage]) -> ProviderMessage | None:
    """The provider's copy of ``row``: by our reference where the provider keeps one (Tencent
    SessionContext, Alibaba OutId; a batch's reference names every member, and the lookup is
    by the member's own number), else by the exact body; never one another row owns."""
    same_body = [
        c
        for c in candidates
        if (
            reference_covers(c.reference, row.id) if c.reference is not None else c.body == row.body
        )
    ]
    if not same_body:
        return None
    known = set(
        db.session.scalars(
            select(OutboxMessage.provider_id).where(
                OutboxMessage.provider_id.in_([c.provider_id for c in same_body]),
                OutboxMessage.id != row.id,
            )
        )
    )
    fresh = [c for c in same_body if c.provider_id not in known]
    return min(fresh, key=lambda c: c.date_created) if fresh else None
