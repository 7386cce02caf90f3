"""Every trigger of the scheduler process, in one place.

Deliberate choices (APScheduler 3, one in-memory job store per process):
- fixed job ids and ``replace_existing=True``: building the schedule twice never doubles a job;
- ``coalesce=True``: after a pause (busy process, suspended VM) a job runs once, not once per
  missed tick;
- ``misfire_grace_time``: a tick that could not start on time still runs if it is at most this
  late; later than that it is skipped because the next tick comes soon anyway (dispatch 30 s of
  a 60 s interval), while the daily re-plan may start up to an hour late;
- ``max_instances=1``: a slow tick never overlaps the next one in the same process (other
  processes may run the same job at the same time: the database claims make that safe);
- singletons: re-plan, reconcile and the provider pull run in one process at a time, whatever
  the number of jobs processes (a PostgreSQL advisory lock taken inside the job, see
  app/services/shared/job_locks.py); dispatch, check-ins and escalation claim rows and run in
  every process (for escalation that is redundancy on the safety path, not a risk).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from jobs import (
    bulk,
    checkins,
    dispatch,
    escalation,
    heartbeat,
    provider_pull,
    provider_queue,
    reconcile,
    replan,
    retention,
)

JobFunction = Callable[[Flask, threading.Event], None]


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: a fixed id, what it runs, when, and how misfires are treated."""

    id: str
    func: JobFunction
    trigger: BaseTrigger
    misfire_grace_time: int
    coalesce: bool = True
    max_instances: int = 1
    run_at_start: bool = False


def _number(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key) or os.environ.get(key)
    return float(value) if value not in (None, "") else default


def job_specs(config: Mapping[str, Any]) -> list[JobSpec]:
    """The jobs, their triggers and misfire policy (intervals overridable for tests)."""
    tz = ZoneInfo(str(config.get("CLINIC_TIMEZONE") or "Asia/Shanghai"))

    def every(job_id: str, func: JobFunction, setting: str, default: float) -> JobSpec:
        """A job run every `setting` seconds from start-up; a tick more than half an interval
        late is skipped (the next one does the same work)."""
        seconds = _number(config, setting, default)
        return JobSpec(
            id=job_id,
            func=func,
            trigger=IntervalTrigger(seconds=seconds, timezone=tz),
            misfire_grace_time=max(int(seconds // 2), 1),
            run_at_start=True,
        )

    pulls = []
    if _number(config, "SMS_PULL_SECONDS", 0) > 0:  # domestic providers: receipts and replies
        pulls.append(every(provider_pull.JOB_ID, provider_pull.run, "SMS_PULL_SECONDS", 60))
    if str(config.get("ALIYUN_MNS_ENDPOINT") or "").strip():  # Alibaba queue mode
        pulls.append(every(provider_queue.JOB_ID, provider_queue.run, "ALIYUN_MNS_POLL_SECONDS", 5))
    return [
        *pulls,
        every("sms-dispatch", dispatch.run, "JOBS_DISPATCH_SECONDS", 60),
        every(reconcile.JOB_ID, reconcile.run, "JOBS_RECONCILE_SECONDS", 300),
        every("alert-escalation", escalation.run, "ESCALATION_JOB_SECONDS", 60),
        every("checkins", checkins.run, "CHECKIN_JOB_SECONDS", 300),
        every("jobs-heartbeat", heartbeat.run, "JOBS_HEARTBEAT_SECONDS", 30),
        every("bulk-jobs", bulk.run, "JOBS_BULK_SECONDS", 5),
        JobSpec(
            id=replan.JOB_ID,
            func=replan.run,
            trigger=CronTrigger(hour=2, minute=15, timezone=tz),
            misfire_grace_time=3600,
        ),
        JobSpec(
            id="sms-retention",
            func=retention.run,
            trigger=CronTrigger(hour=3, minute=30, timezone=tz),
            misfire_grace_time=3600,
        ),
    ]


def build_scheduler(app: Flask, stop: threading.Event) -> BlockingScheduler:
    """A BlockingScheduler with every job added (in-memory store, small thread pool)."""
    tz = ZoneInfo(str(app.config.get("CLINIC_TIMEZONE") or "Asia/Shanghai"))
    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=tz,
    )
    add_jobs(scheduler, app, stop)
    return scheduler


def add_jobs(scheduler: BaseScheduler, app: Flask, stop: threading.Event) -> None:
    """Add (or replace, by fixed id) every job of ``job_specs``."""
    tz = ZoneInfo(str(app.config.get("CLINIC_TIMEZONE") or "Asia/Shanghai"))
    for spec in job_specs(app.config):
        scheduler.add_job(
            spec.func,
            trigger=spec.trigger,
            args=(app, stop),
            id=spec.id,
            name=spec.id,
            replace_existing=True,
            coalesce=spec.coalesce,
            misfire_grace_time=spec.misfire_grace_time,
            max_instances=spec.max_instances,
            # APScheduler runs on real time, not app.clock: the first run is a real second away.
            next_run_time=datetime.now(tz) + timedelta(seconds=1) if spec.run_at_start else None,
        )
