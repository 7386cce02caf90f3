"""Claiming a batch of due messages: the same cost at 10,000 and at 1,000,000 outbox rows.

Usage:
    python bench/bench_claim.py [--small 10000] [--large 1000000] [--due 2000] [--batch 50]
                                [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

One database (a temporary SQLite file, or a new schema in the given PostgreSQL): ``--small``
outbox rows, of which ``--due`` are planned and due now, the rest a history of delivered
messages and reminders planned for later. The real dispatcher's ``claim`` takes batches of
``--batch`` until every due message is claimed (timed one by one); then the due messages are
put back, the table grows to ``--large`` rows (the same mix, copied inside the database) and
the same claims are timed again. Baseline: the small table, same run. Prints the query plan
of the claim's inner SELECT (EXPLAIN) at both sizes, the median and p90 per claim, and the
ratio (target: large / small <= 1.5).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sql_profile import SqlProfile  # noqa: E402
from sqlalchemy import String, cast, func, insert, literal, or_, select, text, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import OutboxMessage, Patient  # noqa: E402
from app.services.messaging.dispatch import Dispatcher, DispatchSettings, due_query  # noqa: E402
from app.sms import ConsoleGateway  # noqa: E402
from tests.support import postgres_schema  # noqa: E402

PATIENTS = 200
TARGET = 1.5


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """A fresh database: a temporary SQLite file, or a new schema in the given PostgreSQL."""
    if not url or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/claim.sqlite3"
        return
    with postgres_schema(url, "claim") as schema_url:
        yield schema_url


def seed(rows: int, due: int, now: datetime) -> None:
    """``rows`` outbox rows for PATIENTS patients: ``due`` due now, half the rest delivered
    (in the past), half planned for the coming year."""
    db.session.execute(
        insert(Patient),
        [
            {"study_id": f"C-{i:04d}", "initials": "CL", "phone_e164": f"+86139{i:08d}",
             "protocol_code": "NCT07016737", "start_date": now.date(), "sms_consent": True}
            for i in range(PATIENTS)
        ],
    )  # fmt: skip
    ids = list(db.session.scalars(select(Patient.id).order_by(Patient.id)))
    batch = []
    for n in range(rows):
        if n < due:
            status, at = "planned", now - timedelta(minutes=1 + n % 30)
        elif n % 2:
            status, at = "delivered", now - timedelta(minutes=10 * n)
        else:
            status, at = "planned", now + timedelta(minutes=10 * n)
        batch.append({"patient_id": ids[n % PATIENTS], "dedupe_key": f"r{n}", "kind": "reminder",
                      "status": status, "send_after": at, "due_at": at, "body": f"message {n}",
                      "updated_at": at, "created_at": at})  # fmt: skip
        if len(batch) == 10000:
            db.session.execute(insert(OutboxMessage), batch)
            batch = []
    if batch:
        db.session.execute(insert(OutboxMessage), batch)
    db.session.commit()


def grow(target: int, now: datetime) -> None:
    """Copy the rows that are not due (new keys) inside the database until ``target`` rows."""
    t = OutboxMessage.__table__
    names = ["patient_id", "dedupe_key", "kind", "status", "send_after", "due_at", "body",
             "locale", "segments", "encoding", "event_keys", "items", "notes", "attempts",
             "created_at", "updated_at"]  # fmt: skip
    not_due = or_(t.c.status == "delivered", t.c.due_at > now)
    copy = 0
    while (have := count()) < target:
        copy += 1
        new_key = literal(f"copy{copy}-").op("||")(cast(t.c.id, String))
        columns = [new_key if name == "dedupe_key" else t.c[name] for name in names]
        query = select(*columns).where(not_due).order_by(t.c.id).limit(target - have)
        db.session.execute(insert(t).from_select(names, query))
        db.session.commit()
    analyze()


def count() -> int:
    """Outbox rows."""
    return db.session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


def analyze() -> None:
    """Fresh planner statistics (what autovacuum / a nightly ANALYZE gives production)."""
    db.session.execute(text("ANALYZE"))
    db.session.commit()


def explain(now: datetime, batch: int) -> str:
    """The plan of the claim's inner SELECT (the one that finds and locks due rows)."""
    compiled = due_query(now, batch).compile(db.engine)
    values = compiled.construct_params()
    processors = compiled._bind_processors
    values = {k: processors[k](v) if k in processors else v for k, v in values.items()}
    params: Any = values
    if compiled.positional:
        params = tuple(values[name] for name in compiled.positiontup or ())
    prefix = (
        "EXPLAIN (ANALYZE, BUFFERS)"
        if db.engine.dialect.name == "postgresql"
        else ("EXPLAIN QUERY PLAN")
    )
    rows = db.session.connection().exec_driver_sql(f"{prefix} {compiled}", params).all()
    db.session.rollback()
    return "\n".join("    " + " | ".join(str(c) for c in row) for row in rows)


