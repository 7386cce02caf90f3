"""Patients' replies (上行) from Tencent Cloud and Alibaba Cloud, by push or pull.

Neither provider gives a reply an id we can trust across push and pull, so each reply gets a
deterministic one from the sender, the moment and the text: the same reply pushed twice, or
pushed and then pulled, is stored once (``InboundMessage.sid`` is unique). Every reply goes
through the normal inbound pipeline (``replies.receive_sms``); the answer leaves by the outbox.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.models import utcnow
from app.models.inbound import MAX_NUMBER_CHARS
from app.services.conversations.inbound.replies import (
    MAX_BODY_CHARS,
    InboundForm,
    InboundResult,
    receive_sms,
)

CHINA = ZoneInfo("Asia/Shanghai")
MAX_ITEMS = 100


class ReplyPushError(ValueError):
    """A pushed reply is not in the provider's shape: nothing is stored."""


@dataclass(frozen=True)
class ProviderReply:
    """One reply, provider-neutral."""

    provider: str
    sender: str
    text: str
    at: datetime

    def sid(self) -> str:
        """A stable id: provider, sender, minute-exact moment and text."""
        moment = self.at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
        digest = hashlib.sha256(f"{self.sender}|{moment}|{self.text}".encode()).hexdigest()
        return f"{self.provider}-up-{digest[:40]}"


def _field(item: dict[str, Any], key: str, limit: int) -> str:
    value = item.get(key)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
        raise ReplyPushError(f"reply field {key!r} is missing or has the wrong type")
    text = str(value).replace("\x00", "\ufffd")
    if len(text) > limit:
        raise ReplyPushError(f"reply field {key!r} is too long")
    return text


def _e164(number: str, country: str = "86") -> str:
    digits = number.strip().lstrip("+")
    if not digits.isdigit():
        raise ReplyPushError("the sender is not a phone number")
    if number.startswith("+"):
        return "+" + digits
    return f"+{country}{digits}"


def _moment(value: str) -> datetime:
    """Unix seconds, or "yyyy-MM-dd HH:mm:ss" / "yyyyMMddHHmmss" (SmsUp) in China time."""
    try:
        if value.isdigit() and len(value) != len("20260304090000"):
            return datetime.fromtimestamp(int(value), UTC)
        layout = "%Y%m%d%H%M%S" if value.isdigit() else "%Y-%m-%d %H:%M:%S"
        return datetime.strptime(value, layout).replace(tzinfo=CHINA).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        raise ReplyPushError(f"unreadable reply time {value[:30]!r}") from None


def _items(payload: Any) -> list[dict[str, Any]]:
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > MAX_ITEMS or not all(isinstance(i, dict) for i in items):
        raise ReplyPushError(f"a reply push must hold 1..{MAX_ITEMS} JSON objects")
    return items


def parse_tencent(payload: Any) -> list[ProviderReply]:
    """Tencent's reply callback (mobile, nationcode, text, time) or pulled items."""
    replies = []
    for item in _items(payload):
        country = str(item.get("nationcode") or "86")
        replies.append(
            ProviderReply(
                "tencent",
                _e164(_field(item, "mobile", MAX_NUMBER_CHARS), country),
                _field(item, "text", MAX_BODY_CHARS),
                _moment(_field(item, "time", 32)),
            )
        )
    return replies


def parse_aliyun(payload: Any) -> list[ProviderReply]:
    """Alibaba's SmsUp push (phone_number, content, send_time, sequence_id)."""
    return [
        ProviderReply(
            "aliyun",
            _e164(_field(item, "phone_number", MAX_NUMBER_CHARS)),
            _field(item, "content", MAX_BODY_CHARS),
            _moment(_field(item, "send_time", 32)),
        )
        for item in _items(payload)
    ]


def receive_replies(
    replies: list[ProviderReply], now: datetime | None = None
) -> list[InboundResult]:
    """Feed each reply to the inbound pipeline; repeats come back as "duplicate"."""
    now = now or utcnow()
    return [
        receive_sms(
            InboundForm(sid=r.sid(), from_number=r.sender, to_number=None, body=r.text), now
        )
        for r in replies
    ]
