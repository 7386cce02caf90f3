"""Pushed receipts are checked against the providers' query APIs; silent messages re-checked.

Neither Tencent Cloud nor Alibaba Cloud signs its receipt pushes: a forged or mistaken push may
change a message's status only until the pull job asks the provider, which then wins (with the
correction in the history and the audit log). A message whose push was lost is settled by the
query once it has waited ``after`` without a receipt.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, OutboxMessage
from app.services.conversations.inbound.provider_pull import pull
from app.services.messaging.dispatch import Dispatcher
from app.services.messaging.receipt_checks import recheck
from tests.fakes.fake_aliyun import FakeAliyun
from tests.fakes.fake_tencent import FakeTencent
from tests.integration.sms_support import add_due_messages
from tests.integration.test_domestic_sms import FAST, SECRET, gateway_for

AFTER = timedelta(minutes=30)


@pytest.fixture(params=("tencent", "aliyun"))
def fake(request: pytest.FixtureRequest) -> Iterator[Any]:
    server = FakeTencent(daily_limit=100) if request.param == "tencent" else FakeAliyun()
    with server:
        yield server


@pytest.fixture
def hooks(app_ctx: Flask) -> Iterator[FlaskClient]:
    saved = app_ctx.config.get("SMS_CALLBACK_SECRET")
    app_ctx.config["SMS_CALLBACK_SECRET"] = SECRET
    yield app_ctx.test_client()
    app_ctx.config["SMS_CALLBACK_SECRET"] = saved


def sent_one(fake: Any) -> OutboxMessage:
    [message_id] = add_due_messages(1)
    Dispatcher(gateway_for(fake), FAST, actor="test").run()
    return row(message_id)


def row(message_id: int) -> OutboxMessage:
    db.session.expire_all()
    found = db.session.get(OutboxMessage, message_id)
    assert found is not None
    return found


def push(hooks: FlaskClient, fake: Any, *, success: bool) -> None:
    """A receipt push for every message the fake holds, saying ``success``."""
    if isinstance(fake, FakeTencent):
        payload = [fake.receipt_payload(m, success=success) for m in fake.messages]
    else:
        payload = [fake.report_payload(m, success=success) for m in fake.messages]
    assert (
        hooks.post(f"/webhooks/{fake_name(fake)}/{SECRET}/status", json=payload).status_code == 200
    )


def fake_name(fake: Any) -> str:
    return "tencent" if isinstance(fake, FakeTencent) else "aliyun"


def provider_says_failed(fake: Any) -> None:
    for message in fake.messages:
        if isinstance(fake, FakeTencent):
            message.report_status = "FAIL"
        else:
            message.status = 2


def details(message: OutboxMessage) -> list[str]:
    return [change.detail or "" for change in message.history]


@pytest.mark.parametrize("truth", ["delivered", "undelivered"])
def test_a_push_the_query_contradicts_is_corrected_and_audited(
    hooks: FlaskClient, fake: Any, truth: str
) -> None:
    message = sent_one(fake)
    if truth == "undelivered":
        provider_says_failed(fake)
    push(hooks, fake, success=truth == "undelivered")  # the push says the opposite
    assert row(message.id).status != truth

    report = recheck(gateway_for(fake), after=AFTER)

    checked = row(message.id)
    assert (report.corrected, checked.status) == (1, truth)
    assert any("contradicted by the provider's query" in d for d in details(checked))
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "message.receipt_corrected")
    )
    assert entry is not None and entry.after == {"status": truth}


def test_a_push_the_query_agrees_with_is_confirmed_once(hooks: FlaskClient, fake: Any) -> None:
    message = sent_one(fake)
    push(hooks, fake, success=True)

    first = recheck(gateway_for(fake), after=AFTER)
    second = recheck(gateway_for(fake), after=AFTER)

    assert (first.confirmed, first.corrected, second.confirmed) == (1, 0, 0)
    checked = row(message.id)
    assert checked.status == "delivered"
    assert any("confirmed by the provider's query" in d for d in details(checked))


def test_a_message_without_a_receipt_is_rechecked_after_the_wait(
    app_ctx: Flask, fake: Any, clock: Any
) -> None:
    message = sent_one(fake)
    provider_says_failed(fake)
    waiting = row(message.id).status

    early = recheck(gateway_for(fake), after=AFTER)
    assert (early.settled, row(message.id).status) == (0, waiting)

    clock.advance(minutes=31)
    late = recheck(gateway_for(fake), after=AFTER)
    assert (late.settled, row(message.id).status) == (1, "undelivered")


def test_the_pull_job_runs_the_checks(hooks: FlaskClient, fake: Any) -> None:
    message = sent_one(fake)
    provider_says_failed(fake)
    push(hooks, fake, success=True)  # a forged "delivered" would hide the failure

    report = pull(gateway_for(fake))

    assert report.corrected == 1
    assert row(message.id).status == "undelivered"
