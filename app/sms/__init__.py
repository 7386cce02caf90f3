"""SMS adapters: one small gateway interface, chosen by configuration (SMS_BACKEND).

Plain configuration values in, no Flask or SQLAlchemy here. ``make_gateway(app.config)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from app.sms.aliyun_gateway import AliyunGateway
from app.sms.base import (
    AmbiguousSmsError,
    BatchSmsGateway,
    ProviderMessage,
    RetryableSmsError,
    SendAloneError,
    SentMessage,
    SmsAuthError,
    SmsError,
    SmsGateway,
    TerminalSmsError,
    batch_chunks,
    encode_references,
    reference_covers,
    reference_ids,
)
from app.sms.console import ConsoleGateway
from app.sms.failover import CircuitBreaker, FailoverGateway
from app.sms.segments import SegmentInfo, count_segments, with_signature
from app.sms.templates import ProviderRules, TemplateCatalogue
from app.sms.tencent_gateway import TencentGateway
from app.sms.twilio_gateway import TwilioGateway

__all__ = [
    "KNOWN_BACKENDS",
    "AliyunGateway",
    "AmbiguousSmsError",
    "BatchSmsGateway",
    "CircuitBreaker",
    "ConsoleGateway",
    "FailoverGateway",
    "ProviderMessage",
    "RetryableSmsError",
    "SegmentInfo",
    "SendAloneError",
    "SentMessage",
    "SmsAuthError",
    "SmsError",
    "SmsGateway",
    "TemplateCatalogue",
    "TencentGateway",
    "TerminalSmsError",
    "TwilioGateway",
    "batch_chunks",
    "count_segments",
    "encode_references",
    "make_gateway",
    "make_single_gateway",
    "provider_rules",
    "reference_covers",
    "reference_ids",
    "template_catalogue",
    "with_signature",
]

KNOWN_BACKENDS: tuple[str, ...] = ("console", "twilio", "tencent", "aliyun")
DEFAULT_TWILIO_TIMEOUT = 10.0


def _setting(settings: Mapping[str, Any], key: str) -> Any:
    """The value of ``key``, with None for a missing or blank value."""
    value = settings.get(key)
    if isinstance(value, str):
        value = value.strip()
    return value if value not in (None, "") else None


def _required(settings: Mapping[str, Any], key: str, backend: str = "twilio") -> str:
    """A required string setting, or a ValueError naming it."""
    value = _setting(settings, key)
    if value is None:
        raise ValueError(f"SMS_BACKEND={backend} needs the {key} setting")
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


def template_catalogue(settings: Mapping[str, Any]) -> TemplateCatalogue:
    """The approved templates (SMS_TEMPLATES_FILE, default app/protocols/sms_templates.yaml)."""
    base_url = _setting(settings, "PUBLIC_BASE_URL")
    return TemplateCatalogue.load(
        _setting(settings, "SMS_TEMPLATES_FILE"),
        fallback=_setting(settings, "SMS_TEMPLATE_FALLBACK"),
        constants={"PUBLIC_BASE_URL": str(base_url)} if base_url else None,
    )


def provider_rules(settings: Mapping[str, Any], provider: str) -> ProviderRules:
    """The template rules of ``provider`` (SMS_TEMPLATE_MAX_VARIABLE_LENGTH: account limit)."""
    sign = str(_setting(settings, "SMS_SIGN_NAME") or "")
    return ProviderRules(
        name=provider,
        max_length=500,
        max_variable_length=_number(settings, "SMS_TEMPLATE_MAX_VARIABLE_LENGTH", int, None),
        signature=f"【{sign}】" if sign else "",
    )


def _make_tencent(settings: Mapping[str, Any]) -> TencentGateway:
    """Build the Tencent Cloud gateway from TENCENT_* settings."""
    return TencentGateway(
        _required(settings, "TENCENT_SECRET_ID", "tencent"),
        _required(settings, "TENCENT_SECRET_KEY", "tencent"),
        sdk_app_id=_required(settings, "TENCENT_SMS_SDK_APP_ID", "tencent"),
        sign_name=_required(settings, "SMS_SIGN_NAME", "tencent"),
        templates=template_catalogue(settings),
        region=_setting(settings, "TENCENT_SMS_REGION") or "ap-guangzhou",
        timeout=_number(settings, "TENCENT_SMS_TIMEOUT", float, DEFAULT_TWILIO_TIMEOUT),
        endpoint=_setting(settings, "TENCENT_SMS_ENDPOINT"),
    )


def _make_aliyun(settings: Mapping[str, Any]) -> AliyunGateway:
    """Build the Alibaba Cloud gateway from ALIYUN_* settings."""
    return AliyunGateway(
        _required(settings, "ALIYUN_ACCESS_KEY_ID", "aliyun"),
        _required(settings, "ALIYUN_ACCESS_KEY_SECRET", "aliyun"),
        sign_name=_required(settings, "SMS_SIGN_NAME", "aliyun"),
        templates=template_catalogue(settings),
        timeout=_number(settings, "ALIYUN_SMS_TIMEOUT", float, DEFAULT_TWILIO_TIMEOUT),
        endpoint=_setting(settings, "ALIYUN_SMS_ENDPOINT"),
    )


def make_single_gateway(settings: Mapping[str, Any], backend: str) -> SmsGateway:
    """The one gateway called ``backend`` (console, twilio, tencent, aliyun)."""
    backend = backend.strip().lower()
    if backend == "console":
        return ConsoleGateway()
    if backend == "twilio":
        return _make_twilio(settings)
    if backend == "tencent":
        return _make_tencent(settings)
    if backend == "aliyun":
        return _make_aliyun(settings)
    raise ValueError(
        f"unknown SMS backend {backend!r}; known backends: {', '.join(KNOWN_BACKENDS)}"
    )


def make_gateway(settings: Mapping[str, Any]) -> SmsGateway:
    """The gateway named by SMS_BACKEND (default "console"), with SMS_FALLBACK_BACKEND behind it."""
    primary = make_single_gateway(settings, str(_setting(settings, "SMS_BACKEND") or "console"))
    fallback = _setting(settings, "SMS_FALLBACK_BACKEND")
    if fallback is None:
        return primary
    secondary = make_single_gateway(settings, str(fallback))
    if secondary.name == primary.name:
        raise ValueError("SMS_FALLBACK_BACKEND must differ from SMS_BACKEND")
    breaker = CircuitBreaker(
        threshold=_number(settings, "SMS_BREAKER_FAILURES", int, 5),
        cooldown=timedelta(seconds=_number(settings, "SMS_BREAKER_COOLDOWN_SECONDS", int, 300)),
    )
    return FailoverGateway(primary, secondary, breaker)
