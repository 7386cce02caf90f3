"""Pull what the domestic providers hold: receipts and replies a push may have lost.

Tencent: ``PullSmsSendStatus`` and ``PullSmsReplyStatus`` (each item is handed out once).
Alibaba: ``QuerySendDetails`` for our messages still waiting for a receipt (its replies come by
push or from the MNS queue: ``provider_queue``). Then pushed receipts are checked against
the query APIs and silent messages re-checked (app/services/messaging/receipt_checks.py). Everything goes through the same
parsers and pipelines as the pushes, so a receipt or reply seen both ways counts once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage, utcnow
from app.services.conversations.inbound import provider_replies
from app.services.messaging import provider_receipts, receipt_checks
from app.sms import (
    AliyunGateway,
    FailoverGateway,
    SmsError,
    SmsGateway,
    TencentGateway,
    reference_covers,
)
from app.sms.aliyun_gateway import biz_id_of

logger = logging.getLogger("cadence.provider_pull")

WAITING = ("queued", "sending", "sent")
LOOK_BACK = timedelta(days=2)


@dataclass
class PullReport:
    """What one pull did."""

    receipts: int = 0
    replies: int = 0
    errors: int = 0
    corrected: int = 0  # pushed receipts the provider's query contradicted


def providers_of(gateway: SmsGateway) -> list[SmsGateway]:
    """The single gateways behind ``gateway`` (a failover gateway has two)."""
    if isinstance(gateway, FailoverGateway):
        return [gateway.primary, gateway.secondary]
    return [gateway]


def pull(gateway: SmsGateway, now: datetime | None = None) -> PullReport:
    """Pull receipts and replies from every domestic provider behind ``gateway``."""
    now = now or utcnow()
    report = PullReport()
    for single in providers_of(gateway):
        try:
            if isinstance(single, TencentGateway):
                _pull_tencent(single, now, report)
            elif isinstance(single, AliyunGateway):
                _pull_aliyun(single, now, report)
        except SmsError as exc:
            report.errors += 1
            logger.warning("pull from %s failed: %s", single.name, exc)
    checked = receipt_checks.recheck(gateway, now, after=recheck_after())
    report.receipts += checked.settled
    report.corrected += checked.corrected
    report.errors += checked.errors
    return report


def recheck_after() -> timedelta:
    """How long a message may wait for its receipt before the query is asked (minutes)."""
    minutes = current_app.config.get("SMS_RECEIPT_RECHECK_MINUTES") or 30
    return timedelta(minutes=int(minutes))


def _pull_tencent(gateway: TencentGateway, now: datetime, report: PullReport) -> None:
    receipts = gateway.pull_receipts()
    if receipts:
        parsed = provider_receipts.parse_tencent(receipts)
        report.receipts += provider_receipts.apply_receipts(parsed, source="tencent-pull").updated
    replies = gateway.pull_replies()
    if replies:
        results = provider_replies.receive_replies(provider_replies.parse_tencent(replies), now)
        report.replies += sum(r.status != "duplicate" for r in results)


def _pull_aliyun(gateway: AliyunGateway, now: datetime, report: PullReport) -> None:
    rows = db.session.execute(
        select(
            OutboxMessage.id,
            OutboxMessage.sent_to,
            OutboxMessage.provider_id,
            OutboxMessage.sent_at,
        )
        .where(
            OutboxMessage.provider == "aliyun",
            OutboxMessage.status.in_(WAITING),
            OutboxMessage.sent_at >= now - LOOK_BACK,
        )
        .order_by(OutboxMessage.id)
        .limit(200)
    ).all()
    for row in rows:
        day = (row.sent_at + timedelta(hours=8)).strftime("%Y%m%d")
        biz_id = biz_id_of(row.provider_id)
        found = [
            m
            for m in gateway.details(row.sent_to or "", day, biz_id)
            if reference_covers(m.reference, row.id)
        ]
        final = [m for m in found if m.status in ("delivered", "undelivered")]
        if not final:
            continue
        receipt = provider_receipts.Receipt(
            provider="aliyun",
            provider_id=row.provider_id or f"outid:{row.id}",
            delivered=final[0].status == "delivered",
            reference=row.id,
            error_text=None if final[0].status == "delivered" else "undelivered (QuerySendDetails)",
        )
        report.receipts += provider_receipts.apply_receipts([receipt], source="aliyun-pull").updated
