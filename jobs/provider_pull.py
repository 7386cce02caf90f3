"""Job: pull receipts and replies from Tencent Cloud / Alibaba Cloud (SMS_PULL_SECONDS > 0)."""

from __future__ import annotations

import threading

from flask import Flask

from app.services.conversations.inbound.provider_pull import pull
from app.services.messaging.dispatch import gateway_from_config


def run(app: Flask, stop: threading.Event) -> None:
    """Pull what the configured domestic providers hold; nothing for console or Twilio."""
    if stop.is_set():
        return
    with app.app_context():
        pull(gateway_from_config())
