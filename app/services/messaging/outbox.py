"""Shared outbox helpers: guarded status changes with history, and the queries the UI needs.

Every status change is a conditional UPDATE (``WHERE status IN expected``) so that planners,
dispatchers, reconcilers and status callbacks running at the same time can never undo each
other's work; the history row is written only when the change happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import OUTBOX_STATUSES, OutboxMessage, OutboxStatusChange, Patient, utcnow
from app.services.messaging.invitations import follow_status
from app.services.shared.pagination import Page, paginate

PAGE_SIZE = 50
# The message log counts at most this many messages ("10,000+"): an exact count of every SMS
# ever planned reads the whole outbox.
LOG_COUNT_CAP = 10_000


def transition(
    message_id: int,
    *,
    expect: Iterable[str],
    to: str,
    source: str,
    detail: str | None = None,
    values: Mapping[str, Any] | None = None,
    claimed_by: str | None = None,
    at: datetime | None = None,
    from_status: str | None = None,
) -> bool:
    """Move one message from one of ``expect`` to ``to`` (and set ``values``); False if not.

    A check-in invited by the message follows (``invitations.follow_status``).
    """
    at = at or utcnow()
    expected = tuple(expect)
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status.in_(expected))
        .values(status=to, updated_at=at, **dict(values or {}))
        .returning(OutboxMessage.invites)
        .execution_options(synchronize_session=False)
    )
    if claimed_by is not None:
        stmt = stmt.where(OutboxMessage.claimed_by == claimed_by)
    changed = db.session.execute(stmt).first()
    if changed is None:
        return False
    if from_status is None and len(expected) == 1:
        from_status = expected[0]
    add_history(message_id, from_status, to, source=source, detail=detail, at=at)
    follow_status(changed.invites, to, at)
    return True


def add_history(
    message_id: int,
    from_status: str | None,
    to_status: str,
    *,
    source: str,
    detail: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append one status-history row (no ORM object: cheap in the dispatcher's hot path)."""
    db.session.execute(
        _HISTORY_ROW,
        {
            "p_message": message_id,
            "p_at": at or utcnow(),
            "p_from": from_status,
            "p_to": to_status,
            "p_source": source[:120],
            "p_detail": detail,
        },
    )


_HISTORY_ROW = insert(OutboxStatusChange).values(
    message_id=bindparam("p_message"),
    at=bindparam("p_at", type_=OutboxStatusChange.at.type),
    from_status=bindparam("p_from", type_=OutboxStatusChange.from_status.type),
    to_status=bindparam("p_to"),
    source=bindparam("p_source"),
    detail=bindparam("p_detail", type_=OutboxStatusChange.detail.type),
)
"""Built once: pages, replies and every dispatched message add history rows."""


@dataclass(frozen=True)
class MessageFilter:
    """What the message log shows: one patient, one status, one kind, a local date range."""

    patient: str | None = None
    status: str | None = None
    kind: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    statuses: tuple[str, ...] = ()
    due_until: datetime | None = None
    due_after: datetime | None = None

    @property
    def active(self) -> bool:
        """True when any filter is set (the tab's bounds are not filters)."""
        return any((self.patient, self.status, self.kind, self.date_from, self.date_to))


def message_log(
    filters: MessageFilter, *, tz: ZoneInfo, page: int = 1, per_page: int = PAGE_SIZE
) -> Page:
    """Messages matching ``filters``, latest send time first, one page of them."""
    conditions = _log_conditions(filters, tz)
    stmt = (
        select(OutboxMessage)
        .join(Patient)
        .options(selectinload(OutboxMessage.patient))
        .where(*conditions)
    )
    # Counted on ids only (no wide rows in the COUNT).
    counted = select(OutboxMessage.id).join(Patient).where(*conditions)
    if filters.due_after:
        ordered = stmt.order_by(OutboxMessage.send_after, OutboxMessage.id)
    else:
        ordered = stmt.order_by(OutboxMessage.send_after.desc(), OutboxMessage.id.desc())
    return paginate(ordered, page, per_page, count_query=counted, count_cap=LOG_COUNT_CAP)


def _log_conditions(filters: MessageFilter, tz: ZoneInfo) -> list[Any]:
    """The WHERE terms of the message log for ``filters``."""
    conditions: list[Any] = []
    if filters.patient:
        needle = filters.patient.strip()
        conditions.append(or_(Patient.study_id == needle, Patient.study_id.ilike(f"%{needle}%")))
    if filters.status:
        conditions.append(OutboxMessage.status == filters.status)
    if filters.kind:
        conditions.append(OutboxMessage.kind == filters.kind)
    if filters.date_from:
        start = datetime.combine(filters.date_from, time(0), tzinfo=tz)
        conditions.append(OutboxMessage.send_after >= start)
    if filters.date_to:
        end = datetime.combine(filters.date_to + timedelta(days=1), time(0), tzinfo=tz)
        conditions.append(OutboxMessage.send_after < end)
    if filters.statuses:
        conditions.append(OutboxMessage.status.in_(filters.statuses))
    if filters.due_until:
        conditions.append(OutboxMessage.send_after < filters.due_until)
    if filters.due_after:
        conditions.append(OutboxMessage.send_after >= filters.due_after)
    return conditions


