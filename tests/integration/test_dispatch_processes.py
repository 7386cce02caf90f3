"""Several dispatcher PROCESSES against one database and the fake Twilio: exactly once.

These run on whichever database the suite uses (TEST_DATABASE_URL): PostgreSQL (SKIP LOCKED
claims) in CI's PostgreSQL pass, SQLite (one writer at a time, conditional UPDATE ... RETURNING)
otherwise. Both passes start real `flask --app app sms ...` processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest
from flask import Flask
from sqlalchemy import select

from app.clock import FrozenClock
from app.extensions import db
from app.models import OutboxMessage, OutboxStatusChange
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.sms_support import (
    add_due_messages,
    fake_fixture,  # noqa: F401  (the `fake` fixture)
    start_flask,
    subprocess_env,
)

pytestmark = pytest.mark.slow

ACCEPTED = {"queued", "sending", "sent", "delivered"}


def all_rows() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def finish(process: subprocess.Popen[str], timeout: float = 120) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def assert_each_sent_exactly_once(fake: FakeTwilio, rows: list[OutboxMessage]) -> None:
    created = Counter((m.to, m.body) for m in fake.messages)
    duplicates = {key: n for key, n in created.items() if n > 1}
    assert duplicates == {}
    assert {r.status for r in rows} <= ACCEPTED
    assert all(created[(r.sent_to, r.body)] == 1 for r in rows)
    assert len(fake.messages) == len(rows)
    assert {m.sid for m in fake.messages} == {r.provider_id for r in rows}


def test_two_dispatcher_processes_send_2000_messages_exactly_once(
    app_ctx: Flask, database_url: str, fake: FakeTwilio
) -> None:
    add_due_messages(2000, per_patient=10)
    env = subprocess_env(database_url, fake, SMS_DISPATCH_WORKERS="6", SMS_DISPATCH_BATCH="20")

    processes = [start_flask(env, "sms", "send-due") for _ in range(2)]
    outputs = [finish(p) for p in processes]

    rows = all_rows()
    assert len(rows) == 2000
    assert_each_sent_exactly_once(fake, rows)
    assert len(fake.create_requests()) == 2000  # not one request more than messages
    claimers = set(
        db.session.scalars(
            select(OutboxStatusChange.source).where(OutboxStatusChange.to_status == "claimed")
        )
    )
    assert len(claimers) == 2, outputs  # both processes really took part
    assert all("claimed" in out for out in outputs)


def killed_dispatcher_env(database_url: str, fake: FakeTwilio) -> dict[str, str]:
    """A child's environment (its clock starts at the test's clock now), with 4 s leases."""
    return subprocess_env(
        database_url,
        fake,
        SMS_DISPATCH_WORKERS="8",
        SMS_DISPATCH_BATCH="8",
        SMS_LEASE_SECONDS="4",
        SMS_RECONCILE_SETTLE_SECONDS="0",
    )


def test_a_dispatcher_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
    app_ctx: Flask, database_url: str, fake: FakeTwilio, clock: FrozenClock
) -> None:
    add_due_messages(160, per_patient=4)
    fake.latency = 0.2

    started = time.monotonic()
    victim = start_flask(killed_dispatcher_env(database_url, fake), "sms", "send-due")
    deadline = time.monotonic() + 60
    while len(fake.messages) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)
    in_flight = len(fake.create_requests())
    stranded = [r for r in all_rows() if r.status == "claimed"]
    assert stranded, "the kill should leave claimed rows behind"

    time.sleep(0.5)  # requests in flight at the kill land
    # The victim's clock ran from the test's now for as long as it lived; the next processes
    # start after its last lease ran out.
    clock.advance(seconds=time.monotonic() - started + 4.5)
    fake.latency = 0.0
    reconciling = time.monotonic()
    reconciled = finish(start_flask(killed_dispatcher_env(database_url, fake), "sms", "reconcile"))
    # What the reconciler found unsent is due from its own last instant: send after that.
    clock.advance(seconds=time.monotonic() - reconciling + 1)
    finish(start_flask(killed_dispatcher_env(database_url, fake), "sms", "send-due"))

    rows = all_rows()
    assert_each_sent_exactly_once(fake, rows)
    found = [
        r for r in rows if any((h.detail or "").startswith("found at twilio") for h in r.history)
    ]
    expired = [r for r in rows if any("lease expired" in (h.detail or "") for h in r.history)]
    assert {r.id for r in stranded} == {r.id for r in expired}
    assert found, reconciled  # requests in flight at the kill were found, not resent
    # A request cut off by the kill reaches the fake incomplete and creates nothing (as at
    # Twilio); every complete one created exactly one message.
    complete = [r for r in fake.create_requests() if r.form.get("MessagingServiceSid")]
    assert len(complete) == len(rows)
    assert in_flight <= len(rows)
    resent = [r for r in expired if r not in found]
    assert all(r.attempts == 2 for r in resent)
    assert all(r.attempts == 1 for r in found)
