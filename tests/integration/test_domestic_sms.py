"""Tencent Cloud and Alibaba Cloud: the real SDKs against loopback fakes (issue 12).

Exactly once for each provider (faults, reconciliation by SessionContext / OutId), frequency
limits, refusals, failover with a circuit breaker, receipts and replies by push and by pull.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import InboundMessage, OutboxMessage, Patient
from app.services.conversations.inbound.provider_pull import pull
from app.services.messaging.dispatch import Dispatcher, DispatchSettings, reconcile
from app.sms import (
    AliyunGateway,
    CircuitBreaker,
    FailoverGateway,
    TemplateCatalogue,
    TencentGateway,
)
from tests.fakes.fake_aliyun import FakeAliyun
from tests.fakes.fake_tencent import FakeTencent
from tests.integration.sms_support import add_due_messages

FAST = DispatchSettings(
    batch_size=10,
    workers=4,
    lease=timedelta(minutes=2),
    min_lease_left=timedelta(seconds=5),
    max_attempts=8,
    retry_base=timedelta(0),
    retry_cap=timedelta(0),
    settle=timedelta(0),
)
SECRET = "s" * 32
PROVIDERS = ("tencent", "aliyun")


def catalogue() -> TemplateCatalogue:
    return TemplateCatalogue.load(fallback="message")


def gateway_for(fake: Any, timeout: float = 1.0) -> Any:
    """The real gateway of ``fake``'s provider pointed at it."""
    if isinstance(fake, FakeTencent):
        return TencentGateway(
            "AKIDtest",
            "secret",
            sdk_app_id=fake.app_id,
            sign_name="江苏省肿瘤医院",
            templates=catalogue(),
            timeout=timeout,
            endpoint=fake.endpoint,
        )
    return AliyunGateway(
        "LTAItest",
        "secret",
        sign_name="江苏省肿瘤医院",
        templates=catalogue(),
        timeout=timeout,
        endpoint=fake.endpoint,
    )


