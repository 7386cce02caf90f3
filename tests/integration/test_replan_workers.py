"""`sms plan --all --workers N`: processes sharing the patients write what one process writes."""

from __future__ import annotations

import os
import pty
import select as select_module
import subprocess
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select

from app.extensions import db
from app.models import OutboxMessage, OutboxStatusChange, ReminderPlanState
from app.services.messaging import reminders, replan_workers
from tests.integration.sms_support import ROOT, TODAY, enrol, flask_command, subprocess_env

pytestmark = pytest.mark.slow

START = date(2026, 3, 10)
CONTENT = (
    "patient_id",
    "dedupe_key",
    "kind",
    "status",
    "body",
    "locale",
    "segments",
    "encoding",
    "send_after",
    "due_at",
    "expires_at",
    "contact_id",
    "error_reason",
)


def enrol_several() -> list[int]:
    """Five patients on different dates, one in English, one opted out (nothing planned)."""
    patients = [
        enrol(
            f"JSCH-9{i:02d}",
            start=START + timedelta(days=4 * i),
            locale="en" if i == 2 else "zh",
            phone=f"1380013{9000 + i}",  # distinct whatever the hash seed
        )
        for i in range(5)
    ]
    patients[3].sms_opted_out_at = reminders.planning_moment(TODAY)
    db.session.commit()
    return [patient.id for patient in patients]


def empty_outboxes() -> None:
    """Every patient as before a first plan: no outbox rows, history or fingerprint."""
    db.session.execute(delete(OutboxStatusChange))
    db.session.execute(delete(OutboxMessage))
    db.session.execute(delete(ReminderPlanState))
    db.session.commit()


def outbox_content() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The outbox rows and their history rows, by natural key (ids depend on write order; the
    child's clock ticks, so the times rows were written at are left out)."""
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxMessage)).all()
    key_of = {row.id: (row.patient_id, row.dedupe_key) for row in rows}
    messages = sorted(
        (*(getattr(row, name) for name in CONTENT), row.event_keys, row.items, row.notes,
         row.invites)
        for row in rows
    )  # fmt: skip
    history = sorted(
        (key_of[h.message_id], h.from_status, h.to_status, h.source, h.detail)
        for h in db.session.scalars(select(OutboxStatusChange))
    )
    return messages, history


def plan_all(database_url: str, *args: str) -> tuple[int, str, str]:
    """A real `flask --app app sms plan --all ARGS` process on the test database; its exit code,
    output and error output (a terminal, so the progress bar draws its counts)."""
    env = subprocess_env(database_url, None)
    main, terminal = pty.openpty()
    with os.fdopen(main, "rb", buffering=0) as screen:
        try:
            done = subprocess.run(
                flask_command("sms", "plan", "--all", *args),
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=terminal,
                text=True,
                timeout=300,
            )
        finally:
            os.close(terminal)
        drawn = b""
        while select_module.select([screen], [], [], 0)[0]:
            try:
                chunk = screen.read(65536)
            except OSError:  # the terminal's other end is closed and everything read
                break
            if not chunk:
                break
            drawn += chunk
    return done.returncode, done.stdout, drawn.decode("utf-8", "replace")


def test_two_workers_write_the_rows_one_process_writes(app_ctx: Flask, database_url: str) -> None:
    enrol_several()
    empty_outboxes()

    one = plan_all(database_url)
    alone = outbox_content()
    empty_outboxes()
    two = plan_all(database_url, "--workers", "2")
    shared = outbox_content()
    again = plan_all(database_url, "--workers", "2")

    assert one[0] == 0, one[2]
    assert two[0] == 0, two[2]
    messages, history = alone
    assert len(messages) > 200 and len(history) == len(messages)
    assert len({row[0] for row in messages}) == 4  # the opted-out patient has nothing planned
    assert shared == alone
    totals = f"5 patients: {len(messages)} new, 0 cancelled, 0 unchanged (skipped)"
    assert totals in one[1] and totals in two[1]
    assert "Re-planning" in two[2] and "5/5" in two[2]  # the bar counted every patient
    # The workers stored each patient's fingerprint: the next run finds nothing changed.
    assert again[0] == 0, again[2]
    assert "5 patients: 0 new, 0 cancelled, 5 unchanged (skipped)" in again[1]


def test_workers_share_the_patients_without_overlap(
    app_ctx: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = enrol_several()
    empty_outboxes()
    seen = tmp_path / "seen.txt"
    replan = reminders.replan_patient

    def noting(patient_id: int, **kwargs: Any) -> reminders.PlanResult:
        with seen.open("a") as out:  # appended by whichever process plans the patient
            out.write(f"{os.getpid()} {patient_id}\n")
        return replan(patient_id, **kwargs)

    monkeypatch.setattr(reminders, "replan_patient", noting)
    told: list[int] = []

    totals = replan_workers.replan_all_in_workers(
        workers=2, now=reminders.planning_moment(TODAY), source="test", progress=told.append
    )

    lines = [line.split() for line in seen.read_text().splitlines()]
    by_process: dict[str, list[int]] = {}
    for pid, patient_id in lines:
        by_process.setdefault(pid, []).append(int(patient_id))
    assert len(by_process) == 2 and str(os.getpid()) not in by_process
    planned = sorted(patient_id for share in by_process.values() for patient_id in share)
    assert planned == ids  # each patient once, by one process
    assert totals["patients"] == 5 and totals["failed"] == 0 and totals["created"] > 200
    assert sum(told) == 5
    assert db.session.scalar(select(OutboxMessage.id).limit(1)) is not None


def test_a_worker_that_dies_counts_its_patients_as_failed(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = enrol_several()
    doomed = replan_workers.shares(ids, 2)[1]
    replan: Callable[..., dict[str, int]] = reminders.replan_patients

    def dying(share: list[int], **kwargs: Any) -> dict[str, int]:
        if list(share) == doomed:
            os._exit(3)  # the process ends without a word, as a killed worker would
        return replan(share, **kwargs)

    monkeypatch.setattr(reminders, "replan_patients", dying)

    totals = replan_workers.replan_all_in_workers(
        workers=2, now=reminders.planning_moment(TODAY), source="test"
    )

    assert totals["failed"] == len(doomed) and totals["patients"] == len(ids) - len(doomed)


def test_shares_are_disjoint_blocks_dealt_in_turn() -> None:
    ids = list(range(1, 251))

    dealt = replan_workers.shares(ids, 2, block=50)

    assert dealt == [ids[0:50] + ids[100:150] + ids[200:250], ids[50:100] + ids[150:200]]
    assert replan_workers.shares([1, 2, 3], 2, block=50) == [[1, 2], [3]]
    assert replan_workers.shares([1, 2, 3], 5, block=50) == [[1], [2], [3]]
    assert replan_workers.shares([], 2) == []


def test_one_worker_plans_in_this_process(app_ctx: Flask) -> None:
    ids = enrol_several()
    empty_outboxes()
    now: datetime = reminders.planning_moment(TODAY)

    totals = replan_workers.replan_all_in_workers(workers=1, now=now, source="test")

    assert totals["patients"] == len(ids) and totals["created"] > 200
