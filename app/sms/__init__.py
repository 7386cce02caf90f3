"""SMS adapters: one small gateway interface, chosen by configuration (SMS_BACKEND).

Plain configuration values in, no Flask or SQLAlchemy here. ``make_gateway(app.config)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.sms.base import (
    AmbiguousSmsError,
    ProviderMessage,
    RetryableSmsError,
    SentMessage,
    SmsAuthError,
    SmsError,
    SmsGateway,
    TerminalSmsError,
)
from app.sms.console import ConsoleGateway
from app.sms.segments import SegmentInfo, count_segments, with_signature
from app.sms.twilio_gateway import TwilioGateway

__all__ = [
    "KNOWN_BACKENDS",
    "AmbiguousSmsError",
    "ConsoleGateway",
    "ProviderMessage",
    "RetryableSmsError",
    "SegmentInfo",
    "SentMessage",
    "SmsAuthError",
    "SmsError",
    "SmsGateway",
    "TerminalSmsError",
    "TwilioGateway",
    "count_segments",
    "make_gateway",
    "with_signature",
]

KNOWN_BACKENDS: tuple[str, ...] = ("console", "twilio")
DEFAULT_TWILIO_TIMEOUT = 10.0


def _setting(settings: Mapping[str, Any], key: str) -> Any:
    """The value of ``key``, with None for a missing or blank value."""
    value = settings.get(key)
    if isinstance(value, str):
        value = value.strip()
    return value if value not in (None, "") else None


def _required(settings: Mapping[str, Any], key: str) -> str:
    """A required string setting, or a ValueError naming it."""
    value = _setting(settings, key)
    if value is None:
        raise ValueError(f"SMS_BACKEND=twilio needs the {key} setting")
    return str(value)


def _number(settings: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    """An optional numeric setting (int or float), or a ValueError naming it."""
    value = _setting(settings, key)
    if value is None:
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, not {value!r}") from None


def _make_twilio(settings: Mapping[str, Any]) -> TwilioGateway:
    """Build the Twilio gateway from TWILIO_* settings."""
    from_number = _setting(settings, "TWILIO_FROM_NUMBER")
    service_sid = _setting(settings, "TWILIO_MESSAGING_SERVICE_SID")
    if from_number is None and service_sid is None:
        raise ValueError(
            "SMS_BACKEND=twilio needs the TWILIO_MESSAGING_SERVICE_SID or "
            "TWILIO_FROM_NUMBER setting"
        )
    return TwilioGateway(
        _required(settings, "TWILIO_ACCOUNT_SID"),
        _required(settings, "TWILIO_AUTH_TOKEN"),
        from_number=from_number,
        messaging_service_sid=service_sid,
        timeout=_number(settings, "TWILIO_TIMEOUT", float, DEFAULT_TWILIO_TIMEOUT),
        validity_period=_number(settings, "TWILIO_VALIDITY_PERIOD", int, None),
        base_url=_setting(settings, "TWILIO_BASE_URL"),
    )


def make_gateway(settings: Mapping[str, Any]) -> SmsGateway:
    """The gateway named by settings["SMS_BACKEND"] (default "console")."""
    backend = str(_setting(settings, "SMS_BACKEND") or "console").lower()
    if backend == "console":
        return ConsoleGateway()
    if backend == "twilio":
        return _make_twilio(settings)
    raise ValueError(
        f"unknown SMS_BACKEND {backend!r}; known backends: {', '.join(KNOWN_BACKENDS)}"
    )
