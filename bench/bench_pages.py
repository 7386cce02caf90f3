"""Page times of the nurses' web UI with many patients, against the same pages with few.

Usage: python bench/bench_pages.py [--patients 600] [--baseline-patients 6] [--repeat 20] [--keep]

Builds two throwaway SQLite databases THE SAME WAY, through the services production uses: each
patient is enrolled by the enrolment service (calendar, planned reminders in the outbox, audit),
past events marked done with an audit entry (as the demo does), the latest past check-in
answered through the check-in service (grades, triage, alerts), and 0-3 SMS replies per patient
(confirmations, symptom reports, a few red flags) sent through the inbound-SMS service (stored,
triaged, alerts and pages, answers in the outbox). Patient i is identical in both databases, so
the patient pages compare like with like. Each page is timed --repeat times after a warm-up;
the table gives per page the median (p50) and 90th percentile, whether the p50 meets the target
(under 200 ms, issue 18), and the ratio of the medians (large / baseline), with the machine's
load average before and after. Nothing touches the real database.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from app.domain.checkins import applicable_questions  # noqa: E402
from app.domain.patients import EnrolmentRequest  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import (  # noqa: E402
    Alert,
    AuditEntry,
    CalendarEvent,
    CheckinSession,
    InboundMessage,
    OutboxMessage,
    Patient,
)
from app.services.conversations.checkins.schedule import start_checkin  # noqa: E402
from app.services.conversations.checkins.sessions import record_answers, session_items  # noqa: E402
from app.services.conversations.inbound.replies import handle_inbound  # noqa: E402
from app.services.demo import ensure_demo_rota  # noqa: E402
from app.services.schedule.patients import enrol_patient  # noqa: E402
from app.services.shared import audit, users  # noqa: E402
from tests.support import postgres_schema  # noqa: E402

PASSWORD = "timing-password-123"
TARGET_MS = 200
PD1 = ("sintilimab", "camrelizumab")
CHEMO = ("paclitaxel", "docetaxel", "irinotecan")
SHANGHAI = ZoneInfo("Asia/Shanghai")
# What patients send (shares as in bench_webhook): confirmations, symptom reports, red flags.
REPLIES = (
    (("1", "好的", "收到", "OK", "确认"), 0.6),
    (("有点恶心", "今天拉了三次", "I feel a bit tired", "手脚有点麻", "咳嗽两天了"), 0.35),
    (("发烧39度", "胸口痛", "fever 38.6"), 0.05),
)


@dataclass(frozen=True)
class Timing:
    """Median and spread (10th-90th percentile) of one page's response times, in ms."""

    path: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    status: int
    size_kb: float


def today_in_clinic(app: Flask) -> date:
    """The clinic's date."""
    return datetime.now(ZoneInfo(app.config["CLINIC_TIMEZONE"])).date()


def seed(app: Flask, count: int) -> dict[str, int]:
    """``count`` patients through the production services; returns rows per table."""
    with app.app_context():
        db.create_all()
        ensure_bench_user()
        today = today_in_clinic(app)
        for i in range(count):
            seed_patient(i, today)
        db.session.commit()
        tables = (Patient, CalendarEvent, OutboxMessage, InboundMessage, Alert, CheckinSession,
                  AuditEntry)  # fmt: skip
        return {
            t.__tablename__: db.session.scalar(select(func.count()).select_from(t)) or 0
            for t in tables
        }


def ensure_bench_user() -> None:
    """The benchmark nurse and the demo on-call rota (red replies page someone)."""
    if not any(u.username == "bench" for u in users.list_users()):
        users.create_user("bench", display_name="Bench", role="nurse", password=PASSWORD,
                          actor="bench", locale="en")  # fmt: skip
    ensure_demo_rota()


def seed_patient(i: int, today: date, *, history: bool = False) -> None:
    """Patient i (the same in every database): enrolled, past done, a check-in, some replies.

    ``history``: also the reminders of the past, planned as they were at enrolment (the
    generator then marks those due before now delivered).
    """
    rng = random.Random(i)
    start = today - timedelta(days=rng.randint(-14, 700))
    # With history the patient is enrolled the day before the start, as if Cadence had
    # followed them from the beginning: every reminder since then is planned (and delivered).
    enrolled_on = min(start, today) - timedelta(days=1) if history else today
    patient = enrol_patient(
        EnrolmentRequest(
            study_id=f"B-{i:04d}",
            initials="AB",
            phone=f"138{i:08d}",
            choices={"pd1": rng.choice(PD1), "chemo": rng.choice(CHEMO)},
            start_date=start,
            sms_consent=True,
            health_consent=True,
            sms_consent_date=min(start, today) - timedelta(days=2),
            locale="zh" if i % 3 else "en",
            recurrence_date=start - timedelta(days=45),
            started_before_cadence=start < enrolled_on,
        ),
        actor="bench",
        today=enrolled_on,
    )
    db.session.refresh(patient)
    past = [e for e in patient.events if e.date < today and e.status == "planned"]
    for event in past:
        event.status = "done"
    if past:
        audit.record("bench", "event.status", entity_type="patient", entity_id=patient.id,
                     patient_id=patient.id, after={"status": "done", "events": len(past)},
                     reason="bench: past visits marked done")  # fmt: skip
    db.session.commit()
    _answer_latest_checkin(patient, today)
    now = datetime.now(UTC)
    for n in range(rng.choice((0, 1, 1, 2, 3))):
        form = {"MessageSid": f"SMbench{i:06d}{n:02d}", "From": patient.phone_e164,
                "To": "+8610655299880", "Body": _reply(rng)}  # fmt: skip
        handle_inbound(form, now - timedelta(hours=rng.randint(1, 240)))


