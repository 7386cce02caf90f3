"""Two jobs PROCESSES opening the same check-ins at the same moment: each opened exactly once, and
no statement fails in the database (issue 16 §5: they claim the work with INSERT .. ON CONFLICT
DO NOTHING instead of racing on the UNIQUE key, which logged unique violations in PostgreSQL).

Each child computes the due check-ins, waits until the other one has too (a file barrier), then
opens them: both really race for every check-in. A listener on the child's engine prints every
database error, even one the application catches, so a unique violation cannot hide.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.clock import CLOCK_ENV_VAR
from app.extensions import db
from app.models import AuditEntry, CalendarEvent, CheckinSession
from tests.integration.sms_support import ROOT, enrol

pytestmark = pytest.mark.slow

PATIENTS = 12
CHILD = """
import os, sys, time
from pathlib import Path
from sqlalchemy import event
from app import create_app
from app.clock import utcnow
from app.extensions import db
from app.services.conversations.checkins import schedule

barrier, me = Path(sys.argv[1]), sys.argv[2]
app = create_app()
computed = schedule.due_events

def due_then_wait(now):
    rows = computed(now)
    (barrier / me).write_text(str(len(rows)))
    while len(list(barrier.iterdir())) < 2:
        time.sleep(0.01)
    return rows

schedule.due_events = due_then_wait
with app.app_context():
    @event.listens_for(db.engine, "handle_error")
    def show(context):
        print("DBERROR", type(context.original_exception).__name__, context.original_exception)
    report = schedule.run_due(utcnow())
    print("REPORT", report.summary())
"""


def test_two_jobs_processes_open_each_check_in_once_without_a_database_error(
    app_ctx: Flask, database_url: str, tmp_path: Path
) -> None:
    for n in range(PATIENTS):
        enrol(f"JSCH-{n:03d}", phone=f"13800{n:06d}")
    first = db.session.scalar(
        select(func.min(CalendarEvent.date)).where(CalendarEvent.kind == "checkin")
    )
    assert first is not None
    moment = datetime.combine(first, time(10, 5), tzinfo=ZoneInfo("Asia/Shanghai"))
    env = {
        **{k: v for k, v in __import__("os").environ.items() if k != "TEST_DATABASE_URL"},
        "CADENCE_ENV": "development",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "subprocess-test-key",
        "SMS_BACKEND": "console",
        "ESCALATION_PAGE_NOW": "0",
        CLOCK_ENV_VAR: moment.astimezone(UTC).isoformat(),
    }
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(barrier), f"p{i}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [child.communicate(timeout=180)[0] for child in children]

    assert [child.returncode for child in children] == [0, 0], outputs
    assert all("DBERROR" not in out and "ERROR" not in out for out in outputs), outputs
    assert [(barrier / f"p{i}").read_text() for i in range(2)] == [str(PATIENTS)] * 2
    db.session.expire_all()
    sessions = db.session.scalars(select(CheckinSession)).all()
    assert len(sessions) == PATIENTS
    assert len({(s.patient_id, s.event_key) for s in sessions}) == PATIENTS
    starts = db.session.scalars(
        select(AuditEntry.entity_id).where(AuditEntry.action == "checkin.start")
    ).all()
    assert sorted(starts) == sorted(str(s.id) for s in sessions)  # each opened exactly once
    started = [int(out.split("REPORT started ")[1].split(",")[0]) for out in outputs]
    assert sum(started) == PATIENTS, outputs
