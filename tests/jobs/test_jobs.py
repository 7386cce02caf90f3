"""The scheduler process: one place for triggers, fixed ids, misfire policy, clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy import select

from app.clock import FrozenClock
from app.extensions import db
from app.models import OutboxMessage
from jobs import dispatch as dispatch_job
from jobs.schedule import add_jobs, build_scheduler, job_specs
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.sms_support import (
    ROOT,
    add_due_messages,
    fake_fixture,  # noqa: F401  (the `fake` fixture)
    subprocess_env,
)


def statuses() -> list[str]:
    db.session.expire_all()
    return [r.status for r in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


def start_jobs(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobs", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_every_job_has_a_fixed_id_and_a_deliberate_misfire_policy(app: Flask) -> None:
    specs = {spec.id: spec for spec in job_specs(app.config)}

    assert {"sms-dispatch", "sms-reconcile", "sms-replan"} <= set(specs)
    assert len(specs) == len(job_specs(app.config))  # ids are unique
    dispatch = specs["sms-dispatch"]
    assert isinstance(dispatch.trigger, IntervalTrigger)
    assert dispatch.trigger.interval == timedelta(minutes=1)
    assert dispatch.misfire_grace_time == 30 and dispatch.coalesce
    assert isinstance(specs["sms-reconcile"].trigger, IntervalTrigger)
    assert isinstance(specs["sms-replan"].trigger, CronTrigger)
    assert specs["sms-replan"].misfire_grace_time == 3600
    assert all(spec.max_instances == 1 and spec.coalesce for spec in specs.values())
    assert all(spec.misfire_grace_time >= 1 for spec in specs.values())


def test_the_scheduler_holds_each_job_once_with_its_options(app: Flask) -> None:
    stop = threading.Event()
    scheduler = build_scheduler(app, stop)
    add_jobs(scheduler, app, stop)  # adding again replaces by id, never duplicates

    jobs = {job.id: job for job in scheduler.get_jobs()}

    assert sorted(jobs) == sorted(spec.id for spec in job_specs(app.config))
    assert jobs["sms-dispatch"].misfire_grace_time == 30
    assert jobs["sms-dispatch"].coalesce is True
    assert jobs["sms-dispatch"].max_instances == 1


def test_intervals_can_be_shortened_by_settings(app: Flask) -> None:
    specs = job_specs({"JOBS_DISPATCH_SECONDS": "2", "JOBS_RECONCILE_SECONDS": "4"})

    by_id = {spec.id: spec for spec in specs}
    assert by_id["sms-dispatch"].trigger.interval == timedelta(seconds=2)
    assert by_id["sms-dispatch"].misfire_grace_time == 1
    assert by_id["sms-reconcile"].trigger.interval == timedelta(seconds=4)


def test_the_dispatch_job_calls_the_service_and_honours_stop(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app_ctx.config, "SMS_RESPECT_QUIET_HOURS", False)  # any hour
    add_due_messages(3)
    stopped = threading.Event()
    stopped.set()

    dispatch_job.run(app_ctx, stopped)
    assert statuses() == ["planned"] * 3

    dispatch_job.run(app_ctx, threading.Event())
    assert statuses() == ["sent"] * 3  # the console gateway of the test configuration


def test_once_runs_every_job_and_exits(app_ctx: Flask, database_url: str, fake: FakeTwilio) -> None:
    add_due_messages(5)

    result = subprocess.run(
        [sys.executable, "-m", "jobs", "--once"],
        cwd=ROOT,
        env=subprocess_env(database_url, fake),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert statuses() == ["queued"] * 5
    assert len(fake.messages) == 5


@pytest.mark.slow
def test_the_process_sends_on_its_tick_and_stops_cleanly_on_sigterm(
    app_ctx: Flask, database_url: str, fake: FakeTwilio, clock: FrozenClock
) -> None:
    add_due_messages(40)
    fake.latency = 0.25
    settings = {"JOBS_DISPATCH_SECONDS": "1", "SMS_DISPATCH_WORKERS": "2"}
    env = subprocess_env(database_url, fake, **settings)
    started = time.monotonic()
    process = start_jobs(env)
    deadline = time.monotonic() + 60
    while len(fake.messages) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)

    assert process.returncode == 0, output
    assert "jobs process stopped" in output
    after_stop = statuses()
    assert "claimed" not in after_stop  # in-flight sends finished, the rest released
    assert 4 <= after_stop.count("queued") < 40
    assert len(fake.messages) == after_stop.count("queued")

    fake.latency = 0.0
    # The first process's clock ran from the test's now while it lived (released rows are due
    # from its last instant): the second one starts after that, by the test's clock.
    clock.advance(seconds=time.monotonic() - started + 1)
    again = start_jobs(subprocess_env(database_url, fake, **settings))
    deadline = time.monotonic() + 60
    # Until every row is sent: a claimed row is not sent yet (a dispatcher claims a whole batch,
    # so "nothing planned" comes before "everything sent"; stopping then releases the rest).
    while set(statuses()) != {"queued"} and time.monotonic() < deadline:
        time.sleep(0.2)
    again.send_signal(signal.SIGINT)
    output, _ = again.communicate(timeout=30)
    assert again.returncode == 0, output
    assert statuses() == ["queued"] * 40
    assert sorted(m.body for m in fake.messages) == sorted(
        r.body for r in db.session.scalars(select(OutboxMessage))
    )
