"""Alibaba Cloud receipts and replies read from MNS queues (queue mode, issue 12).

Each message goes through the same code as the HTTP pushes: SmsReport through
``provider_receipts`` (status history; a repeat only confirms), SmsUp through
``provider_replies`` into the inbound pipeline (a red reply gets the emergency answer and a
page; a repeat is stored once). A message is deleted from its queue only after that work was
committed; if it fails first, the message stays, comes back after the queue's visibility timeout
and is recognised as a duplicate where it got that far (a reply stored but not yet
interpreted, because another process holds it or one died, is finished by
``replies.process_stale``; its queue message is deleted, the stored row is the commitment). A malformed body (not base64 JSON, or
not the documented shape) is logged without its text, written to the audit log
(``message.queue_malformed``: queue, message id, reason, the text with numbers masked) and
deleted, so it neither loops forever nor vanishes unseen.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from app.extensions import db
from app.models import utcnow
from app.services.conversations.inbound import provider_replies
from app.services.messaging import provider_receipts
from app.services.shared import audit
from app.sms.aliyun_mns import (
    MalformedMessage,
    MnsAuthError,
    MnsError,
    MnsQueue,
    QueueMessage,
    decode_body,
)
from app.sms.privacy import mask_sensitive

logger = logging.getLogger("cadence.provider_queue")

MAX_BATCHES = 20  # per queue and run: a backlog is drained over a few runs, stop stays prompt
EXCERPT_CHARS = 500
MALFORMED_ACTION = "message.queue_malformed"


@dataclass
class QueueReport:
    """What one pass over the queues did."""

    receipts: int = 0  # receipts that moved a message forward
    replies: int = 0  # new replies stored and processed
    duplicates: int = 0  # receipts or replies already known (redelivered or also pushed)
    malformed: int = 0  # set aside in the audit log and deleted
    failed: int = 0  # left in the queue for redelivery
    errors: list[str] = field(default_factory=list)  # queue-level failures, e.g. refused keys


@dataclass(frozen=True)
class Source:
    """A queue and what its messages are: ``report`` (SmsReport) or ``reply`` (SmsUp)."""

    kind: str
    queue: MnsQueue


def consume(
    sources: list[Source],
    now: datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> QueueReport:
    """Receive, apply and delete what every queue holds (up to MAX_BATCHES batches each)."""
    report = QueueReport()
    for source in sources:
        for _ in range(MAX_BATCHES):
            if should_stop():
                return report
            try:
                batch = source.queue.receive()
            except MnsError as exc:
                _queue_failed(source, exc, report)
                break
            for message in batch:
                _handle(source, message, now or utcnow(), report)
            if len(batch) < source.queue.settings.batch_size:
                break
    return report


def _queue_failed(source: Source, exc: MnsError, report: QueueReport) -> None:
    if isinstance(exc, MnsAuthError):
        line = (
            f"Alibaba MNS refused the credentials for queue {source.queue.name} ({exc.code}): "
            "check ALIYUN_MNS_ACCESS_KEY_ID / ALIYUN_MNS_ACCESS_KEY_SECRET (or ALIYUN_ACCESS_KEY_*)"
        )
    else:
        line = f"Alibaba MNS queue {source.queue.name} could not be read: {exc}"
    logger.error("%s", line)
    report.errors.append(line)


def _handle(source: Source, message: QueueMessage, now: datetime, report: QueueReport) -> None:
    """Apply one message; delete it once its work is committed (or it was set aside)."""
    try:
        payload = decode_body(message.body)
        outcome = _apply(source.kind, payload, now)
    except (
        MalformedMessage,
        provider_receipts.ReceiptError,
        provider_replies.ReplyPushError,
    ) as exc:
        db.session.rollback()
        _set_aside(source, message, str(exc), now)
        report.malformed += 1
    except Exception:
        db.session.rollback()
        logger.exception(
            "MNS message %s from %s failed; left in the queue for redelivery",
            message.message_id,
            source.queue.name,
        )
        report.failed += 1
        return
    else:
        report.receipts += outcome.get("receipts", 0)
        report.replies += outcome.get("replies", 0)
        report.duplicates += outcome.get("duplicates", 0)
    try:
        source.queue.delete(message)
    except MnsError as exc:  # it comes back after the visibility timeout, as a duplicate
        logger.warning(
            "MNS message %s from %s done but not deleted (%s): it will be seen again",
            message.message_id,
            source.queue.name,
            exc,
        )


def _apply(kind: str, payload: object, now: datetime) -> dict[str, int]:
    """The push endpoints' code: receipts into the status history, replies into the pipeline."""
    if kind == "report":
        receipts = provider_receipts.parse_aliyun(payload)
        applied = provider_receipts.apply_receipts(receipts, source="aliyun-mns", at=now)
        return {"receipts": applied.updated, "duplicates": applied.ignored}
    replies = provider_replies.parse_aliyun(payload)
    results = provider_replies.receive_replies(replies, now)
    known = sum(r.status in ("duplicate", "in_progress") for r in results)
    return {"replies": len(results) - known, "duplicates": known}


def _set_aside(source: Source, message: QueueMessage, reason: str, now: datetime) -> None:
    """Log (no text) and audit (numbers masked) a malformed message before it is deleted."""
    logger.warning(
        "malformed MNS message %s from %s (delivery %s) set aside in the audit log: %s",
        message.message_id,
        source.queue.name,
        message.dequeue_count,
        mask_sensitive(reason),
    )
    audit.record(
        "system:aliyun-mns",
        MALFORMED_ACTION,
        entity_type="provider_queue",
        entity_id=message.message_id,
        after={
            "queue": source.queue.name,
            "kind": source.kind,
            "dequeue_count": message.dequeue_count,
            "body": mask_sensitive(_readable(message.body))[:EXCERPT_CHARS],
        },
        reason=mask_sensitive(reason)[:EXCERPT_CHARS],
        at=now,
    )
    db.session.commit()


def _readable(body: str) -> str:
    """The decoded text when the body is base64 of UTF-8 text, else the body as received."""
    try:
        return base64.b64decode(body.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return body