def time_claims(due: int, batch: int, now: datetime) -> list[float]:
    """Claim every due message, ``batch`` at a time; ms per claim; where the time went."""
    started = time.perf_counter()
    with SqlProfile(db.engine) as profile:
        times = _claims(due, batch, now)
    print(f"\nwhere the claims' time went ({len(times)} claims, {due} messages):")
    print(profile.table(time.perf_counter() - started, per=due, unit="message"))
    return times


def _claims(due: int, batch: int, now: datetime) -> list[float]:
    dispatcher = Dispatcher(ConsoleGateway(), DispatchSettings(batch_size=batch), actor="bench")
    times: list[float] = []
    claimed = 0
    while claimed < due:
        started = time.perf_counter()
        got = dispatcher.claim(now, batch)
        times.append((time.perf_counter() - started) * 1000)
        if not got:
            break
        claimed += len(got)
    assert claimed == due, f"claimed {claimed} of {due}"
    return times


def put_back(now: datetime) -> None:
    """The claimed messages are planned and due again (the next size claims the same set)."""
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == "claimed")
        .values(status="planned", claimed_by=None, claimed_until=None, due_at=now, attempts=0)
    )
    db.session.commit()


def main(argv: list[str]) -> int:
    """Time the claims at both sizes and print plans, figures and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args(argv[1:])
    figures: dict[int, list[float]] = {}
    with database(args.database_url) as url:
        app = create_app("test", SQLALCHEMY_DATABASE_URI=url, SMS_RESPECT_QUIET_HOURS=False)
        with app.app_context():
            db.create_all()
            now = datetime.now(UTC)
            started = time.perf_counter()
            seed(args.small, args.due, now)
            analyze()
            print(f"database {make_url(url).get_backend_name()}: seeded {count():,} rows "
                  f"({args.due} due) in {time.perf_counter() - started:.1f} s")  # fmt: skip
            print(f"\nplan at {count():,} rows:\n{explain(now, args.batch)}")
            figures[args.small] = time_claims(args.due, args.batch, now)
            put_back(now)
            started = time.perf_counter()
            grow(args.large, now)
            print(f"\ngrew to {count():,} rows in {time.perf_counter() - started:.1f} s")
            print(f"\nplan at {count():,} rows:\n{explain(now, args.batch)}")
            figures[args.large] = time_claims(args.due, args.batch, now)
            db.session.remove()
            db.engine.dispose()
    return report(figures, args)


def report(figures: dict[int, list[float]], args: argparse.Namespace) -> int:
    """The table and the verdict."""
    print(f"\nclaims of {args.batch} due messages (lease, status history row each), "
          f"{args.due} due each time")  # fmt: skip
    print(f"{'outbox rows':>12} {'claims':>7} {'median ms':>10} {'p90 ms':>8}")
    medians = {}
    for size, times in figures.items():
        medians[size] = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{size:>12,} {len(times):>7} {medians[size]:>10.2f} {p90:>8.2f}")
    ratio = medians[args.large] / medians[args.small]
    verdict = "OK" if ratio <= TARGET else "BELOW TARGET"
    print(f"ratio large/small {ratio:.2f}: {verdict} (target <= {TARGET})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
