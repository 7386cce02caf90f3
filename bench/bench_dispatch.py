"""Benchmark: plan and dispatch N due SMS against the fake Twilio (100 ms latency), in one run
with a bare HTTP loop at the same concurrency as the baseline.

    .venv/bin/python bench/bench_dispatch.py                      # N=5000, 32 threads, SQLite
    .venv/bin/python bench/bench_dispatch.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

Steps: enrol patients through the real service until their planned reminders reach N (the
planning time is printed too), then make N of them due now and send them with the real dispatcher (claims, real
Twilio SDK, outcome rows, status history). Then the
same N messages are POSTed by a bare `requests` loop with the same number of threads. The fake
answers every request after ``--latency`` seconds. Target: ratio >= 0.8, N in under 60 s.
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
from app.services.messaging.dispatch import Dispatcher, DispatchSettings  # noqa: E402
from app.services.schedule.patients import enrol_patient  # noqa: E402
from app.sms import TwilioGateway  # noqa: E402
from tests.fakes.fake_twilio import FakeTwilio  # noqa: E402
from tests.support import postgres_schema  # noqa: E402

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
                sms_consent_date=today,
                locale=("zh", "en")[i % 4 == 3],
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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="messages to send (default 5000)")
    parser.add_argument("--threads", type=int, default=32, help="concurrency of both loops")
    parser.add_argument("--latency", type=float, default=0.1, help="fake Twilio latency (s)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args(argv)

    with (
        database(args.database_url) as url,
        FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, latency=args.latency) as fake,
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

            gateway = TwilioGateway(
                ACCOUNT_SID,
                AUTH_TOKEN,
                messaging_service_sid=SERVICE_SID,
                timeout=10,
                base_url=fake.base_url,
            )
            settings = DispatchSettings(workers=args.threads, batch_size=max(args.threads * 2, 50))
            dispatcher = Dispatcher(gateway, settings, actor="bench")
            started = time.perf_counter()
            report = dispatcher.run()
            dispatch_seconds = time.perf_counter() - started
            sent = [(m.to, m.body) for m in fake.messages]
            provider_ids = set(
                db.session.scalars(
                    select(OutboxMessage.provider_id).where(OutboxMessage.provider_id.is_not(None))
                )
            )
            assert report.sent == args.n == len(sent), report.summary()
            assert len(fake.create_requests()) == len(provider_ids) == args.n, "sent twice?"
            db.session.remove()
            db.engine.dispose()

        fake.reset()
        bare_seconds = bare_loop(fake, sent, args.threads)
        assert len(fake.messages) == len(sent)

    ours, bare = args.n / dispatch_seconds, args.n / bare_seconds
    backend = make_url(url).get_backend_name()
    print(f"database {backend}, {args.threads} threads, fake latency {args.latency * 1000:.0f} ms")
    print(f"dispatcher: {args.n} messages in {dispatch_seconds:.1f} s = {ours:.0f} messages/s")
    print(f"bare loop:  {args.n} messages in {bare_seconds:.1f} s = {bare:.0f} messages/s")
    verdict = "OK" if ours / bare >= 0.8 and dispatch_seconds < 60 else "BELOW TARGET"
    print(f"ratio {ours / bare:.2f} (target >= 0.80, and under 60 s): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
