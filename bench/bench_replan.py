"""Re-planning reminders: milliseconds and SQL statements per patient, against a bare insert.

Usage:
    python bench/bench_replan.py [--patients 20] [--workers 2]
                                 [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

One database (a temporary SQLite file, or a new schema in the given PostgreSQL). ``--patients``
patients are enrolled through the real service (calendar, reminders, audit), then timed, each
patient in its own transaction as ``sms plan --all`` does:

1. first plan: the patient's outbox emptied (not timed), ``plan_patient`` + commit, inside one
   planning run (rules read once, bodies rendered once) as ``sms plan --all`` plans;
2. baseline, same run: the same outbox rows and history rows written by a bare Core
   executemany + commit (the floor for writing that data);
3. daily re-plan, nothing changed: ``replan_all`` (fingerprint equal: skipped, no write);
4. forced re-plan, nothing changed: ``replan_all(skip_unchanged=False)`` (planned in full,
   rendered and compared, no write);
5. daily re-plan after one event of each patient moved 3 days (only its rows rewritten);
6. with ``--workers N`` (N > 1): every outbox emptied (not timed), then ``sms plan --all
   --workers N``'s service (``replan_all_in_workers``: N forked processes, disjoint shares)
   plans every patient from scratch; its speedup is against phase 1 of the same run.

Prints ms (wall clock, and CPU: steadier on a shared machine; SQLite runs inside the process,
PostgreSQL's own work is not in it; phase 6 counts its workers' CPU too) and statements per
patient for each, the ratio of the first plan to the baseline, the load average before and
after, and the projected time of ``sms plan --all`` for 10,000 patients: every patient planned
from an empty outbox (one process, and N workers), daily (unchanged patients skipped) and
forced (``--force``: every patient rendered and compared); target: < 5 minutes each.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, event, insert, select  # noqa: E402

from app import create_app  # noqa: E402
from app.clock import FrozenClock, set_clock, utcnow  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (  # noqa: E402
    CalendarEvent,
    OutboxMessage,
    OutboxStatusChange,
    Patient,
    ReminderPlanState,
)
from app.services.messaging import reminders  # noqa: E402
from app.services.messaging.replan_workers import replan_all_in_workers  # noqa: E402
from tests.integration.sms_support import enrol  # noqa: E402
from tests.support import postgres_schema  # noqa: E402

NOW = datetime(2026, 3, 4, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
START = date(2026, 3, 10)
PLATFORM = 10_000
TARGET_SECONDS = 5 * 60


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """A fresh database: a temporary SQLite file, or a new schema in the given PostgreSQL."""
    if not url or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/replan.sqlite3"
        return
    with postgres_schema(url, "replan") as schema_url:
        yield schema_url


class Counter:
    """Counts the SQL statements the engine runs."""

    def __init__(self) -> None:
        self.count = 0
        event.listen(db.engine, "before_cursor_execute", self._note)

    def _note(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1


def measure(counter: Counter, work: Callable[[], object]) -> tuple[float, int, float]:
    """Seconds (wall clock), statements and CPU seconds of this process for ``work``."""
    before = counter.count
    started, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - started, counter.count - before, time.process_time() - cpu


def empty_outbox(patient_id: int) -> list[dict[str, Any]]:
    """Delete the patient's outbox, history and fingerprint; return the rows as they were."""
    table = OutboxMessage.__table__
    rows = [dict(r._mapping) for r in db.session.execute(select(table).where(
        table.c.patient_id == patient_id))]  # fmt: skip
    ids = select(OutboxMessage.id).where(OutboxMessage.patient_id == patient_id)
    db.session.execute(delete(OutboxStatusChange).where(OutboxStatusChange.message_id.in_(ids)))
    db.session.execute(delete(OutboxMessage).where(OutboxMessage.patient_id == patient_id))
    db.session.execute(delete(ReminderPlanState).where(ReminderPlanState.patient_id == patient_id))
    db.session.commit()
    return rows


def cpu_with_children() -> float:
    """CPU seconds of this process and of its children that ended (the workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def first_plan(patient_id: int) -> None:
    """Plan one patient from an empty outbox and commit."""
    patient = db.session.get(Patient, patient_id)
    reminders.plan_patient(patient, now=utcnow(), source="bench")
    db.session.commit()


def bare_insert(rows: list[dict[str, Any]]) -> None:
    """The floor: the same rows and one history row each, by a bare executemany."""
    db.session.execute(insert(OutboxMessage.__table__), rows)
    db.session.execute(
        insert(OutboxStatusChange.__table__),
        [{"message_id": r["id"], "at": r["created_at"], "from_status": None,
          "to_status": "planned", "source": "bench", "detail": None} for r in rows],
    )  # fmt: skip
    db.session.commit()


def move_one_event(patient_id: int) -> None:
    """Move the patient's first imaging event 3 days later (a calendar change)."""
    found = db.session.scalars(
        select(CalendarEvent)
        .where(CalendarEvent.patient_id == patient_id, CalendarEvent.kind == "imaging")
        .order_by(CalendarEvent.date)
    ).first()
    if found is not None:
        found.date = found.date + timedelta(days=3)
    db.session.commit()


def empty_every_outbox() -> None:
    """Every patient as before a first plan: no outbox rows, history or fingerprint."""
    db.session.execute(delete(OutboxStatusChange))
    db.session.execute(delete(OutboxMessage))
    db.session.execute(delete(ReminderPlanState))
    db.session.commit()


