"""The soak (issues 16 and 18 §4): two web processes (gunicorn) and three jobs processes on one
PostgreSQL, 200 enrolled patients, 10 signed inbound webhooks a second for 30 s while a reminder
wave dispatches to the fake Twilio: nothing lost, nothing sent twice, every red answered and
paged once, no SMS to a number that said STOP, no error in any process's log.

The harness is bench/soak.py (its longer runs give the README's "Scaling" figures); this test
runs it short. PostgreSQL only: several jobs processes on one database need its row locks and
advisory locks (SQLite is the single-process embedded setup).
"""

from __future__ import annotations

from collections import Counter

import pytest
from flask import Flask

from app.clock import FrozenClock
from bench.soak import RED, SOAK_AT, run_soak, seed

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PATIENTS = 200  # 8 enrolled through the service, 192 copies of them (bench.soak.seed)
SECONDS = 30
RATE = 10.0


def test_two_web_and_three_jobs_processes_lose_nothing_and_send_nothing_twice(
    app_ctx: Flask, database_url: str, clock: FrozenClock
) -> None:
    clock.set(SOAK_AT)
    phones = seed(PATIENTS, wave=300, duration=SECONDS, enrolled=8)

    report = run_soak(
        database_url, duration=SECONDS, rate=RATE, web=2, jobs=3, drain_seconds=30, phones=phones
    )

    print("\n".join(report.lines()))
    assert report.problems == [], "\n".join(report.problems)
    served = [p for p in report.posted if p.status == 200]
    assert len(served) == len(report.posted) >= SECONDS * RATE
    categories = Counter(p.category for p in served)
    assert all(categories[c] > 0 for c in ("confirm", "symptom", "garbled", "stop", "start"))
    reds = [p for p in served if p.category in RED]
    assert reds and len(report.red_page_latencies) == len(reds)  # every red paged, measured
    assert report.outbound_by_kind["reminder"] >= 200  # the wave went out (200+ of 300)
    assert report.outbound_by_kind["page"] >= len(reds)
    assert report.counts["inbound stored"] == len(report.posted)
