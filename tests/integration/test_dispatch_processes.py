"""Several dispatcher PROCESSES against one database and each provider's fake: exactly once.

Each test runs against the fake Twilio, the fake Tencent Cloud and the fake Alibaba Cloud (the
real SDKs in `flask --app app sms ...` children, chosen by SMS_BACKEND).

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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.clock import FrozenClock
from app.extensions import db
from app.models import OutboxMessage, OutboxStatusChange
from tests.fakes.fake_aliyun import FakeAliyun
from tests.fakes.fake_tencent import FakeTencent
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.sms_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    add_due_messages,
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


@dataclass
class Provider:
    """One provider's fake as these tests see it: settings, created messages, send requests."""

    name: str
    fake: Any

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        """A child's environment sending through this provider's fake."""
        settings: dict[str, str] = {}
        if isinstance(self.fake, FakeTencent):
            settings = {
                "SMS_BACKEND": "tencent",
                "TENCENT_SECRET_ID": "AKIDtest",
                "TENCENT_SECRET_KEY": "secret",
                "TENCENT_SMS_SDK_APP_ID": self.fake.app_id,
                "TENCENT_SMS_ENDPOINT": self.fake.endpoint,
                "TENCENT_SMS_TIMEOUT": "2",
            }
        elif isinstance(self.fake, FakeAliyun):
            settings = {
                "SMS_BACKEND": "aliyun",
                "ALIYUN_ACCESS_KEY_ID": "LTAItest",
                "ALIYUN_ACCESS_KEY_SECRET": "secret",
                "ALIYUN_SMS_ENDPOINT": self.fake.endpoint,
                "ALIYUN_SMS_TIMEOUT": "2",
            }
        # Frequency-limit planning has its own tests; here every due message must go.
        settings.update(SMS_SIGN_NAME="江苏省肿瘤医院", SMS_PLAN_LIMITS="0")
        return subprocess_env(database_url, self.fake, **settings, **extra)

    def created(self) -> list[tuple[str, str]]:
        """(what identifies the outbox row, provider id) of every message the fake created."""
        if isinstance(self.fake, FakeTencent):
            return [(m.session_context, m.serial_no) for m in self.fake.messages]
        if isinstance(self.fake, FakeAliyun):
            return [(m.out_id, m.biz_id) for m in self.fake.messages]
        return [(f"{m.to} {m.body}", m.sid) for m in self.fake.messages]

    def key(self, row: OutboxMessage) -> str:
        """What the fake knows the row by: our reference, or (Twilio) number and body."""
        return f"{row.sent_to} {row.body}" if self.name == "twilio" else str(row.id)

    def send_requests(self) -> int:
        """Complete send requests the fake received."""
        if isinstance(self.fake, FakeTwilio):
            return len(
                [r for r in self.fake.create_requests() if r.form.get("MessagingServiceSid")]
            )
        actions = (
            self.fake.state.actions if isinstance(self.fake, FakeTencent) else self.fake.actions
        )
        return sum(1 for a in actions if a == "SendSms")


@pytest.fixture(params=("twilio", "tencent", "aliyun"))
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    """Each provider's fake in turn (fast faults, limits out of the way)."""
    if request.param == "twilio":
        server: Any = FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, stall_seconds=0.6)
    elif request.param == "tencent":
        server = FakeTencent(daily_limit=10**6)
    else:
        server = FakeAliyun()
    with server:
        yield Provider(request.param, server)


def assert_each_sent_exactly_once(provider: Provider, rows: list[OutboxMessage]) -> None:
    created = Counter(key for key, _ in provider.created())
    duplicates = {key: n for key, n in created.items() if n > 1}
    assert duplicates == {}
    assert {r.status for r in rows} <= ACCEPTED
    assert all(created[provider.key(r)] == 1 for r in rows)
    assert len(created) == sum(created.values()) == len(rows)
    ids = dict(provider.created())
    # Alibaba: a row the reconciler found by its OutId is known by it until a receipt names it.
    alibaba = provider.name == "aliyun"
    assert all(
        r.provider_id == ids[provider.key(r)] or (alibaba and r.provider_id == f"outid:{r.id}")
        for r in rows
    )


