"""Receipts checked against the provider's own query API (Tencent Cloud, Alibaba Cloud).

Neither provider signs its receipt pushes, so a pushed receipt is only a hint until the query API
agrees. ``recheck`` asks the provider (``find_sent``: Tencent PullSmsSendStatusByPhoneNumber,
Alibaba QuerySendDetails) about two kinds of message:

- a pushed final receipt not checked yet: when the query agrees, the history says so; when it
  contradicts (another final status, or no final receipt at all), the query wins: the status is
  corrected, with the push and the query in the history and an audit row;
- a message still waiting for its receipt after ``after`` minutes (a lost push): the query's
  final status is applied like a receipt (statuses only move forward).

A message the query does not show is left alone and counted: never resent from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select

from app.extensions import db
from app.models import OutboxMessage, OutboxStatusChange, utcnow
from app.services.messaging.outbox import add_history, transition
from app.services.messaging.status_callbacks import apply_status_callback
from app.services.shared import audit
from app.sms import FailoverGateway, ProviderMessage, SmsError, SmsGateway, reference_covers

logger = logging.getLogger("cadence.receipt_checks")

DOMESTIC = ("tencent", "aliyun")
FINAL = ("delivered", "undelivered")
WAITING = ("queued", "sending", "sent")
LOOK_BACK = timedelta(days=2)
MARGIN = timedelta(minutes=10)
DEFAULT_AFTER = timedelta(minutes=30)


@dataclass
class RecheckReport:
    """What one check did."""

    confirmed: int = 0
    corrected: int = 0
    settled: int = 0
    missing: int = 0
    errors: int = 0


def recheck(
    gateway: SmsGateway,
    now: datetime | None = None,
    *,
    after: timedelta = DEFAULT_AFTER,
    limit: int = 200,
) -> RecheckReport:
    """Check pushed receipts and silent messages of every domestic provider behind ``gateway``."""
    now = now or utcnow()
    report = RecheckReport()
    singles = (
        [gateway.primary, gateway.secondary] if isinstance(gateway, FailoverGateway) else [gateway]
    )
    for single in singles:
        if single.name not in DOMESTIC:
            continue
        for row in _pushed_unchecked(single.name, now, limit):
            _check(single, row, now, report, pushed=True)
        for row in _silent(single.name, now, after, limit):
            _check(single, row, now, report, pushed=False)
    return report


def _query_source(provider: str) -> str:
    return f"{provider}-query"


def _pushed_unchecked(provider: str, now: datetime, limit: int) -> list[OutboxMessage]:
    """Rows whose final status came by push and that the query has not checked yet."""
    history = OutboxStatusChange.message_id == OutboxMessage.id
    pushed = exists().where(history, OutboxStatusChange.source == f"{provider}-receipt-push")
    checked = exists().where(history, OutboxStatusChange.source == _query_source(provider))
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.provider == provider,
            OutboxMessage.status.in_(FINAL),
            OutboxMessage.sent_at >= now - LOOK_BACK,
            pushed,
            ~checked,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def _silent(provider: str, now: datetime, after: timedelta, limit: int) -> list[OutboxMessage]:
    """Rows handed over more than ``after`` ago with no receipt yet."""
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.provider == provider,
            OutboxMessage.status.in_(WAITING),
            OutboxMessage.sent_at <= now - after,
            OutboxMessage.sent_at >= now - LOOK_BACK,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def _check(
    gateway: SmsGateway, row: OutboxMessage, now: datetime, report: RecheckReport, *, pushed: bool
) -> None:
    """Ask the provider about one row and act on its answer."""
    try:
        found = _find(gateway, row, now)
    except SmsError as exc:
        report.errors += 1
        logger.warning("receipt check of message %s at %s failed: %s", row.id, gateway.name, exc)
        return
    if found is None:
        report.missing += 1
        logger.warning("message %s: %s's query does not show it", row.id, gateway.name)
        return
    if pushed:
        _check_push(row, found, now, report)
    elif found.status in FINAL:
        result = apply_status_callback(
            row.provider_id or found.provider_id,
            found.status,
            message_id=row.id,
            at=now,
            source=_query_source(gateway.name),
            error_message=None if found.status == "delivered" else "undelivered (provider query)",
        )
        report.settled += result.outcome == "updated"


def _find(gateway: SmsGateway, row: OutboxMessage, now: datetime) -> ProviderMessage | None:
    """The provider's record of ``row``: by our reference, else by its provider id."""
    since = (row.sent_at or now) - MARGIN
    candidates = gateway.find_sent(row.sent_to or "", since, now)
    for message in candidates:
        if reference_covers(message.reference, row.id) or (
            row.provider_id and message.provider_id == row.provider_id
        ):
            return message
    return None


def _check_push(
    row: OutboxMessage, found: ProviderMessage, now: datetime, report: RecheckReport
) -> None:
    """Confirm a pushed receipt, or correct it to what the query says."""
    provider = str(row.provider)
    source = _query_source(provider)
    if found.status == row.status:
        add_history(
            row.id,
            row.status,
            row.status,
            source=source,
            detail="receipt confirmed by the provider's query",
            at=now,
        )
        db.session.commit()
        report.confirmed += 1
        return
    pushed = row.status
    detail = f"pushed receipt '{pushed}' contradicted by the provider's query: '{found.status}'"
    if not transition(
        row.id, expect=(pushed,), to=found.status, source=source, detail=detail, at=now
    ):
        db.session.rollback()
        return
    audit.record(
        f"system:{source}",
        "message.receipt_corrected",
        entity_type="outbox_message",
        entity_id=row.id,
        patient_id=row.patient_id,
        before={"status": pushed},
        after={"status": found.status},
        reason=detail,
        at=now,
    )
    db.session.commit()
    report.corrected += 1
    logger.warning("message %s: %s", row.id, detail)
