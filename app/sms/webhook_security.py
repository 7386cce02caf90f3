"""Validation of Twilio's X-Twilio-Signature on webhooks (status callbacks, inbound SMS)."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator


def is_valid_twilio_request(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """True when ``signature`` is Twilio's signature of ``url`` + POST ``params``.

    ``url`` must be the public URL Twilio called (scheme, host, port, path and query), e.g.
    built from a configured public base URL or behind ProxyFix. A missing signature or an
    empty auth token is never valid. ``params`` may be a Flask/werkzeug MultiDict: repeated
    keys are then signed with all their values, as Twilio does.
    """
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))
