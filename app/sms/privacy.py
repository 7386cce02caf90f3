"""Keep phone numbers, SMS bodies and check-in links out of logs.

``mask_phone`` is the one way a number is shown masked (logs, audit snapshots, pages):
``+8613800000001`` -> ``+86138****0001``. ``mask_sensitive`` masks every phone-number-looking
run and check-in link token in free text, and ``MaskingFilter`` applies it to every log record
a handler emits: a safety net behind the call sites, which log message ids, never bodies.
"""

from __future__ import annotations

import logging
import re

import phonenumbers

LOUD_THIRD_PARTY_LOGGERS = ("twilio.http_client",)
"""Loggers that print request parameters (the ``To`` number, the body) at INFO."""

_E164_LIKE = re.compile(r"(?<![\w+])\+\d{7,15}(?!\d)")
_CN_MOBILE = re.compile(r"(?<![\w+])1[3-9]\d{9}(?!\d)")
_CHECKIN_LINK = re.compile(r"/c/[A-Za-z0-9._~=-]{8,}")
_SHOWN_PREFIX = 3
_SHOWN_SUFFIX = 4


def mask_phone(number: str | None) -> str:
    """The number with the country code, the first 3 and the last 4 digits kept: +86138****0001."""
    text = (number or "").strip()
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else "CN")
    except phonenumbers.NumberParseException:
        return _mask_digits(text, "")
    national = phonenumbers.national_significant_number(parsed)
    return _mask_digits(national, f"+{parsed.country_code}")


def _mask_digits(digits: str, country: str) -> str:
    """``country`` + the first and last digits of ``digits``, the rest as stars."""
    digits = re.sub(r"\D", "", digits)
    if len(digits) <= _SHOWN_SUFFIX:
        return country + "****"
    head = digits[:_SHOWN_PREFIX] if len(digits) >= 10 else ""
    hidden = len(digits) - len(head) - _SHOWN_SUFFIX
    return f"{country}{head}{'*' * hidden}{digits[-_SHOWN_SUFFIX:]}"


def mask_sensitive(text: str) -> str:
    """``text`` with phone numbers masked and check-in link tokens replaced by ``<token>``."""
    text = _E164_LIKE.sub(lambda m: mask_phone(m.group(0)), text)
    text = _CN_MOBILE.sub(lambda m: mask_phone(m.group(0)), text)
    return _CHECKIN_LINK.sub("/c/<token>", text)


class MaskingFilter(logging.Filter):
    """Masks phone numbers and check-in tokens in every record (attach it to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message when it holds something to mask; never drop it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        masked = mask_sensitive(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_sensitive(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_sensitive(record.exc_text)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Add ``MaskingFilter`` to the handlers of ``logger`` (root) and quiet chatty SDK loggers."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
    quiet_third_party_loggers()


def quiet_third_party_loggers() -> None:
    """Raise the SDK loggers that print request parameters to WARNING."""
    for name in LOUD_THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