def plan_in_workers(workers: int, patients: int) -> tuple[float, float, dict[str, int]]:
    """Phase 6: wall and CPU seconds (workers included) of planning every patient from an
    empty outbox in ``workers`` processes, and the run's totals."""
    empty_every_outbox()
    started, cpu = time.perf_counter(), cpu_with_children()
    totals = replan_all_in_workers(workers=workers, now=utcnow(), source="bench")
    seconds, cpu_seconds = time.perf_counter() - started, cpu_with_children() - cpu
    if totals["patients"] != patients or totals["failed"]:
        raise SystemExit(f"the workers' run did not plan every patient: {totals}")
    return seconds, cpu_seconds, totals


def run(patients: int, url: str | None, workers: int) -> None:
    """Enrol, then time each phase and print the figures."""
    set_clock(FrozenClock(NOW))
    with database(url) as db_url:
        app = create_app("test", SQLALCHEMY_DATABASE_URI=db_url)
        with app.app_context():
            db.create_all()
            report(app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0], patients, workers)
            db.session.remove()
            db.engine.dispose()


def report(dialect: str, patients: int, workers: int) -> None:
    """The measurements, printed."""
    load_before = os.getloadavg()
    ids = [enrol(f"B-{i:05d}", start=START + timedelta(days=i % 7)).id for i in range(patients)]
    counter = Counter()
    plan = [0.0, 0, 0.0]
    base = [0.0, 0, 0.0]
    rows = 0
    with reminders.planning_run():  # as sms plan --all plans
        for patient_id in ids:
            empty_outbox(patient_id)
            for i, value in enumerate(measure(counter, lambda p=patient_id: first_plan(p))):
                plan[i] += value
            saved = empty_outbox(patient_id)
            rows += len(saved)
            for i, value in enumerate(measure(counter, lambda r=saved: bare_insert(r))):
                base[i] += value
    plan_s, base_s = plan[0], base[0]
    phases: dict[str, tuple[float, int, float]] = {
        "first plan (empty outbox)": (plan[0], int(plan[1]), plan[2]),
        "baseline: bare insert": (base[0], int(base[1]), base[2]),
    }
    now = utcnow()
    reminders.replan_all(now=now, source="bench")  # not timed: fingerprints of the rows above
    phases["re-plan, nothing changed"] = measure(
        counter, lambda: reminders.replan_all(now=now, source="bench")
    )
    phases["re-plan forced, nothing changed"] = measure(
        counter, lambda: reminders.replan_all(now=now, source="bench", skip_unchanged=False)
    )
    for patient_id in ids:
        move_one_event(patient_id)
    phases["re-plan, one event moved each"] = measure(
        counter, lambda: reminders.replan_all(now=now, source="bench"))  # fmt: skip
    parallel = plan_in_workers(workers, patients) if workers > 1 else None
    load_after = os.getloadavg()
    print(f"Re-planning on {dialect}: {patients} patients, {rows / patients:.0f} outbox rows each")
    print(f"load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after: {', '.join(f'{x:.2f}' for x in load_after)} ({os.cpu_count()} CPUs)")  # fmt: skip
    print(f"{'phase':34} {'ms/patient':>11} {'cpu ms':>7} {'statements/patient':>19} "
          f"{'10,000 patients':>16}")  # fmt: skip
    for name, (seconds, statements, cpu) in phases.items():
        per = seconds / patients
        print(f"{name:34} {per * 1000:11.1f} {cpu / patients * 1000:7.1f} "
              f"{statements / patients:19.1f} {per * PLATFORM / 60:13.1f} min")  # fmt: skip
    if parallel is not None:
        seconds, cpu, _totals = parallel
        per = seconds / patients
        print(f"{f'first plan, {workers} workers':34} {per * 1000:11.1f} "
              f"{cpu / patients * 1000:7.1f} {'-':>19} {per * PLATFORM / 60:13.1f} min")  # fmt: skip
        print(f"first plan, {workers} workers / one process (phase 1, same run): wall "
              f"{seconds / plan_s:.2f} ({plan_s / seconds:.2f}x faster), CPU "
              f"{cpu / plan[2]:.2f}")  # fmt: skip
    ratio = plan_s / base_s if base_s else float("inf")
    print(f"first plan / bare insert of the same rows: {ratio:.2f}x the floor")
    forced = phases["re-plan forced, nothing changed"][0]
    print(f"forced re-plan / bare insert of the same rows: {forced / base_s:.2f}x the floor")
    cpu_total = plan[2] / patients * PLATFORM
    print(f"first plan, one process, CPU alone (this process) per {PLATFORM:,} patients: "
          f"{cpu_total / 60:.1f} min")  # fmt: skip
    projections = {
        "worst case (every patient planned from an empty outbox)": plan_s,
        **({f"worst case with --workers {workers}": parallel[0]} if parallel is not None else {}),
        "--force (every patient rendered and compared)": forced,
        "nothing changed since the last plan (skipped)": phases["re-plan, nothing changed"][0],
    }
    for what, seconds in projections.items():
        total = seconds / patients * PLATFORM
        verdict = "met" if total < TARGET_SECONDS else "NOT met"
        print(f"sms plan --all at {PLATFORM:,} patients, {what}: {total / 60:.1f} min; "
              f"target < {TARGET_SECONDS // 60} min: {verdict}")  # fmt: skip


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--workers", type=int, default=2, help="phase 6's processes (1: no phase 6)"
    )
    args = parser.parse_args()
    run(args.patients, args.database_url, args.workers)


if __name__ == "__main__":
    main()