# Twilio's fake answers fastest; the domestic SDKs sign every request (fewer messages, same race).
COUNTS = {"twilio": 2000, "tencent": 600, "aliyun": 600}
SPREAD_SECONDS = 8.0  # what one process alone would take to send them all, at 6 workers


def test_two_dispatcher_processes_send_every_message_exactly_once(
    app_ctx: Flask, database_url: str, provider: Provider
) -> None:
    count = COUNTS[provider.name]
    add_due_messages(count, per_patient=10)
    # Sending takes one process alone several seconds (more than the two start-ups differ by
    # on a loaded machine), so both really take part however fast the dispatcher gets.
    provider.fake.latency = SPREAD_SECONDS * 6 / count
    env = provider.env(database_url, SMS_DISPATCH_WORKERS="6", SMS_DISPATCH_BATCH="20")

    processes = [start_flask(env, "sms", "send-due") for _ in range(2)]
    outputs = [finish(p) for p in processes]

    rows = all_rows()
    assert len(rows) == count
    assert_each_sent_exactly_once(provider, rows)
    assert provider.send_requests() == count  # not one request more than messages
    claimers = set(
        db.session.scalars(
            select(OutboxStatusChange.source).where(OutboxStatusChange.to_status == "claimed")
        )
    )
    assert len(claimers) == 2, outputs  # both processes really took part
    assert all("claimed" in out for out in outputs)


def killed_dispatcher_env(database_url: str, provider: Provider) -> dict[str, str]:
    """A child's environment (its clock starts at the test's clock now), with 4 s leases."""
    return provider.env(
        database_url,
        SMS_DISPATCH_WORKERS="8",
        SMS_DISPATCH_BATCH="8",
        SMS_LEASE_SECONDS="4",
        SMS_RECONCILE_SETTLE_SECONDS="0",
    )


def test_a_dispatcher_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
    app_ctx: Flask, database_url: str, provider: Provider, clock: FrozenClock
) -> None:
    fake = provider.fake
    add_due_messages(160, per_patient=4)
    fake.latency = 0.2

    started = time.monotonic()
    victim = start_flask(killed_dispatcher_env(database_url, provider), "sms", "send-due")
    deadline = time.monotonic() + 60
    # Killed with a request at the fake when the fake can tell (the domestic ones count them).
    while time.monotonic() < deadline and (
        len(fake.messages) < 40 or getattr(fake, "in_flight", 1) == 0
    ):
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)
    in_flight = provider.send_requests()
    stranded = [r for r in all_rows() if r.status == "claimed"]
    assert stranded, "the kill should leave claimed rows behind"

    time.sleep(0.5)  # requests in flight at the kill land
    # The victim's clock ran from the test's now for as long as it lived; the next processes
    # start after its last lease ran out.
    clock.advance(seconds=time.monotonic() - started + 4.5)
    fake.latency = 0.0
    reconciling = time.monotonic()
    reconciled = finish(
        start_flask(killed_dispatcher_env(database_url, provider), "sms", "reconcile")
    )
    # What the reconciler found unsent is due from its own last instant: send after that.
    clock.advance(seconds=time.monotonic() - reconciling + 1)
    finish(start_flask(killed_dispatcher_env(database_url, provider), "sms", "send-due"))

    rows = all_rows()
    assert_each_sent_exactly_once(provider, rows)
    found = [
        r
        for r in rows
        if any((h.detail or "").startswith(f"found at {provider.name}") for h in r.history)
    ]
    expired = [r for r in rows if any("lease expired" in (h.detail or "") for h in r.history)]
    assert {r.id for r in stranded} == {r.id for r in expired}
    assert found, reconciled  # requests in flight at the kill were found, not resent
    # A request cut off by the kill reaches the fake incomplete and creates nothing (as at the
    # providers); every complete one created exactly one message.
    assert provider.send_requests() == len(rows)
    assert in_flight <= len(rows)
    resent = [r for r in expired if r not in found]
    assert all(r.attempts == 2 for r in resent)
    assert all(r.attempts == 1 for r in found)
