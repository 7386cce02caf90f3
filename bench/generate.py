"""Generate a large trial database fast: N enrolled patients with full histories.

Usage:
    python bench/generate.py --patients 10000 [--templates 24] [--database-url URL]

How (so that the data is what production writes, at bulk-insert speed):

1. ``--templates`` patients are made through the production services exactly as
   bench/bench_pages.py makes them (enrolment: calendar + planned reminders + audit; past events
   done; the latest check-in answered; 0-3 SMS replies through the inbound service: triage,
   alerts, pages, answers in the outbox).
2. Every other patient is a clone of one template, made by ``INSERT ... SELECT`` inside the
   database, in chunks (progress bar on stderr): a new study id and phone number, every date
   shifted by a per-patient number of days (-28..+28), and statuses made true to the shifted
   dates (events before today done, reminders due before now delivered, later ones planned);
   delivered messages get their status history (claimed -> queued -> delivered); inbound
   messages, alerts and check-in sessions point at the clone's own rows. Each clone gets an
   audit row saying who made it, when, from which template and why.

The same code runs on SQLite and PostgreSQL (dates shifted with each one's own functions).
Nothing is generated into a database that already has patients unless ``--force``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flask import Flask  # noqa: E402
from sqlalchemy import (  # noqa: E402
    Column,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    text,
)

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (  # noqa: E402
    Alert,
    AuditEntry,
    CalendarEvent,
    CheckinSession,
    InboundMessage,
    OutboxMessage,
    OutboxStatusChange,
    Patient,
)

ACTOR = "generator"
CHUNK = 250
SHIFT_DAYS = 28
COUNTED = (Patient, CalendarEvent, OutboxMessage, OutboxStatusChange, InboundMessage, Alert,
           CheckinSession, AuditEntry)  # fmt: skip

clone_map = Table(
    "generator_clone_map",
    MetaData(),
    Column("new_id", Integer, primary_key=True),
    Column("template_id", Integer, nullable=False),
    Column("shift", Integer, nullable=False),
    Column("study_id", String(32), nullable=False),
    Column("phone", String(20), nullable=False),
)


@dataclass(frozen=True)
class Shifter:
    """Dialect-specific date arithmetic: a column moved by ``clone_map.shift`` days."""

    dialect: str

    def date(self, column: Any) -> ColumnElement[Any]:
        """A DATE column moved by the clone's shift (NULL stays NULL)."""
        if self.dialect == "postgresql":
            return column + clone_map.c.shift
        return func.date(column, self._modifier())

    def instant(self, column: Any) -> ColumnElement[Any]:
        """A timestamp column moved by the clone's shift, same precision (NULL stays NULL)."""
        if self.dialect == "postgresql":
            return column + func.make_interval(0, 0, 0, clone_map.c.shift)
        moved = func.strftime("%Y-%m-%d %H:%M:%S", column, self._modifier())
        return moved.op("||")(func.substr(column, 20))

    def _modifier(self) -> ColumnElement[Any]:
        return cast(clone_map.c.shift, String).op("||")(" days")


class Progress:
    """A progress line on stderr (done / total, percent, elapsed, remaining), tty or not."""

    def __init__(self, label: str, total: int, *, enabled: bool = True) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.done, self.started = 0, time.perf_counter()

    def update(self, step: int) -> None:
        """Count ``step`` more and redraw the line."""
        self.done += step
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.total} "
            f"{100 * self.done / max(self.total, 1):3.0f}% {elapsed:.0f} s, {left:.0f} s left"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        """End the line."""
        if self.enabled:
            sys.stderr.write("\n")


def make_app(url: str) -> Flask:
    """The app on ``url`` (no CSRF, no rate limits: a tool, not a web request)."""
    return create_app(
        "test",
        SQLALCHEMY_DATABASE_URI=url,
        WTF_CSRF_ENABLED=False,
        RATELIMIT_ENABLED=False,
        ENROLMENT_START_DAYS_BACK=760,
    )


