"""Benchmark: plan and dispatch N due SMS against the fake Twilio, at 5 ms and at 100 ms provider
latency, each against a bare HTTP loop at the same concurrency and latency as the baseline.

    .venv/bin/python bench/bench_dispatch.py                      # N=5000, 32 threads, SQLite
    .venv/bin/python bench/bench_dispatch.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Steps: enrol patients through the real service until their planned reminders reach N (the
planning time is printed too), then make N of them due now and send them with the real dispatcher (claims, real
Twilio SDK, outcome rows, status history). Then the
same N messages are POSTed by a bare `requests` loop with the same number of threads. The fake
answers every request after each of ``--latencies`` (default 5 ms and 100 ms: at 5 ms the
dispatcher's own work per message shows, at 100 ms the provider's wait dominates); the same N
rows are made planned and due again before each latency. Target: ratio >= 0.8, N in under 60 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import requests  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import create_app  # noqa: E402
from app.domain.patients import EnrolmentRequest  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import OutboxMessage  # noqa: E402
from app.services.messaging.dispatch import (  # noqa: E402
    Dispatcher,
    DispatchSettings,
    DispatchTimings,
)
from app.services.schedule.patients import enrol_patient  # noqa: E402
from app.sms import TwilioGateway  # noqa: E402
from tests.fakes.fake_twilio import FakeTwilio  # noqa: E402
from tests.support import postgres_schema  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from sql_profile import SqlProfile  # noqa: E402

PROFILES: list[str] = []  # where each latency's dispatch time went (database side)

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-token"
SERVICE_SID = "MG" + "c" * 32


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """A fresh database: a temporary SQLite file, or a new schema in the given PostgreSQL."""
    if not url or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.sqlite3"
        return
    with postgres_schema(url, "bench") as schema_url:
        yield schema_url


def plan(n: int, today: date) -> int:
    """Enrol patients (calendar + planned reminders) until at least n messages are planned."""
    count, i = 0, 0
    while count < n:
        enrol_patient(
            EnrolmentRequest(
                study_id=f"BENCH-{i:03d}",
                initials="BM",
                phone=f"1390000{i:04d}",
                choices={"pd1": "sintilimab", "chemo": ("docetaxel", "paclitaxel")[i % 2]},
                start_date=today + timedelta(days=3 + i % 14),
                sms_consent=True,
                health_consent=True,
                sms_consent_date=today,
                locale=("zh", "en")[i % 4 == 3],
                recurrence_date=today - timedelta(days=30),
            ),
            actor="bench",
            today=today,
        )
        count = db.session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
        i += 1
    return count


def keep_only(n: int) -> None:
    """Cancel planned messages beyond the first n; make the n others due now."""
    ids = db.session.scalars(
        select(OutboxMessage.id).order_by(OutboxMessage.send_after, OutboxMessage.id).offset(n)
    ).all()
    if ids:
        db.session.execute(
            OutboxMessage.__table__.update()
            .where(OutboxMessage.id.in_(ids))
            .values(status="cancelled")
        )
    db.session.execute(
        OutboxMessage.__table__.update()
        .where(OutboxMessage.status == "planned")
        .values(due_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    db.session.commit()


def make_due_again(n: int) -> None:
    """Put the n sent rows back to planned and due now, as if never tried (next latency)."""
    db.session.execute(
        OutboxMessage.__table__.update()
        .where(OutboxMessage.status != "cancelled")
        .values(
            status="planned",
            due_at=datetime.now(UTC) - timedelta(seconds=1),
            claimed_by=None,
            claimed_until=None,
            attempts=0,
            first_attempt_at=None,
            last_attempt_at=None,
            provider_id=None,
            provider_status=None,
            sent_at=None,
            delivered_at=None,
            error_code=None,
            error_reason=None,
            error_message=None,
        )
    )
    db.session.commit()
    count = select(func.count()).where(OutboxMessage.status == "planned")
    assert db.session.scalar(count.select_from(OutboxMessage)) == n


def bare_loop(fake: FakeTwilio, bodies: list[tuple[str, str]], threads: int) -> float:
    """POST every (to, body) with `threads` threads and one keep-alive session each; seconds."""
    local = threading.local()

    def post(item: tuple[str, str]) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
            session.auth = (ACCOUNT_SID, AUTH_TOKEN)
        to, body = item
        response = session.post(
            fake.messages_url,
            data={"To": to, "Body": body, "MessagingServiceSid": SERVICE_SID},
            timeout=10,
        )
        response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, bodies))
    return time.perf_counter() - started


def sdk_loop(fake: FakeTwilio, bodies: list[tuple[str, str]], threads: int) -> float:
    """Send every (to, body) through the dispatcher's gateway (the Twilio SDK) with `threads`
    threads and no database; seconds."""
    gateway = make_gateway_for(fake)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: gateway.send(item[0], item[1]), bodies))
    return time.perf_counter() - started


def make_gateway_for(fake: FakeTwilio) -> TwilioGateway:
    """The Twilio gateway the dispatcher uses, pointed at the fake."""
    return TwilioGateway(
        ACCOUNT_SID,
        AUTH_TOKEN,
        messaging_service_sid=SERVICE_SID,
        timeout=10,
        base_url=fake.base_url,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="messages to send (default 5000)")
    parser.add_argument("--threads", type=int, default=32, help="concurrency of both loops")
    parser.add_argument(
        "--latencies",
        default="0.005,0.1",
        help="fake Twilio latencies in seconds, comma-separated (default 5 ms and 100 ms)",
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args(argv)
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]

    figures: list[tuple[float, float, float, float]] = []
    with (
        database(args.database_url) as url,
        FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, latency=latencies[0]) as fake,
    ):
        app = create_app(
            "test", SQLALCHEMY_DATABASE_URI=url, SMS_RESPECT_QUIET_HOURS=False, TESTING=False
        )
        with app.app_context():
            db.create_all()
            today = datetime.now(UTC).date()
            started = time.perf_counter()
            planned = plan(args.n, today)
            planning = time.perf_counter() - started
            keep_only(args.n)
            print(f"planned {planned} reminders for enrolled patients in {planning:.1f} s")
            db.session.remove()
        for index, latency in enumerate(latencies):
            fake.reset()
            fake.latency = latency
            with app.app_context():
                if index:
                    make_due_again(args.n)
                dispatch_seconds, sent = dispatch_all(fake, args.n, args.threads)
                db.session.remove()
                if index == len(latencies) - 1:
                    db.engine.dispose()
            fake.reset()
            bare_seconds = bare_loop(fake, sent, args.threads)
            assert len(fake.messages) == len(sent)
            fake.reset()
            sdk_seconds = sdk_loop(fake, sent, args.threads)
            assert len(fake.messages) == len(sent)
            figures.append((latency, dispatch_seconds, bare_seconds, sdk_seconds))

    backend = make_url(url).get_backend_name()
    print(
        f"measured: the real dispatcher (claim, Twilio SDK, outcome rows, status history) "
        f"against a bare requests loop POSTing the same {args.n} bodies to the same fake "
        f"Twilio; database {backend}, {args.threads} threads each"
    )
    print(
        f"{'latency':>8}{'dispatcher/s':>14}{'bare/s':>10}{'ratio':>8}{'seconds':>9}"
        f"{'sdk/s':>8}{'vs sdk':>8}  verdict"
    )
    for latency, dispatch_seconds, bare_seconds, sdk_seconds in figures:
        ours, bare, sdk = args.n / dispatch_seconds, args.n / bare_seconds, args.n / sdk_seconds
        verdict = "OK" if ours / bare >= 0.8 and dispatch_seconds < 60 else "BELOW TARGET"
        print(
            f"{latency * 1000:>6.0f}ms{ours:>14.0f}{bare:>10.0f}{ours / bare:>8.2f}"
            f"{dispatch_seconds:>9.1f}{sdk:>8.0f}{ours / sdk:>8.2f}"
            f"  {verdict} (target ratio >= 0.80, under 60 s)"
        )
    print(
        "sdk/s: the same sends through the Twilio SDK gateway alone (no database) at the same "
        "concurrency; 'vs sdk' is the dispatcher's own cost (claims, outcome rows, threads),"
        " the rest of the gap to the bare loop is the SDK's"
    )
    for (latency, dispatch_seconds, *_), table in zip(figures, PROFILES, strict=True):
        print(f"\nwhere the dispatcher's time went at {latency * 1000:.0f} ms "
              f"({dispatch_seconds:.1f} s; the rest is the provider's wait and Python):")  # fmt: skip
        print(table)
    return 0


def phases(t: DispatchTimings, wall: float, n: int, threads: int) -> str:
    """The run's phases: the main thread's (claim, record, waiting) and the workers' (provider
    calls, the rest of an attempt, idle: nothing queued for them)."""
    pool = wall * threads
    idle = max(pool - t.attempts, 0.0)
    rows = [
        ("main thread: claim (+ commit)", t.claim, wall, f"{t.claims} claims"),
        (
            "recorder thread: store outcomes (+ commit)"
            if t.recorder
            else "main thread: record outcomes (+ commit)",
            t.record,
            wall,
            f"{t.waves} waves",
        ),
        ("main thread: waiting for workers", t.wait, wall, ""),
        ("workers: provider calls", t.provider, pool, f"{1000 * t.provider / n:.1f} ms each"),
        ("workers: rest of attempts", t.attempts - t.provider, pool, ""),
        ("workers: idle (nothing queued)", idle, pool, ""),
    ]
    lines = [f"  {'phase':<42}{'seconds':>9}{'share':>8}  note"]
    for name, seconds, whole, note in rows:
        lines.append(f"  {name:<42}{seconds:>9.2f}{100 * seconds / whole:>7.1f}%  {note}")
    lines.append(
        f"  (main-thread shares are of the wall time {wall:.1f} s; workers' of "
        f"{threads} threads x wall = {pool:.0f} thread-seconds; {n / max(t.waves, 1):.0f} "
        f"messages per wave, {n / max(t.claims, 1):.0f} per claim)"
    )
    return "\n".join(lines)


def dispatch_all(fake: FakeTwilio, n: int, threads: int) -> tuple[float, list[tuple[str, str]]]:
    """Send the n due rows with the real dispatcher; seconds taken and what the fake received."""
    gateway = make_gateway_for(fake)
    settings = DispatchSettings(workers=threads, batch_size=max(threads * 4, 50))
    dispatcher = Dispatcher(gateway, settings, actor="bench")
    started = time.perf_counter()
    with SqlProfile(db.engine) as profile:
        report = dispatcher.run()
    seconds = time.perf_counter() - started
    PROFILES.append(
        phases(report.timings, seconds, n, threads)
        + "\n"
        + profile.table(seconds, per=n, unit="message")
    )
    sent = [(m.to, m.body) for m in fake.messages]
    provider_ids = set(
        db.session.scalars(
            select(OutboxMessage.provider_id).where(OutboxMessage.provider_id.is_not(None))
        )
    )
    assert report.sent == n == len(sent), report.summary()
    assert len(fake.create_requests()) == len(provider_ids) == n, "sent twice?"
    return seconds, sent


if __name__ == "__main__":
    sys.exit(main())
