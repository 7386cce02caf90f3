"""Provider frequency limits at dispatch: routine messages wait instead of being refused.

The dispatcher asks ``limit_waits`` about the rows it just claimed: each routine row whose number
would pass the provider's per-number limits (app/domain/sms_limits.py) gets the moment it may go
and is put back as planned until then. Answers to patients (the red emergency reply among them)
and pages to staff are urgent: never held back, and a reserve of the daily allowance is kept for
them. Limits follow SMS_BACKEND (Tencent Cloud, Alibaba Cloud); other backends have none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.domain.sms_limits import (
    FrequencyLimits,
    Sent,
    limits_from_config,
    wait_until,
)

__all__ = ["ClaimedRow", "limit_waits", "limits_from_config"]
from app.extensions import db
from app.models import OutboxMessage

URGENT_KINDS = frozenset({"page", "reply"})
# Rows that reached the provider, or are being sent now by another claim ("claimed").
HANDED_OVER = ("claimed", "queued", "sending", "sent", "delivered", "undelivered", "unknown")


@dataclass(frozen=True)
class ClaimedRow:
    """What the limits need of a claimed row."""

    id: int
    to: str
    body: str
    kind: str


def limit_waits(
    rows: Iterable[ClaimedRow], now: datetime, limits: FrequencyLimits | None
) -> dict[int, datetime]:
    """Row id -> when it may go, for each routine row a limit holds back (in claim order).

    Rows of one claim count against each other: the first to a number is assumed sent now.
    """
    rows = list(rows)
    if limits is None or not rows:
        return {}
    history = _history({r.to for r in rows if r.to}, now, {r.id for r in rows})
    waits: dict[int, datetime] = {}
    for row in sorted(rows, key=lambda r: (r.kind not in URGENT_KINDS, r.id)):
        until = wait_until(limits, history[row.to], row.body, now, urgent=row.kind in URGENT_KINDS)
        if until is None:
            history[row.to].append(Sent(now, row.body))
        else:
            waits[row.id] = until
    return waits


def _history(numbers: set[str], now: datetime, skip: set[int]) -> defaultdict[str, list[Sent]]:
    """What each number received in the last 25 hours, or is being sent by another claim."""
    found: defaultdict[str, list[Sent]] = defaultdict(list)
    if not numbers:
        return found
    at = func.coalesce(OutboxMessage.sent_at, OutboxMessage.last_attempt_at)
    rows = db.session.execute(
        select(OutboxMessage.sent_to, at, OutboxMessage.body).where(
            OutboxMessage.sent_to.in_(numbers),
            OutboxMessage.status.in_(HANDED_OVER),
            OutboxMessage.id.not_in(skip),
            at > now - timedelta(hours=25),
        )
    )
    for to, when, body in rows:
        found[to].append(Sent(_aware(when), body))
    return found


def _aware(moment: datetime) -> datetime:
    """A stored UTC time as an aware datetime."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