def generate(
    app: Flask,
    patients: int,
    *,
    templates: int = 24,
    progress: bool = True,
    seed_template: Callable[[int, date], None] | None = None,
) -> dict[str, float]:
    """Make ``patients`` patients (``templates`` through the services, the rest cloned)."""
    import bench_pages  # the services-made patient, shared with the pages benchmark

    seed_one = seed_template or partial(bench_pages.seed_patient, history=True)
    started = time.perf_counter()
    with app.app_context():
        db.create_all()
        bench_pages.ensure_bench_user()
        today = bench_pages.today_in_clinic(app)
        templates = max(1, min(templates, patients))
        for i in range(templates):
            seed_one(i, today)
        db.session.commit()
        template_ids = list(db.session.scalars(select(Patient.id).order_by(Patient.id)))
        deliver_past(template_ids)
        made = time.perf_counter() - started
        clone(template_ids, patients - templates, start_index=templates, today=today,
              progress=progress)  # fmt: skip
        analyze()
        seconds = time.perf_counter() - started
        figures = {t.__tablename__: float(count(t)) for t in COUNTED}
    return figures | {"templates_seconds": made, "seconds": seconds}


def count(model: Any) -> int:
    """Rows in a model's table."""
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def deliver_past(patient_ids: list[int]) -> None:
    """The templates' reminders due before now count as delivered (with their history)."""
    now = datetime.now(UTC)
    rows = db.session.execute(
        select(OutboxMessage.id, OutboxMessage.due_at).where(
            OutboxMessage.patient_id.in_(patient_ids),
            OutboxMessage.status == "planned",
            OutboxMessage.due_at < now,
        )
    ).all()
    for message_id, due in rows:
        db.session.execute(
            OutboxMessage.__table__.update()
            .where(OutboxMessage.id == message_id)
            .values(
                status="delivered",
                sent_at=due,
                delivered_at=due,
                provider="console",
                provider_id=f"GEN{message_id}",
                attempts=1,
                first_attempt_at=due,
                last_attempt_at=due,
                sent_to=None,
            )
        )
        for source, target in (("planned", "claimed"), ("claimed", "queued"),
                               ("queued", "delivered")):  # fmt: skip
            db.session.execute(
                insert(OutboxStatusChange).values(
                    message_id=message_id,
                    at=due,
                    from_status=source,
                    to_status=target,
                    source=f"{ACTOR}:history",
                )
            )
    db.session.commit()


def clone(
    template_ids: list[int], count_: int, *, start_index: int, today: date, progress: bool
) -> None:
    """``count_`` clones of the templates, in chunks of CHUNK patients, with a progress bar."""
    if count_ <= 0:
        return
    bind = db.session.connection()
    clone_map.drop(bind, checkfirst=True)
    clone_map.create(bind)
    db.session.commit()
    shifter = Shifter(db.session.get_bind().dialect.name)
    rng = random.Random(20260304)
    first_id = (db.session.scalar(select(func.max(Patient.id))) or 0) + 1
    bar = Progress("cloning patients", count_, enabled=progress)
    for offset in range(0, count_, CHUNK):
        size = min(CHUNK, count_ - offset)
        rows = [
            _map_row(first_id + offset + k, start_index + offset + k, template_ids, rng)
            for k in range(size)
        ]
        _clone_chunk(rows, shifter, today)
        bar.update(size)
    bar.finish()
    clone_map.drop(db.session.connection())
    _fix_sequences()
    db.session.commit()


def _map_row(new_id: int, index: int, templates: list[int], rng: random.Random) -> dict[str, Any]:
    return {
        "new_id": new_id,
        "template_id": templates[index % len(templates)],
        "shift": rng.randint(-SHIFT_DAYS, SHIFT_DAYS),
        "study_id": f"G-{index:05d}",
        "phone": f"+86139{index:08d}",
    }


def _clone_chunk(rows: list[dict[str, Any]], shifter: Shifter, today: date) -> None:
    """One chunk: fill the map, copy every table for those patients, commit."""
    db.session.execute(clone_map.delete())
    db.session.execute(insert(clone_map), rows)
    now = datetime.now(UTC)
    for statement in (
        _patients(shifter),
        _events(shifter, today),
        _outbox(shifter, now),
        _inbound(shifter),
        _checkins(shifter),
        _alerts(shifter),
        _audit(),
    ):
        db.session.execute(statement)
    low, high = rows[0]["new_id"], rows[-1]["new_id"]
    for source, target in (("planned", "claimed"), ("claimed", "queued"), ("queued", "delivered")):
        db.session.execute(_history(low, high, source, target))
    db.session.commit()


