"""Benchmark: dispatch N due SMS through Tencent / Alibaba fakes, against a bare SDK loop.

    .venv/bin/python bench/bench_dispatch_domestic.py --provider tencent   # N=1000, 16 threads
    .venv/bin/python bench/bench_dispatch_domestic.py --batching [--provider aliyun]

The real dispatcher (claims, template matching, real SDK, outcome rows, history) sends N due
messages; then a bare loop calls the same SDK (SendSms) with the same number of threads for the
same N texts. Each fake answers after ``--latency`` seconds. Prints both times and the ratio.

``--batching``: N due messages with one identical text to N numbers, sent by the dispatcher
through the provider's fake twice in the same run, one message per request (SMS_SEND_BATCH=1)
and in batches (Tencent SendSms to up to 200 numbers, Alibaba SendBatchSms to up to 100);
prints both times, requests and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.services.messaging.dispatch import Dispatcher, DispatchSettings  # noqa: E402
from tests.fakes.fake_aliyun import FakeAliyun  # noqa: E402
from tests.fakes.fake_tencent import FakeTencent  # noqa: E402
from tests.integration.sms_support import add_due_messages  # noqa: E402
from tests.integration.test_domestic_sms import gateway_for  # noqa: E402

BODY = "【测试】提醒 7：请按时到院。"


def dispatch_identical(
    provider: str, n: int, threads: int, latency: float, send_batch: int
) -> tuple[float, int]:
    """Seconds the dispatcher takes to send ``n`` identical texts, and send requests made."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app("test", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp}/bench.sqlite3")
        fake: Any = (
            FakeTencent(daily_limit=10**6)
            if provider == "tencent"
            else FakeAliyun(daily_limit=10**6)
        )
        with app.app_context(), fake:
            db.create_all()
            fake.latency = latency
            add_due_messages(n, per_patient=1, body=BODY)
            settings = DispatchSettings(workers=threads, batch_size=200, send_batch=send_batch)
            started = time.perf_counter()
            report = Dispatcher(gateway_for(fake, timeout=10), settings, actor="bench").run()
            elapsed = time.perf_counter() - started
            if report.sent != n:
                raise SystemExit(f"sent {report.sent} of {n}: {report.summary()}")
            actions = fake.state.actions if provider == "tencent" else fake.actions
            return elapsed, sum(1 for a in actions if a in ("SendSms", "SendBatchSms"))


def compare_batching(provider: str, n: int, threads: int, latency: float) -> None:
    """Print one message per request against batches, both measured now."""
    single, single_requests = dispatch_identical(provider, n, threads, latency, send_batch=1)
    batched, batched_requests = dispatch_identical(provider, n, threads, latency, send_batch=200)
    print(
        f"{provider}, {n} identical texts, one per request: {single:.2f} s, {single_requests} requests"
    )
    print(f"{provider}, {n} identical texts, batched: {batched:.2f} s, {batched_requests} requests")
    print(f"ratio (one per request / batched): {single / batched:.2f}")


def main() -> None:
    """Run the benchmark and print the ratio (bare loop time / dispatcher time)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--provider", choices=("tencent", "aliyun"), default="tencent")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--batching", action="store_true", help="batched vs one per request")
    args = parser.parse_args()
    if args.batching:
        compare_batching(args.provider, args.n, args.threads, args.latency)
        return
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app("test", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp}/bench.sqlite3")
        fake = (
            FakeTencent(daily_limit=10**6)
            if args.provider == "tencent"
            else FakeAliyun(daily_limit=10**6)
        )
        with app.app_context(), fake:
            db.create_all()
            fake.latency = args.latency
            add_due_messages(args.n, per_patient=1)
            settings = DispatchSettings(workers=args.threads, batch_size=50)
            gateway = gateway_for(fake, timeout=10)
            started = time.perf_counter()
            report = Dispatcher(gateway, settings, actor="bench").run()
            dispatched = time.perf_counter() - started
            texts = [(f"+86138{i:08d}", f"【测试】提醒 {i}：请按时到院。") for i in range(args.n)]
            bare = gateway_for(fake, timeout=10)
            started = time.perf_counter()
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(lambda t: bare.send(t[0], t[1], reference="bench"), texts))
            baseline = time.perf_counter() - started
    print(f"{args.provider}: dispatcher sent {report.sent}/{args.n} in {dispatched:.2f} s")
    print(f"{args.provider}: bare SDK loop sent {args.n} in {baseline:.2f} s")
    print(f"ratio (bare / dispatcher): {baseline / dispatched:.2f}")


if __name__ == "__main__":
    main()
