"""Delivery receipts from Tencent Cloud and Alibaba Cloud (push callbacks and pulls).

Neither provider signs its pushes, so every item is checked against a strict shape, and a
receipt only moves a message forward (status_callbacks.apply_status_callback): a repeated or
replayed push changes nothing. The provider's error text is kept for the Messages page.
Tencent: ``sid`` (SerialNo), ``ext`` (our outbox id, or a batch's id list: the member is the
one sent to ``mobile``), ``report_status`` SUCCESS/FAIL, ``errmsg``/``description``. Alibaba SmsReport: ``biz_id``, ``out_id``, ``success``,
``err_code``/``err_msg``, ``phone_number`` (a batch member is ``<biz_id>:<phone_number>``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from app.extensions import db
from app.models import OutboxMessage, utcnow
from app.services.messaging.status_callbacks import apply_status_callback
from app.sms import reference_ids
from app.sms.aliyun_gateway import found_id, is_batch_reference, member_id

logger = logging.getLogger("cadence.provider_receipts")

MAX_ITEMS = 100
MAX_FIELD = 512
MAX_BATCH = 200  # numbers in one provider request (Tencent SendSms; Alibaba: 100)


class ReceiptError(ValueError):
    """A pushed receipt is not in the provider's shape: nothing is changed."""


@dataclass(frozen=True)
class Receipt:
    """One delivery report, provider-neutral."""

    provider: str
    provider_id: str
    delivered: bool
    reference: int | None
    error_text: str | None
    batch: str | None = None  # a batch's reference (Tencent SessionContext "12-40,57")
    phone: str | None = None  # the number, to tell which member of a batch it is


@dataclass
class ReceiptReport:
    """What applying a batch of receipts did."""

    updated: int = 0
    ignored: int = 0
    unknown: int = 0


def _text(item: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = item.get(key)
    if value is None or value == "":
        if required:
            raise ReceiptError(f"receipt field {key!r} is missing")
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ReceiptError(f"receipt field {key!r} has the wrong type")
    text = str(value)
    if len(text) > MAX_FIELD:
        raise ReceiptError(f"receipt field {key!r} is too long")
    return text


def _reference(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 12 else None


def _items(payload: Any) -> list[Mapping[str, Any]]:
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > MAX_ITEMS or not all(isinstance(i, dict) for i in items):
        raise ReceiptError(f"a receipt push must hold 1..{MAX_ITEMS} JSON objects")
    return items


def parse_tencent(payload: Any) -> list[Receipt]:
    """Tencent's receipt callback (an array) or pull items, or ReceiptError."""
    receipts = []
    for item in _items(payload):
        status = _text(item, "report_status", required=True).upper()
        if status not in ("SUCCESS", "FAIL"):
            raise ReceiptError(f"unknown report_status {status!r}")
        detail = " / ".join(x for x in (_text(item, "errmsg"), _text(item, "description")) if x)
        receipts.append(
            Receipt(
                provider="tencent",
                provider_id=_text(item, "sid", required=True),
                delivered=status == "SUCCESS",
                reference=_reference(_text(item, "ext")),
                error_text=None if status == "SUCCESS" else detail or "FAIL",
                batch=_text(item, "ext") or None,
                phone=_text(item, "mobile") or None,
            )
        )
    return receipts


def parse_aliyun(payload: Any) -> list[Receipt]:
    """Alibaba's SmsReport push (an array), or ReceiptError."""
    receipts = []
    for item in _items(payload):
        success = item.get("success")
        if not isinstance(success, bool):
            raise ReceiptError("receipt field 'success' must be true or false")
        detail = " / ".join(x for x in (_text(item, "err_code"), _text(item, "err_msg")) if x)
        out_id = _text(item, "out_id")
        phone = _text(item, "phone_number")
        biz_id = _text(item, "biz_id", required=True)
        batch = is_batch_reference(out_id)
        receipts.append(
            Receipt(
                provider="aliyun",
                provider_id=member_id(biz_id, phone) if batch and phone else biz_id,
                delivered=success,
                reference=_reference(out_id),
                error_text=None if success else detail or "failed",
                batch=out_id or None,
                phone=phone or None,
            )
        )
    return receipts


def apply_receipts(
    receipts: Iterable[Receipt], *, source: str, at: datetime | None = None
) -> ReceiptReport:
    """Apply receipts (each committed); repeats and replays are ignored."""
    at = at or utcnow()
    report = ReceiptReport()
    for receipt in receipts:
        _name_by_reference(receipt)
        result = apply_status_callback(
            receipt.provider_id,
            "delivered" if receipt.delivered else "undelivered",
            message_id=receipt.reference or _batch_member(receipt),
            at=at,
            source=source,
            error_message=receipt.error_text,
        )
        if result.outcome == "updated":
            report.updated += 1
        elif result.outcome == "unknown_message":
            report.unknown += 1
        else:
            report.ignored += 1
    return report


def _batch_member(receipt: Receipt) -> int | None:
    """The member of a batch this receipt is about: the one of its ids sent to its number."""
    ids = reference_ids(receipt.batch, limit=MAX_BATCH)
    if len(ids) < 2 or not receipt.phone:
        return None
    digits = receipt.phone.lstrip("+")
    numbers = {f"+{digits}", f"+86{digits}"}
    members = db.session.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.id.in_(ids), OutboxMessage.sent_to.in_(numbers)
        )
    ).all()
    return members[0] if len(members) == 1 else None


def _name_by_reference(receipt: Receipt) -> None:
    """A row the reconciler found by OutId ("outid:<id>", or a batch member's
    "outid:<hash>:<number>") gets the receipt's real BizId."""
    if receipt.reference is not None:
        found_as = OutboxMessage.provider_id == f"outid:{receipt.reference}"
        which = OutboxMessage.id == receipt.reference
    elif receipt.provider == "aliyun" and receipt.batch and receipt.phone:
        found_as = OutboxMessage.provider_id == found_id(receipt.batch, receipt.phone)
        which = OutboxMessage.id.in_(reference_ids(receipt.batch, limit=MAX_BATCH))
    else:
        return
    db.session.execute(
        update(OutboxMessage)
        .where(which, found_as, OutboxMessage.provider == receipt.provider)
        .values(provider_id=receipt.provider_id)
    )
    db.session.commit()
