"""Singleton jobs (re-plan, reconcile, provider pull) run in one process at a time: a PostgreSQL
advisory lock, not one process by convention (app/services/shared/job_locks.py).

The first two tests run in both passes (on SQLite the lock is always granted: the embedded
setup has one jobs process). The process test needs PostgreSQL: three real child processes run
the real job functions in a loop, the job's work replaced by a recorder that notes when it
started and ended (and sleeps a little), and the intervals must never overlap.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from flask import Flask

from app.extensions import db
from app.services.messaging.reminders import REPLAN_ALL_JOB
from app.services.shared.job_locks import single_run
from tests.integration.sms_support import ROOT, is_postgres

CHILD = """
import json, sys, threading, time
from pathlib import Path
from app import create_app
import jobs.reconcile as reconcile_job
import jobs.replan as replan_job

log, me, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def recorder(job):
    def work(*args, **kwargs):
        started = time.time()
        time.sleep(0.15)
        with log.open("a") as out:
            out.write(json.dumps({"job": job, "who": me, "start": started, "end": time.time()}) + "\\n")
    return work

reconcile_job.reconcile = recorder("sms-reconcile")
reconcile_job.plan_fallbacks = lambda *a, **k: None
replan_job.replan_all = recorder("sms-replan")
app = create_app()
stop = threading.Event()
barrier = log.with_suffix(".ready")
with barrier.open("a") as out:
    out.write(me + "\\n")
while len(barrier.read_text().split()) < 3:  # all three start the loop together
    time.sleep(0.01)
for n in range(rounds):
    reconcile_job.run(app, stop)
    replan_job.run(app, stop)
    time.sleep(0.01 * (n % 3))
print("DONE", me)
"""


def test_the_lock_is_granted_again_once_its_holder_is_done(app_ctx: Flask) -> None:
    with single_run("test-job") as first:
        assert first
    with single_run("test-job") as again:
        assert again


def test_a_second_holder_is_refused_while_the_first_runs_on_postgresql(app_ctx: Flask) -> None:
    seen: list[bool] = []

    def other() -> None:
        with app_ctx.app_context(), single_run("test-job") as mine:
            seen.append(mine)

    with single_run("test-job") as first, single_run("another-job") as unrelated:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=30)
    assert first and unrelated
    postgres = db.engine.dialect.name == "postgresql"
    assert seen == [not postgres]  # PostgreSQL: held elsewhere; SQLite: one process, granted
    with single_run("test-job") as after:
        assert after


@pytest.mark.slow
@pytest.mark.postgres
def test_three_jobs_processes_never_run_a_singleton_job_at_the_same_time(
    app_ctx: Flask, database_url: str, tmp_path: Path
) -> None:
    assert is_postgres(database_url)
    log = tmp_path / "runs.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    env.update(
        {
            "CADENCE_ENV": "development",
            "DATABASE_URL": database_url,
            "SECRET_KEY": "job-locks-test-key",
            "SMS_BACKEND": "console",
        }
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(log), f"p{i}", "12"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [child.communicate(timeout=180)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], outputs

    runs = [json.loads(line) for line in log.read_text().splitlines()]
    for job in ("sms-reconcile", "sms-replan"):
        mine = sorted((r for r in runs if r["job"] == job), key=lambda r: r["start"])
        assert len(mine) >= 6, (job, mine)  # ran repeatedly: the lock is released each time
        overlaps = [(a, b) for a, b in itertools.pairwise(mine) if b["start"] < a["end"]]
        assert overlaps == [], overlaps
    # 36 attempts per job over three processes, each run 0.15 s: most found the lock taken.
    assert sum(r["job"] == "sms-replan" for r in runs) < 36
    assert len({r["who"] for r in runs}) >= 2  # not one process by convention


def test_sms_plan_all_waits_for_the_daily_replan_on_postgresql(app_ctx: Flask) -> None:
    """`sms plan --all` takes the daily re-plan's lock: never two re-plans of a patient at once."""
    postgres = db.engine.dialect.name == "postgresql"
    with single_run(REPLAN_ALL_JOB) as job_running:
        assert job_running
        result = app_ctx.test_cli_runner().invoke(args=["sms", "plan", "--all"])
    if postgres:
        assert result.exit_code == 1
        assert "the daily re-plan (job sms-replan) is running in another process" in result.output
        assert "Re-planning" not in result.output
    else:  # the embedded setup has one jobs process: the lock is always granted
        assert result.exit_code == 0, result.output
        assert "patients:" in result.output
    after = app_ctx.test_cli_runner().invoke(args=["sms", "plan", "--all"])
    assert after.exit_code == 0, after.output
    assert "0 patients: 0 new" in after.output