def _copy(model: Any, values: dict[str, Any], *, join_on: Any, where: Any = None) -> Any:
    """``INSERT INTO model SELECT`` every column but ``id`` (``values`` override), one chunk."""
    table = model.__table__
    names = [c.name for c in table.columns if c.name != "id" or "id" in values]
    exprs = [values.get(name, table.c[name]) for name in names]
    query = select(*exprs).select_from(table.join(clone_map, join_on))
    if where is not None:
        query = query.where(where)
    return insert(table).from_select(names, query)


def _patients(shifter: Shifter) -> Any:
    t = Patient.__table__.c
    return _copy(
        Patient,
        {
            "id": clone_map.c.new_id,
            "study_id": clone_map.c.study_id,
            "phone_e164": clone_map.c.phone,
            "start_date": shifter.date(t.start_date),
            "recurrence_date": shifter.date(t.recurrence_date),
            "sms_consent_date": shifter.date(t.sms_consent_date),
            "created_at": shifter.instant(t.created_at),
            "updated_at": shifter.instant(t.updated_at),
        },
        join_on=t.id == clone_map.c.template_id,
    )


def _events(shifter: Shifter, today: date) -> Any:
    t = CalendarEvent.__table__.c
    moved = shifter.date(t.date)
    status = case(
        (t.status.in_(("planned", "done")),
         case((moved < literal(today, t.date.type), "done"), else_="planned")),
        else_=t.status,
    )  # fmt: skip
    return _copy(
        CalendarEvent,
        {
            "patient_id": clone_map.c.new_id,
            "date": moved,
            "window_start": shifter.date(t.window_start),
            "window_end": shifter.date(t.window_end),
            "moved_from": shifter.date(t.moved_from),
            "status": status,
            "created_at": shifter.instant(t.created_at),
            "updated_at": shifter.instant(t.updated_at),
        },
        join_on=t.patient_id == clone_map.c.template_id,
    )


def _outbox(shifter: Shifter, now: datetime) -> Any:
    t = OutboxMessage.__table__.c
    due = shifter.instant(t.due_at)
    past = due < _instant_literal(now)
    movable = t.status.in_(("planned", "queued", "sent", "delivered"))
    status = case((movable, case((past, "delivered"), else_="planned")), else_=t.status)
    delivered = and_(movable, past)
    return _copy(
        OutboxMessage,
        {
            "patient_id": clone_map.c.new_id,
            "send_after": shifter.instant(t.send_after),
            "due_at": due,
            "expires_at": shifter.instant(t.expires_at),
            "status": status,
            "sent_at": case((delivered, due), else_=None),
            "delivered_at": case((delivered, due), else_=None),
            "first_attempt_at": case((delivered, due), else_=None),
            "last_attempt_at": case((delivered, due), else_=None),
            "attempts": case((delivered, 1), else_=0),
            "provider": case((delivered, "console"), else_=None),
            "created_at": shifter.instant(t.created_at),
            "updated_at": shifter.instant(t.updated_at),
        },
        join_on=t.patient_id == clone_map.c.template_id,
    )


def _instant_literal(moment: datetime) -> Any:
    """``moment`` bound as the models store UTC timestamps."""
    return literal(moment, OutboxMessage.__table__.c.due_at.type)


def _history(low: int, high: int, source: str, target: str) -> Any:
    t = OutboxMessage.__table__.c
    query = select(
        t.id, t.due_at, literal(source), literal(target), literal(f"{ACTOR}:history")
    ).where(t.patient_id.between(low, high), t.status == "delivered")
    names = ["message_id", "at", "from_status", "to_status", "source"]
    return insert(OutboxStatusChange.__table__).from_select(names, query)


def _inbound(shifter: Shifter) -> Any:
    t = InboundMessage.__table__.c
    return _copy(
        InboundMessage,
        {
            "patient_id": clone_map.c.new_id,
            "sid": t.sid.op("||")("-").op("||")(cast(clone_map.c.new_id, String)),
            "from_number": clone_map.c.phone,
            "received_at": shifter.instant(t.received_at),
            "processed_at": shifter.instant(t.processed_at),
        },
        join_on=t.patient_id == clone_map.c.template_id,
    )