@pytest.fixture(params=PROVIDERS)
def fake(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each provider's fake in turn."""
    server = FakeTencent(daily_limit=100) if request.param == "tencent" else FakeAliyun()
    with server:
        yield server


def rows() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def created(fake: Any) -> Counter[str]:
    """How many messages the fake created per outbox id (SessionContext / OutId)."""
    refs = [getattr(m, "session_context", None) or getattr(m, "out_id", "") for m in fake.messages]
    return Counter(refs)


def assert_sent_once(fake: Any, sent: list[OutboxMessage]) -> None:
    counts = created(fake)
    assert all(counts[str(r.id)] == 1 for r in sent), counts
    assert sum(counts.values()) == len(sent)


def test_due_messages_are_sent_once_as_templates_with_the_provider_recorded(
    app_ctx: Flask, fake: Any
) -> None:
    add_due_messages(12)

    report = Dispatcher(gateway_for(fake), FAST, actor="test").run()

    assert (report.claimed, report.sent) == (12, 12)
    sent = rows()
    assert {r.provider for r in sent} == {gateway_for(fake).name}
    assert all(r.provider_id for r in sent)
    assert_sent_once(fake, sent)
    assert Dispatcher(gateway_for(fake), FAST, actor="test").run().claimed == 0


@pytest.mark.parametrize("fault", ["timeout_created", "500_created", "drop_created"])
def test_an_ambiguous_send_that_was_created_is_found_by_reference_not_resent(
    app_ctx: Flask, fake: Any, fault: str
) -> None:
    add_due_messages(1)
    fake.fail_next(1, fault)

    assert Dispatcher(gateway_for(fake), FAST, actor="test").run().unknown == 1
    result = reconcile(gateway=gateway_for(fake), settings=FAST)

    [row] = rows()
    assert (result.found, result.resend) == (1, 0)
    assert row.status in ("sent", "delivered", "queued")
    assert_sent_once(fake, [row])


def test_a_timeout_without_a_message_is_resent_after_reconciliation(
    app_ctx: Flask, fake: Any
) -> None:
    add_due_messages(1)
    fake.fail_next(1, "timeout")

    assert Dispatcher(gateway_for(fake), FAST, actor="test").run().unknown == 1
    assert reconcile(gateway=gateway_for(fake), settings=FAST).resend == 1
    assert Dispatcher(gateway_for(fake), FAST, actor="test").run().sent == 1
    assert_sent_once(fake, rows())


def test_a_frequency_limit_is_retried_later_not_failed(app_ctx: Flask, fake: Any) -> None:
    [message_id] = add_due_messages(1)
    row = db.session.get(OutboxMessage, message_id)
    assert row is not None
    gateway = gateway_for(fake)
    gateway.send(row.patient.phone_e164, row.body, reference="other")  # same text just before

    report = Dispatcher(gateway, FAST, actor="test").run()

    [row] = rows()
    assert report.retried == 1 and row.status == "planned"
    assert "LIMIT" in (row.error_message or "").upper()


def test_an_invalid_number_fails_and_marks_the_phone(app_ctx: Flask, fake: Any) -> None:
    [message_id] = add_due_messages(1)
    row = db.session.get(OutboxMessage, message_id)
    assert row is not None and row.patient is not None
    phone = row.patient.phone_e164
    if isinstance(fake, FakeTencent):
        fake.set_number_error(phone, "InvalidParameterValue.IncorrectPhoneNumber")
    else:
        fake.set_number_error(phone.removeprefix("+86"), "isv.MOBILE_NUMBER_ILLEGAL")

    Dispatcher(gateway_for(fake), FAST, actor="test").run()

    [row] = rows()
    assert (row.status, row.error_reason) == ("failed", "invalid_number")
    assert db.session.get(Patient, row.patient_id).phone_status == "invalid"


def test_a_text_without_an_approved_template_is_refused_not_sent(app_ctx: Flask, fake: Any) -> None:
    add_due_messages(1)
    gateway = gateway_for(fake)
    gateway.templates = TemplateCatalogue.load()  # no fallback template

    Dispatcher(gateway, FAST, actor="test").run()

    [row] = rows()
    assert (row.status, row.error_reason) == ("failed", "rejected")
    assert "no approved" in (row.error_message or "")
    assert fake.messages == []


def test_random_faults_end_sent_exactly_once(app_ctx: Flask, fake: Any) -> None:
    add_due_messages(24, per_patient=3)
    kinds = ["500", "timeout", "500_created", "timeout_created", "drop_created"]
    for kind in kinds:
        fake.fail_next(1, kind)

    for _round in range(10):
        Dispatcher(gateway_for(fake, timeout=1), FAST, actor="test").run()
        reconcile(gateway=gateway_for(fake), settings=FAST)
        if not [r for r in rows() if r.status in ("planned", "claimed", "unknown")]:
            break

    final = rows()
    assert {r.status for r in final} <= {"queued", "sent", "delivered"}
    assert_sent_once(fake, final)


# -- failover -------------------------------------------------------------------------------


@pytest.fixture
def both() -> Iterator[tuple[FakeTencent, FakeAliyun]]:
    with FakeTencent(daily_limit=100) as tencent, FakeAliyun() as aliyun:
        yield tencent, aliyun


def test_failover_sends_through_the_secondary_when_the_primary_refuses_for_now(
    app_ctx: Flask, both: tuple[FakeTencent, FakeAliyun]
) -> None:
    tencent, aliyun = both
    tencent.request_error = "FailedOperation.InsufficientBalanceInSmsPackage"
    gateway = FailoverGateway(gateway_for(tencent), gateway_for(aliyun), CircuitBreaker(3))
    add_due_messages(5)

    report = Dispatcher(gateway, FAST, actor="test").run()

    assert report.sent == 5
    assert {r.provider for r in rows()} == {"aliyun"}
    assert tencent.messages == [] and len(aliyun.messages) == 5
    assert gateway.breaker.is_open  # later sends skip the primary


def test_failover_never_resends_an_ambiguous_primary_send_elsewhere(
    app_ctx: Flask, both: tuple[FakeTencent, FakeAliyun]
) -> None:
    tencent, aliyun = both
    tencent.fail_next(1, "timeout_created")
    gateway = FailoverGateway(gateway_for(tencent), gateway_for(aliyun))
    add_due_messages(1)

    assert Dispatcher(gateway, FAST, actor="test").run().unknown == 1
    result = reconcile(gateway=gateway, settings=FAST)

    [row] = rows()
    assert (result.found, result.resend) == (1, 0)
    assert row.provider == "tencent" and aliyun.messages == []
    assert len(tencent.messages) == 1


def test_an_open_breaker_half_opens_after_the_cooldown(clock: Any) -> None:
    breaker = CircuitBreaker(2, timedelta(minutes=5))
    breaker.failure()
    assert not breaker.is_open
    breaker.failure()
    assert breaker.is_open
    clock.advance(minutes=6)
    assert not breaker.is_open
    breaker.success()
    assert not breaker.is_open


# -- receipts and replies -------------------------------------------------------------------


@pytest.fixture
def hooks(app_ctx: Flask) -> Iterator[FlaskClient]:
    saved = app_ctx.config.get("SMS_CALLBACK_SECRET")
    app_ctx.config["SMS_CALLBACK_SECRET"] = SECRET
    yield app_ctx.test_client()
    app_ctx.config["SMS_CALLBACK_SECRET"] = saved


def _receipts(fake: Any, success: bool = True) -> list[dict[str, Any]]:
    if isinstance(fake, FakeTencent):
        return [fake.receipt_payload(m, success=success) for m in fake.messages]
    return [fake.report_payload(m, success=success) for m in fake.messages]


def test_pushed_receipts_move_messages_forward_once(hooks: FlaskClient, fake: Any) -> None:
    add_due_messages(2)
    Dispatcher(gateway_for(fake), FAST, actor="test").run()
    provider = gateway_for(fake).name
    url = f"/webhooks/{provider}/{SECRET}/status"

    first = hooks.post(url, json=_receipts(fake))
    again = hooks.post(url, json=_receipts(fake, success=False))  # a replayed, forged push

    assert first.status_code == again.status_code == 200
    assert {r.status for r in rows()} == {"delivered"}
    assert all(len(r.history) == 3 for r in rows())


def test_a_failed_receipt_keeps_the_providers_error_text(hooks: FlaskClient, fake: Any) -> None:
    add_due_messages(1)
    Dispatcher(gateway_for(fake), FAST, actor="test").run()
    provider = gateway_for(fake).name

    hooks.post(f"/webhooks/{provider}/{SECRET}/status", json=_receipts(fake, success=False))

    [row] = rows()
    assert row.status == "undelivered"
    assert "MK:0001" in (row.error_message or "") or "空号" in (row.error_message or "")


@pytest.mark.parametrize(
    "path,body,status",
    [
        (f"/webhooks/tencent/{'x' * 32}/status", [], 404),
        (f"/webhooks/tencent/{SECRET}/status", {"sid": "1"}, 400),
        (f"/webhooks/aliyun/{SECRET}/status", [{"biz_id": "1", "success": "yes"}], 400),
        (f"/webhooks/aliyun/{SECRET}/reply", [{"content": "1"}], 400),
        (f"/webhooks/other/{SECRET}/status", [], 404),
    ],
)
def test_callbacks_refuse_a_wrong_secret_or_shape(
    hooks: FlaskClient, path: str, body: Any, status: int
) -> None:
    assert hooks.post(path, json=body).status_code == status


def test_the_allow_list_refuses_other_sources(hooks: FlaskClient, app_ctx: Flask) -> None:
    app_ctx.config["SMS_CALLBACK_ALLOWED_IPS"] = "10.0.0.0/8"
    try:
        response = hooks.post(f"/webhooks/tencent/{SECRET}/status", json=[])
    finally:
        app_ctx.config["SMS_CALLBACK_ALLOWED_IPS"] = None
    assert response.status_code == 403


def test_a_pushed_reply_reaches_the_inbox_once_and_is_answered_by_sms(
    hooks: FlaskClient, fake: Any
) -> None:
    [message_id] = add_due_messages(1)
    row = db.session.get(OutboxMessage, message_id)
    assert row is not None and row.patient is not None
    phone = row.patient.phone_e164
    provider = gateway_for(fake).name
    if isinstance(fake, FakeTencent):
        payload: Any = fake.add_reply(phone, "我发烧39度")
    else:
        payload = [fake.reply_payload(phone, "我发烧39度")]
    url = f"/webhooks/{provider}/{SECRET}/reply"

    assert hooks.post(url, json=payload).status_code == 200
    assert hooks.post(url, json=payload).status_code == 200  # pushes are retried

    inbound = list(db.session.scalars(select(InboundMessage)))
    assert len(inbound) == 1
    assert inbound[0].patient_id == row.patient_id and inbound[0].priority in ("red", "amber")
    answers = [r for r in rows() if r.kind == "reply"]
    assert len(answers) == 1 and answers[0].status == "planned"


def test_tencent_pull_brings_receipts_and_replies(app_ctx: Flask) -> None:
    with FakeTencent() as fake:
        [message_id] = add_due_messages(1)
        gateway = gateway_for(fake)
        Dispatcher(gateway, FAST, actor="test").run()
        row = db.session.get(OutboxMessage, message_id)
        assert row is not None and row.patient is not None
        fake.add_reply(row.patient.phone_e164, "好的")

        report = pull(gateway)
        again = pull(gateway)

    assert (report.receipts, report.replies) == (1, 1)
    assert (again.receipts, again.replies) == (0, 0)
    assert rows()[0].status == "delivered"


def test_aliyun_pull_settles_waiting_messages_by_query(app_ctx: Flask) -> None:
    with FakeAliyun() as fake:
        add_due_messages(2)
        gateway = gateway_for(fake)
        Dispatcher(gateway, FAST, actor="test").run()

        report = pull(gateway)

    assert report.receipts == 2
    assert {r.status for r in rows()} == {"delivered"}


def test_templates_check_and_export_commands(app: Flask) -> None:
    runner = app.test_cli_runner()

    check = runner.invoke(args=["sms", "templates", "check"])
    export = runner.invoke(args=["sms", "templates", "export", "--provider", "tencent"])
    app.config["SMS_TEMPLATE_MAX_VARIABLE_LENGTH"] = "12"
    try:
        strict = runner.invoke(args=["sms", "templates", "check", "--provider", "tencent"])
    finally:
        app.config["SMS_TEMPLATE_MAX_VARIABLE_LENGTH"] = None

    assert check.exit_code == 0 and "pass for tencent, aliyun" in check.output
    assert export.output.startswith("kind,locale,template,type,purpose,example,id")
    assert strict.exit_code == 1 and "limit 12" in strict.output


def _actions(fake: Any) -> list[str]:
    return list(fake.state.actions if isinstance(fake, FakeTencent) else fake.actions)


def test_a_request_cut_off_by_the_client_is_neither_done_nor_counted(fake: Any) -> None:
    # A dispatcher killed while writing a send (SIGKILL tests): the provider sees headers and part
    # of the body, then the connection closes. Nothing is created and no request is counted.
    host, port = fake.endpoint.removeprefix("http://").split(":")
    body = b'{"SmsSdkAppId": "1400000000", "PhoneNumberSet": ["+8613800000000"]}'
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "X-TC-Action: SendSms\r\nx-acs-action: SendSms\r\nAuthorization: TC3-HMAC-SHA256 "
        f"Credential=x\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as cut:
        cut.sendall(head.encode() + body[:20])
    with socket.create_connection((host, int(port)), timeout=5) as whole:
        whole.sendall(head.encode() + body)
        assert whole.recv(4096).startswith(b"HTTP/1.")  # a complete request is answered
    assert _actions(fake) == ["SendSms"]  # only the complete one
    assert fake.messages == []
