"""Job: pull receipts and replies from Tencent Cloud / Alibaba Cloud (SMS_PULL_SECONDS > 0).

One process at a time (a PostgreSQL advisory lock, app/services/shared/job_locks.py): the
providers hand each pulled item out once, and Alibaba's receipt queries walk the same rows.
"""

from __future__ import annotations

import threading

from flask import Flask

from app.services.conversations.inbound.provider_pull import pull
from app.services.messaging.dispatch import gateway_from_config
from app.services.shared.job_locks import single_run

JOB_ID = "sms-provider-pull"


def run(app: Flask, stop: threading.Event) -> None:
    """Pull what the configured domestic providers hold; nothing for console or Twilio."""
    if stop.is_set():
        return
    with app.app_context(), single_run(JOB_ID) as mine:
        if mine:
            pull(gateway_from_config())
