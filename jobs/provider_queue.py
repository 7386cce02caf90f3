"""Job: read Alibaba receipts and replies from their MNS queues (queue mode, ALIYUN_MNS_*).

Runs in every jobs process (no lock): MNS hands a received message to one consumer until its
visibility timeout, and a message seen twice is a duplicate for the pipelines anyway.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask

from app.services.conversations.inbound.provider_queue import QueueReport, Source, consume
from app.sms.aliyun_mns import MnsQueue, MnsSettings, mns_settings

JOB_ID = "sms-mns-queues"
logger = logging.getLogger("cadence.jobs.provider_queue")


def sources(settings: MnsSettings) -> list[Source]:
    """The configured queues: SmsReport receipts and SmsUp replies."""
    named = (("report", settings.report_queue), ("reply", settings.reply_queue))
    return [Source(kind, MnsQueue(settings, name, kind)) for kind, name in named if name]


def run(app: Flask, stop: threading.Event) -> None:
    """The scheduled job: one pass over the configured queues."""
    run_once(app, stop)


def run_once(app: Flask, stop: threading.Event) -> QueueReport | None:
    """One pass over the queues; refused credentials are logged as an error naming the keys."""
    if stop.is_set():
        return None
    settings = mns_settings(app.config)
    if settings is None:
        return None
    queues = sources(settings)
    try:
        with app.app_context():
            report = consume(queues, should_stop=stop.is_set)
    finally:
        for source in queues:
            source.queue.close()
    if report.receipts or report.replies or report.malformed or report.failed:
        logger.info(
            "MNS queues: %s receipts, %s replies, %s duplicates, %s malformed, %s left for retry",
            report.receipts,
            report.replies,
            report.duplicates,
            report.malformed,
            report.failed,
        )
    return report