def _checkins(shifter: Shifter) -> Any:
    t = CheckinSession.__table__.c
    e = CalendarEvent.__table__.c
    event = (
        select(e.id)
        .where(e.patient_id == clone_map.c.new_id, e.key == t.event_key)
        .scalar_subquery()
    )
    values = {name: shifter.instant(t[name]) for name in (
        "sent_at", "expires_at", "first_answer_at", "answered_at", "reminded_at", "call_task_at",
        "closed_at", "created_at", "updated_at")}  # fmt: skip
    values |= {"patient_id": clone_map.c.new_id, "event_id": event,
               "event_date": shifter.date(t.event_date)}  # fmt: skip
    return _copy(CheckinSession, values, join_on=t.patient_id == clone_map.c.template_id)


def _alerts(shifter: Shifter) -> Any:
    t = Alert.__table__.c
    i, s = InboundMessage.__table__.c, CheckinSession.__table__.c
    template_inbound = select(i.sid).where(i.id == t.inbound_message_id).scalar_subquery()
    inbound = (
        select(i.id)
        .where(i.sid == template_inbound.op("||")("-").op("||")(cast(clone_map.c.new_id, String)))
        .scalar_subquery()
    )
    template_key = select(s.event_key).where(s.id == t.checkin_session_id).scalar_subquery()
    session = (
        select(s.id)
        .where(s.patient_id == clone_map.c.new_id, s.event_key == template_key)
        .scalar_subquery()
    )
    values = {name: shifter.instant(t[name]) for name in (
        "created_at", "acknowledged_at", "resolved_at", "assigned_at", "last_escalated_at",
        "next_escalation_at", "updated_at")}  # fmt: skip
    values |= {
        "patient_id": clone_map.c.new_id,
        "dedupe_key": t.dedupe_key.op("||")(":").op("||")(cast(clone_map.c.new_id, String)),
        "inbound_message_id": case((t.inbound_message_id.is_(None), None), else_=inbound),
        "checkin_session_id": case((t.checkin_session_id.is_(None), None), else_=session),
    }
    return _copy(Alert, values, join_on=t.patient_id == clone_map.c.template_id)


def _audit() -> Any:
    """Who made each clone, when, what and why (audit rows are never skipped)."""
    now = datetime.now(UTC)
    query = select(
        _instant_literal(now),
        literal(ACTOR),
        literal("patient.generated"),
        literal("patient"),
        cast(clone_map.c.new_id, String),
        clone_map.c.new_id,
        literal("benchmark data: a clone of template patient ").op("||")(
            cast(clone_map.c.template_id, String)
        ),
    )
    names = ["at", "actor", "action", "entity_type", "entity_id", "patient_id", "reason"]
    return insert(AuditEntry.__table__).from_select(names, query)


def analyze() -> None:
    """PostgreSQL: VACUUM and table statistics now, as autovacuum would after a bulk load.

    Without statistics the planner guesses: at 2,000 fresh patients the patients list sorted by
    next visit took 127 s, and 0.2 s once analysed. VACUUM sets the visibility map, without
    which the covering indexes' index-only scans still read the table.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


def _fix_sequences() -> None:
    """PostgreSQL: the patient id sequence continues after the explicit clone ids."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    db.session.execute(
        text(
            "SELECT setval(pg_get_serial_sequence('patient', 'id'), (SELECT max(id) FROM patient))"
        )
    )


def main(argv: list[str]) -> int:
    """Generate into --database-url (default: a new SQLite file in the current folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10000)
    parser.add_argument("--templates", type=int, default=24)
    parser.add_argument("--database-url", default="sqlite:///generated.sqlite3")
    parser.add_argument("--force", action="store_true", help="add to a database with patients")
    args = parser.parse_args(argv[1:])
    if args.patients < 1 or args.templates < 1:
        parser.error("--patients and --templates must be at least 1")
    app = make_app(args.database_url)
    with app.app_context():
        db.create_all()
        if count(Patient) and not args.force:
            parser.error(f"{args.database_url} already has patients (--force to add anyway)")
    figures = generate(app, args.patients, templates=args.templates)
    report(figures)
    return 0


def report(figures: dict[str, float]) -> None:
    """Rows per table and the time taken."""
    print(f"generated in {figures['seconds']:.1f} s "
          f"(templates through the services: {figures['templates_seconds']:.1f} s)")  # fmt: skip
    for model in COUNTED:
        print(f"  {model.__tablename__:<22} {int(figures[model.__tablename__]):>10,}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
