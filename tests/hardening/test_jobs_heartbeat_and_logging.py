"""The jobs process records a heartbeat; web and jobs log in the same format to the console."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import JobsHeartbeat
from jobs import heartbeat
from jobs.schedule import job_specs
from tests.integration.sms_support import ROOT

LOG_LINE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO cadence.sms.console: SMS to "


def test_the_heartbeat_is_a_scheduled_job(app: Flask) -> None:
    specs = {spec.id: spec for spec in job_specs({"JOBS_HEARTBEAT_SECONDS": "15"})}

    assert specs["jobs-heartbeat"].func is heartbeat.run
    assert specs["jobs-heartbeat"].run_at_start


def test_the_heartbeat_job_records_this_process(app_ctx: Flask) -> None:
    heartbeat.run(app_ctx, threading.Event())
    heartbeat.run(app_ctx, threading.Event())

    db.session.expire_all()
    rows = db.session.scalars(select(JobsHeartbeat)).all()
    assert [row.process for row in rows] == [heartbeat.process_name()]
    assert rows[0].beat_at >= rows[0].started_at


def test_the_web_process_logs_console_sms_in_the_jobs_format() -> None:
    script = (
        "from app import create_app; from app.sms import ConsoleGateway; "
        "create_app('development'); ConsoleGateway().send('+8613800138000', 'hello')"
    )

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "CADENCE_ENV": "development"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert any(re.match(LOG_LINE, line) for line in result.stderr.splitlines()), result.stderr
