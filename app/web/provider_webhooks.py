"""Tencent Cloud and Alibaba Cloud callbacks: delivery receipts and patients' replies.

Neither provider signs its callbacks, so each URL carries a long secret
(``/webhooks/<provider>/<SMS_CALLBACK_SECRET>/status`` and ``.../reply``), compared in constant
time; SMS_CALLBACK_ALLOWED_IPS optionally limits the source addresses; bodies are small JSON of
a strict shape (400 otherwise, nothing stored). Receipts only move a message forward and
replies are stored once, so a repeated push changes nothing. Answers: Tencent
``{"result": 0, "errmsg": "OK"}``, Alibaba ``{"code": 0, "msg": "OK"}``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from app.extensions import csrf
from app.services.conversations.inbound import provider_replies
from app.services.messaging import provider_receipts

logger = logging.getLogger("cadence.provider_webhooks")

bp = Blueprint("provider_webhooks", __name__, url_prefix="/webhooks")
MAX_BODY_BYTES = 64 * 1024
MIN_SECRET_CHARS = 24
PROVIDERS = ("tencent", "aliyun")
RECEIPT_PARSERS: dict[str, Callable[[Any], list[provider_receipts.Receipt]]] = {
    "tencent": provider_receipts.parse_tencent,
    "aliyun": provider_receipts.parse_aliyun,
}
REPLY_PARSERS: dict[str, Callable[[Any], list[provider_replies.ProviderReply]]] = {
    "tencent": provider_replies.parse_tencent,
    "aliyun": provider_replies.parse_aliyun,
}


def register_provider_webhooks(app: Flask) -> None:
    """Register the blueprint, exempt from CSRF (the providers cannot send a token)."""
    csrf.exempt(bp)
    app.register_blueprint(bp)


def _ok(provider: str) -> ResponseReturnValue:
    if provider == "aliyun":
        return jsonify({"code": 0, "msg": "OK"})
    return jsonify({"result": 0, "errmsg": "OK"})


def _guard(provider: str, secret: str) -> Any:
    """404 for a wrong provider or secret, 403 for a source outside the allow-list; the JSON."""
    expected = str(current_app.config.get("SMS_CALLBACK_SECRET") or "")
    if provider not in PROVIDERS or len(expected) < MIN_SECRET_CHARS:
        abort(404)
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        abort(404)
    if not _allowed(request.remote_addr):
        logger.warning("%s callback from a source outside SMS_CALLBACK_ALLOWED_IPS", provider)
        abort(403)
    if (request.content_length or 0) > MAX_BODY_BYTES:
        abort(413)
    payload = request.get_json(silent=True)
    if payload is None:
        abort(400)
    return payload


def _allowed(address: str | None) -> bool:
    """True when no allow-list is set, or ``address`` is in one of its networks."""
    setting = str(current_app.config.get("SMS_CALLBACK_ALLOWED_IPS") or "").strip()
    if not setting:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n.strip(), strict=False) for n in setting.split(","))


@bp.post("/<provider>/<secret>/status")
def provider_status(provider: str, secret: str) -> ResponseReturnValue:
    """Delivery receipts pushed by the provider."""
    payload = _guard(provider, secret)
    try:
        receipts = RECEIPT_PARSERS[provider](payload)
    except provider_receipts.ReceiptError as exc:
        logger.warning("%s receipt push refused: %s", provider, exc)
        abort(400)
    report = provider_receipts.apply_receipts(receipts, source=f"{provider}-receipt-push")
    logger.info(
        "%s receipts: %s updated, %s ignored, %s unknown",
        provider,
        report.updated,
        report.ignored,
        report.unknown,
    )
    return _ok(provider)


@bp.post("/<provider>/<secret>/reply")
def provider_reply(provider: str, secret: str) -> ResponseReturnValue:
    """Patients' replies pushed by the provider."""
    payload = _guard(provider, secret)
    try:
        replies = REPLY_PARSERS[provider](payload)
    except provider_replies.ReplyPushError as exc:
        logger.warning("%s reply push refused: %s", provider, exc)
        abort(400)
    provider_replies.receive_replies(replies)
    return _ok(provider)
