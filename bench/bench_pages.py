"""Page times of the nurses' web UI with many patients.

Usage: python bench/bench_pages.py [--patients 2000] [--repeat 5] [--keep]

Builds two throwaway SQLite databases: the demo's 6 patients (the baseline) and N generated
patients with full trial calendars (bulk insert), then times the main pages through the Flask
test client and prints the median time of each page, its ratio to /healthz and to the same page
with the demo data. Nothing touches the real database.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from app import create_app  # noqa: E402
from app.domain.calendar import generate  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import AuditEntry, CalendarEvent, Patient  # noqa: E402
from app.services.demo import load_demo_data  # noqa: E402
from app.services.shared import users  # noqa: E402
from app.services.shared.protocols import clinic_working_days, current_protocol  # noqa: E402

PASSWORD = "timing-password-123"
PD1 = ("sintilimab", "camrelizumab")
CHEMO = ("paclitaxel", "docetaxel", "irinotecan")


@dataclass(frozen=True)
class Timing:
    """Median and spread of one page's response times, in milliseconds."""

    path: str
    median_ms: float
    max_ms: float
    status: int
    size_kb: float


def make_app(db_path: Path) -> Flask:
    """An app on a throwaway SQLite file, CSRF off (the benchmark signs in directly)."""
    return create_app(
        "test",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{db_path}",
        WTF_CSRF_ENABLED=False,
        RATELIMIT_ENABLED=False,
    )


def today_in_clinic(app: Flask) -> date:
    """The clinic's date."""
    return datetime.now(ZoneInfo(app.config["CLINIC_TIMEZONE"])).date()


def seed_demo(app: Flask) -> None:
    """The demo's patients and a nurse."""
    with app.app_context():
        db.create_all()
        load_demo_data(today=today_in_clinic(app))
        users.create_user("bench", display_name="Bench", role="nurse", password=PASSWORD,
                          actor="bench", locale="en")  # fmt: skip


def seed_many(app: Flask, count: int) -> int:
    """`count` patients with full calendars, bulk inserted; returns the number of events."""
    rng = random.Random(7)
    with app.app_context():
        db.create_all()
        users.create_user("bench", display_name="Bench", role="nurse", password=PASSWORD,
                          actor="bench", locale="en")  # fmt: skip
        today = today_in_clinic(app)
        protocol, working = current_protocol(), clinic_working_days()
        base = today - timedelta(days=400)
        templates = {
            (pd1, chemo): generate(
                protocol, {"pd1": pd1, "chemo": chemo}, base, ZoneInfo("Asia/Shanghai"), working
            )
            for pd1 in PD1
            for chemo in CHEMO
        }
        now = datetime.now(UTC)
        patients, events, audits = [], [], []
        for i in range(count):
            pd1, chemo = rng.choice(PD1), rng.choice(CHEMO)
            shift = timedelta(days=rng.randint(0, 760))
            patients.append(_patient_row(i + 1, pd1, chemo, base + shift, now))
            for item in templates[(pd1, chemo)]:
                day = item.date + shift
                events.append(_event_row(i + 1, item, shift, "done" if day < today else "planned"))
            audits.append({"at": now, "actor": "bench", "action": "patient.enrol",
                           "entity_type": "patient", "entity_id": str(i + 1),
                           "patient_id": i + 1, "reason": "bench"})  # fmt: skip
        db.session.execute(insert(Patient), patients)
        for start in range(0, len(events), 20000):
            db.session.execute(insert(CalendarEvent), events[start : start + 20000])
        db.session.execute(insert(AuditEntry), audits)
        db.session.commit()
        return db.session.scalar(select(func.count(CalendarEvent.id))) or 0


def _patient_row(pid: int, pd1: str, chemo: str, start: date, now: datetime) -> dict[str, object]:
    return {
        "id": pid, "study_id": f"B-{pid:04d}", "initials": "AB",
        "phone_e164": f"+86138{pid:08d}", "locale": "zh" if pid % 3 else "en",
        "timezone": "Asia/Shanghai", "sms_consent": True, "sms_consent_date": start,
        "phone_status": "ok", "protocol_code": "NCT07016737",
        "choices": {"pd1": pd1, "chemo": chemo}, "start_date": start, "status": "active",
        "created_at": now, "updated_at": now,
    }  # fmt: skip


def _event_row(pid: int, item: object, shift: timedelta, status: str) -> dict[str, object]:
    return {
        "patient_id": pid, "key": item.key, "kind": item.kind, "phase": item.phase,
        "cycle": item.cycle, "date": item.date + shift,
        "window_start": item.window_start + shift, "window_end": item.window_end + shift,
        "moved_from": None, "title_en": item.title_en, "title_zh": item.title_zh,
        "drugs": list(item.drugs), "details": dict(item.details), "flags": list(item.flags),
        "anchor": item.anchor, "status": status,
    }  # fmt: skip


def signed_in_client(app: Flask) -> FlaskClient:
    """A test client signed in as the benchmark nurse."""
    client = app.test_client()
    response = client.post("/sign-in", data={"username": "bench", "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    return client


def time_page(client: FlaskClient, path: str, repeat: int) -> Timing:
    """Median time of `repeat` GETs after one warm-up request."""
    client.get(path)
    times, status, size = [], 0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        status, size = response.status_code, len(response.data)
    return Timing(path, statistics.median(times), max(times), status, size / 1024)


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
        "audit log": "/audit/",
        "ics export": f"/patients/{study_id}/calendar.ics",
        "printable calendar": f"/patients/{study_id}/print",
    }


def main(argv: list[str]) -> int:
    """Seed both databases, time every page, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the SQLite files")
    args = parser.parse_args(argv[1:])
    folder = Path(tempfile.mkdtemp(prefix="cadence-bench-"))
    small, large = make_app(folder / "demo.sqlite3"), make_app(folder / "large.sqlite3")
    started = time.perf_counter()
    seed_demo(small)
    events = seed_many(large, args.patients)
    print(f"seeded demo (6 patients) and {args.patients} patients / {events} events "
          f"in {time.perf_counter() - started:.1f} s ({folder})")  # fmt: skip
    small_client, large_client = signed_in_client(small), signed_in_client(large)
    small_pages, large_pages = pages(small), pages(large)
    baseline = {
        name: time_page(small_client, path, args.repeat) for name, path in small_pages.items()
    }
    results = {
        name: time_page(large_client, path, args.repeat) for name, path in large_pages.items()
    }
    healthz = results["healthz"].median_ms
    print(f"\n{'page':<30} {'status':>6} {'median ms':>10} {'max ms':>8} {'KB':>7} "
          f"{'x healthz':>10} {'x demo':>7}")  # fmt: skip
    print("-" * 84)
    for name, timing in results.items():
        ratio_demo = timing.median_ms / max(baseline[name].median_ms, 0.01)
        print(f"{name:<30} {timing.status:>6} {timing.median_ms:>10.1f} {timing.max_ms:>8.1f} "
              f"{timing.size_kb:>7.1f} {timing.median_ms / max(healthz, 0.01):>10.1f} "
              f"{ratio_demo:>7.1f}")  # fmt: skip
    slowest = max((t for n, t in results.items() if n != "healthz"), key=lambda t: t.median_ms)
    print(f"\nslowest page with {args.patients} patients: {slowest.path} "
          f"({slowest.median_ms:.0f} ms median)")  # fmt: skip
    if not args.keep:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    return 0 if all(t.status == 200 for t in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