def status_counts() -> dict[str, int]:
    """How many messages are in each status (for the log's summary and health checks)."""
    rows = db.session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    ).all()
    return {status: int(count) for status, count in rows}


@dataclass(frozen=True)
class CappedCount:
    """A count that stopped at a cap: ``n`` messages, or more when ``capped`` ("10,000+")."""

    n: int
    capped: bool = False

    def __add__(self, other: CappedCount) -> CappedCount:
        return CappedCount(self.n + other.n, self.capped or other.capped)

    def __bool__(self) -> bool:
        return self.n > 0

    def __str__(self) -> str:
        return f"{self.n:,}+" if self.capped else str(self.n)


SENT_STATUSES = ("queued", "sending", "sent", "delivered")
PROBLEM_STATUSES = ("failed", "undelivered", "blocked", "expired", "unknown")


@dataclass(frozen=True)
class LogSummary:
    """The message log's figures: messages per status and the three totals, each capped."""

    by_status: dict[str, CappedCount]

    def total(self, statuses: Iterable[str]) -> CappedCount:
        """The sum over ``statuses`` (capped when one of them is)."""
        return sum((self.by_status.get(s, CappedCount(0)) for s in statuses), CappedCount(0))

    @property
    def planned(self) -> CappedCount:
        """Planned, not yet handed to the provider."""
        return self.by_status.get("planned", CappedCount(0))

    @property
    def sent(self) -> CappedCount:
        """Queued, sending, sent or delivered."""
        return self.total(SENT_STATUSES)

    @property
    def problems(self) -> CappedCount:
        """Failed, undelivered, blocked, expired or unknown."""
        return self.total(PROBLEM_STATUSES)


def log_summary(*, cap: int | None = None) -> LogSummary:
    """Messages per status, each counted up to ``cap`` (LOG_COUNT_CAP) on the status indexes
    (an exact GROUP BY reads the whole outbox: 1.4 million rows at 10,000 patients)."""
    cap = LOG_COUNT_CAP if cap is None else cap
    by_status = {}
    for status in OUTBOX_STATUSES:
        some = select(OutboxMessage.id).where(OutboxMessage.status == status).limit(cap + 1)
        n = int(db.session.scalar(select(func.count()).select_from(some.subquery())) or 0)
        if n:
            by_status[status] = CappedCount(min(n, cap), n > cap)
    return LogSummary(by_status)


def next_planned(patient_id: int, *, limit: int = 5) -> list[OutboxMessage]:
    """The patient's next messages waiting to be sent, soonest first."""
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.patient_id == patient_id, OutboxMessage.status == "planned")
            .order_by(OutboxMessage.send_after, OutboxMessage.id)
            .limit(limit)
        )
    )


def problems(*, limit: int = 20) -> list[OutboxMessage]:
    """Messages that need a person: failed, undelivered, blocked, expired or still unknown."""
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.status.in_(("failed", "undelivered", "blocked", "expired", "unknown"))
            )
            .order_by(OutboxMessage.updated_at.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class OutboxHealth:
    """Is sending keeping up? The oldest overdue message, unclear ones, recent problems."""

    oldest_due_seconds: float
    unknown: int
    stuck_claims: int
    problems_last_day: int

    @property
    def healthy(self) -> bool:
        """True when a dispatcher runs (nothing due for over 5 minutes) and nothing is stuck."""
        return self.oldest_due_seconds <= 300 and self.stuck_claims == 0

    def to_json(self) -> dict[str, object]:
        """For a health endpoint or monitoring."""
        return {
            "healthy": self.healthy,
            "oldest_due_seconds": round(self.oldest_due_seconds),
            "unknown": self.unknown,
            "stuck_claims": self.stuck_claims,
            "problems_last_day": self.problems_last_day,
        }


def health(now: datetime | None = None) -> OutboxHealth:
    """How far behind sending is (a jobs process must run for the oldest due to stay small)."""
    now = now or utcnow()
    oldest = db.session.scalar(
        select(func.min(OutboxMessage.due_at)).where(
            OutboxMessage.status == "planned", OutboxMessage.due_at <= now
        )
    )
    counts = dict(
        db.session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.status.in_(("unknown", "claimed")))
            .where((OutboxMessage.status == "unknown") | (OutboxMessage.claimed_until < now))
            .group_by(OutboxMessage.status)
        ).all()
    )
    problems_recent = db.session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.status.in_(("failed", "undelivered", "blocked")),
            OutboxMessage.updated_at >= now - timedelta(days=1),
        )
    )
    return OutboxHealth(
        oldest_due_seconds=(now - oldest).total_seconds() if oldest else 0.0,
        unknown=int(counts.get("unknown", 0)),
        stuck_claims=int(counts.get("claimed", 0)),
        problems_last_day=int(problems_recent or 0),
    )