def _reply(rng: random.Random) -> str:
    roll = rng.random()
    for choices, share in REPLIES:
        if roll < share:
            return rng.choice(choices)
        roll -= share
    return REPLIES[0][0][0]


def _answer_latest_checkin(patient: Patient, today: date) -> None:
    """The latest past check-in of the last 6 weeks, answered on the web (all 0 / 36.8 C)."""
    recent = [e for e in patient.events if e.kind == "checkin"
              and today - timedelta(days=42) <= e.date < today]  # fmt: skip
    if not recent:
        return
    event = max(recent, key=lambda e: (e.date, e.id))
    sent = datetime.combine(event.date, datetime.min.time().replace(hour=10), tzinfo=SHANGHAI)
    session = start_checkin(event, now=sent, actor="bench", send=False)
    if session is None:
        return
    answers: dict[str, float] = {}
    items = session_items(session)
    while pending := [q for q in applicable_questions(items, answers) if q.code not in answers]:
        for question in pending:
            answers[question.code] = 36.8 if question.is_temperature else 0
    record_answers(session.id, answers, channel="web", now=sent + timedelta(minutes=40),
                   actor="bench")  # fmt: skip
    db.session.commit()


def signed_in_client(app: Flask) -> FlaskClient:
    """A test client signed in as the benchmark nurse."""
    client = app.test_client()
    response = client.post("/sign-in", data={"username": "bench", "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    return client


def time_page(client: FlaskClient, path: str, repeat: int) -> Timing:
    """Median and 10th-90th percentiles of `repeat` GETs after one warm-up request."""
    client.get(path)
    times, status, size = [], 0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        status, size = response.status_code, len(response.data)
    deciles = statistics.quantiles(times, n=10)
    return Timing(path, statistics.median(times), deciles[0], deciles[-1], status, size / 1024)


def pages(app: Flask) -> dict[str, str]:
    """The pages to time, by name (paths depend on the data: a patient, today's date)."""
    with app.app_context():
        study_id = db.session.scalar(select(Patient.study_id).order_by(Patient.id).limit(1))
        today = today_in_clinic(app)
    return {
        "healthz": "/healthz",
        "today": "/",
        "patients": "/patients/",
        "patients sorted by next visit": "/patients/?sort=next_visit",
        "patients sorted by phase": "/patients/?sort=phase&dir=desc",
        "patients search": "/patients/?q=12",
        "patient page": f"/patients/{study_id}",
        "calendar month": f"/calendar/month?month={today:%Y-%m}",
        "calendar month, infusions": f"/calendar/month?month={today:%Y-%m}&kind=infusion",
        "calendar week": f"/calendar/week?start={today.isoformat()}",
        "calendar day": f"/calendar/day/{today.isoformat()}",
        "calendar clinic list": f"/calendar/clinic-list?day={today.isoformat()}",
        "audit log": "/audit/",
        "message log": "/messages/",
        "inbox": "/inbox/",
        "alerts": "/alerts/",
        "on-call rota": "/alerts/rota",
        "metrics": "/metrics/",
        "conversation": f"/patients/{study_id}/conversation",
        "ics export": f"/patients/{study_id}/calendar.ics",
        "printable calendar": f"/patients/{study_id}/print",
    }


def main(argv: list[str]) -> int:
    """Seed both databases the same way, time every page, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=600)
    parser.add_argument("--baseline-patients", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the SQLite files")
    parser.add_argument(
        "--generated",
        action="store_true",
        help="build both databases with bench/generate.py (templates through the services, "
        "the rest cloned: 10,000 patients in minutes) instead of every patient through them",
    )
    parser.add_argument("--database-url", help="PostgreSQL base URL (default: SQLite files)")
    parser.add_argument("--large-url", help="time an already generated database (kept)")
    args = parser.parse_args(argv[1:])
    folder = Path(tempfile.mkdtemp(prefix="cadence-bench-"))
    with ExitStack() as stack:
        small_url, large_url = (
            stack.enter_context(database(args.database_url, folder, name))
            for name in ("small", "large")
        )
        small, large = make_app_url(small_url), make_app_url(args.large_url or large_url)
        started = time.perf_counter()
        small_rows = build(small, args.baseline_patients, args.generated)
        large_rows = build(large, args.patients, args.generated, reuse=bool(args.large_url))
        how = "generated" if args.generated else "through the services"
        print(f"seeded in {time.perf_counter() - started:.1f} s ({folder}), {how}:")
        for table in large_rows:
            print(
                f"  {table:<22} baseline {small_rows[table]:>9,}   large {large_rows[table]:>10,}"
            )
        status = time_and_print(small, large, args)
        for app in (small, large):
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    if not args.keep:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return status


def database(base_url: str | None, folder: Path, name: str) -> AbstractContextManager[str]:
    """A new database: a SQLite file in ``folder``, or a new schema of ``base_url``."""
    if base_url and base_url.startswith("postgresql"):
        return postgres_schema(base_url, f"pages_{name}")
    return nullcontext(f"sqlite:///{folder / (name + '.sqlite3')}")


def make_app_url(url: str) -> Flask:
    """An app on ``url``, CSRF off (the benchmark signs in directly)."""
    return create_app("test", SQLALCHEMY_DATABASE_URI=url, WTF_CSRF_ENABLED=False,
                      RATELIMIT_ENABLED=False, ENROLMENT_START_DAYS_BACK=760)  # fmt: skip


def build(app: Flask, count: int, generated: bool, *, reuse: bool = False) -> dict[str, int]:
    """Seed ``count`` patients (services or generator) or, ``reuse``, count what is there."""
    if reuse:
        with app.app_context():
            return row_counts()
    if not generated:
        return seed(app, count)
    import generate  # bench/generate.py, only for --generated

    generate.generate(app, count, templates=min(24, count))
    with app.app_context():
        return row_counts()


def row_counts() -> dict[str, int]:
    """Rows per table of the timed database."""
    tables = (Patient, CalendarEvent, OutboxMessage, InboundMessage, Alert, CheckinSession,
              AuditEntry)  # fmt: skip
    return {
        t.__tablename__: db.session.scalar(select(func.count()).select_from(t)) or 0 for t in tables
    }


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages and its cores (timings are shared)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def describe_size(app: Flask, args: argparse.Namespace) -> str:
    """How many patients the timed database holds (``--large-url``: counted, not asked for)."""
    if not args.large_url:
        return f"{args.patients:,} patients"
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Patient)) or 0
    return f"{count:,} patients"


def time_and_print(small: Flask, large: Flask, args: argparse.Namespace) -> int:
    """Time every page in both databases and print the table; 0 when every page answered 200."""
    small_client, large_client = signed_in_client(small), signed_in_client(large)
    load_before = load_average()
    small_pages, large_pages = pages(small), pages(large)
    baseline = {
        name: time_page(small_client, path, args.repeat) for name, path in small_pages.items()
    }
    results = {
        name: time_page(large_client, path, args.repeat) for name, path in large_pages.items()
    }
    size = describe_size(large, args)
    print(f"\nmeasured: each page {args.repeat} times with {size} against the same page with "
          f"{args.baseline_patients} patients built the same way (patient B-0000 is the same "
          f"patient in both); load average before: {load_before}")  # fmt: skip
    print(f"\n{'page':<30} {'status':>6} {'p50 ms':>8} {'p90 ms':>8} {'target':>7} {'KB':>7} "
          f"{'base ms':>8} {'x base':>7}")  # fmt: skip
    print("-" * 88)
    for name, timing in results.items():
        base = baseline[name]
        met = "ok" if timing.median_ms < TARGET_MS else "OVER"
        print(f"{name:<30} {timing.status:>6} {timing.median_ms:>8.1f} {timing.p90_ms:>8.1f} "
              f"{met:>7} {timing.size_kb:>7.1f} {base.median_ms:>8.1f} "
              f"{timing.median_ms / max(base.median_ms, 0.01):>7.1f}")  # fmt: skip
    slowest = max((t for n, t in results.items() if n != "healthz"), key=lambda t: t.median_ms)
    print(f"\nslowest page with {size}: {slowest.path} "
          f"({slowest.median_ms:.0f} ms p50, {slowest.p90_ms:.0f} ms p90)")  # fmt: skip
    over = [n for n, t in results.items() if t.median_ms >= TARGET_MS]
    verdict = "OK" if not over else "BELOW TARGET: " + ", ".join(over)
    print(f"target: every page's p50 under {TARGET_MS} ms with {size}: {verdict}; "
          f"load average after: {load_average()}")  # fmt: skip
    return 0 if all(t.status == 200 for t in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
