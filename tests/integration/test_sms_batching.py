"""Batched sends (issue 12): identical texts share one Tencent SendSms or Alibaba SendBatchSms,
each member exactly once.

The real SDKs talk to the loopback fakes. Every member gets its own provider id and outcome; a
whole-request failure is every member's; the batch's SessionContext / OutId names every member,
so the reconciler finds each one by its number and id before any resend.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.clock import FrozenClock
from app.extensions import db
from app.models import OutboxMessage, OutboxStatusChange, Patient
from app.services.conversations.inbound.provider_pull import pull
from app.services.messaging.dispatch import Dispatcher, DispatchSettings, reconcile
from app.services.messaging.provider_receipts import apply_receipts, parse_aliyun
from app.sms import CircuitBreaker, FailoverGateway, reference_covers
from tests.fakes.fake_aliyun import FakeAliyun
from tests.fakes.fake_tencent import FakeTencent
from tests.integration.sms_support import add_due_messages, start_flask
from tests.integration.test_dispatch_processes import Provider, all_rows, finish
from tests.integration.test_domestic_sms import FAST, gateway_for

BODY = "【测试】提醒 7：请按时到院。"
ACCEPTED = {"queued", "sent", "delivered"}


@pytest.fixture
def tencent() -> Iterator[FakeTencent]:
    with FakeTencent(daily_limit=100) as fake:
        yield fake


def rows() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def send_requests(fake: FakeTencent) -> int:
    return sum(1 for action in fake.state.actions if action == "SendSms")


def assert_each_sent_once(fake: FakeTencent, sent: list[OutboxMessage]) -> None:
    """Every row: exactly one message at the fake to its number naming its id, and its
    SerialNo stored; nothing else created."""
    for row in sent:
        mine = [
            m
            for m in fake.messages
            if m.phone == row.sent_to and reference_covers(m.session_context, row.id)
        ]
        assert len(mine) == 1, (row.id, mine)
        assert row.provider_id == mine[0].serial_no
        assert row.status in ACCEPTED
    assert len(fake.messages) == len(sent)


def run(gateway: Any, settings: Any = FAST) -> Any:
    return Dispatcher(gateway, settings, actor="test").run()


def test_identical_texts_are_one_request_with_a_serial_number_each(
    app_ctx: Flask, tencent: FakeTencent
) -> None:
    ids = add_due_messages(6, per_patient=1, body=BODY)

    report = run(gateway_for(tencent))

    assert (report.claimed, report.sent) == (6, 6)
    assert send_requests(tencent) == 1
    assert {m.session_context for m in tencent.messages} == {f"{ids[0]}-{ids[-1]}"}
    sent = rows()
    assert len({r.provider_id for r in sent}) == 6
    assert {r.provider for r in sent} == {"tencent"}
    assert_each_sent_once(tencent, sent)
    history = db.session.scalars(
        select(OutboxStatusChange.detail).where(OutboxStatusChange.from_status == "claimed")
    ).all()
    assert sorted(history) == sorted(f"accepted by tencent as {r.provider_id}" for r in sent)
    assert run(gateway_for(tencent)).claimed == 0


def test_texts_that_differ_are_not_batched(app_ctx: Flask, tencent: FakeTencent) -> None:
    add_due_messages(3, per_patient=1, body=BODY)
    add_due_messages(3, per_patient=1)  # three different texts

    report = run(gateway_for(tencent))

    assert report.sent == 6
    assert send_requests(tencent) == 4  # one for the identical three, one per other text
    contexts = sorted(m.session_context for m in tencent.messages)
    assert sum("-" in c for c in contexts) == 3  # the batch's members share "a-b"
    assert_each_sent_once(tencent, rows())


def test_the_send_batch_setting_is_read(app_ctx: Flask) -> None:
    assert DispatchSettings.from_config(app_ctx.config).send_batch == 200
    assert DispatchSettings.from_config({**app_ctx.config, "SMS_SEND_BATCH": 1}).send_batch == 1


def test_batching_off_sends_one_request_per_message(app_ctx: Flask, tencent: FakeTencent) -> None:
    add_due_messages(4, per_patient=1, body=BODY)

    assert run(gateway_for(tencent), replace(FAST, send_batch=1)).sent == 4

    assert send_requests(tencent) == 4
    assert_each_sent_once(tencent, rows())


def test_one_number_is_never_twice_in_a_batch_and_limits_stay_per_message(
    app_ctx: Flask, tencent: FakeTencent
) -> None:
    add_due_messages(4, per_patient=2, body=BODY)  # two patients, the same text twice each

    report = run(gateway_for(tencent))

    # Two requests (one per round of distinct numbers); the second round is the same text to
    # the same numbers within 30 s: the provider refuses each member for now, nothing lost.
    assert send_requests(tencent) == 2
    assert (report.sent, report.retried) == (2, 2)
    assert len({m.phone for m in tencent.messages}) == len(tencent.messages) == 2
    waiting = [r for r in rows() if r.status == "planned"]
    assert len(waiting) == 2 and all(r.error_reason == "retrying" for r in waiting)


def test_a_refused_number_in_a_batch_fails_alone(app_ctx: Flask, tencent: FakeTencent) -> None:
    add_due_messages(5, per_patient=1, body=BODY)
    refused = rows()[2]
    tencent.set_number_error(refused.patient.phone_e164, "FailedOperation.PhoneNumberInBlacklist")

    report = run(gateway_for(tencent))

    assert send_requests(tencent) == 1
    assert (report.sent, report.failed) == (4, 1)
    final = {r.id: r for r in rows()}
    assert (final[refused.id].status, final[refused.id].error_reason) == ("failed", "opted_out")
    assert final[refused.id].provider_id is None
    assert db.session.get(Patient, refused.patient_id).sms_opted_out_at is not None
    others = [r for r in final.values() if r.id != refused.id]
    assert all(db.session.get(Patient, r.patient_id).sms_opted_out_at is None for r in others)
    assert_each_sent_once(tencent, others)


def test_a_batch_refused_for_now_is_retried_whole_then_sent_once(
    app_ctx: Flask, tencent: FakeTencent
) -> None:
    add_due_messages(5, per_patient=1, body=BODY)
    tencent.request_error = "RequestLimitExceeded"

    report = run(gateway_for(tencent))

    assert report.retried == 5 and tencent.messages == []
    assert {(r.status, r.error_reason) for r in rows()} == {("planned", "retrying")}
    tencent.request_error = None
    assert run(gateway_for(tencent)).sent == 5
    assert send_requests(tencent) == 2
    assert_each_sent_once(tencent, rows())


def test_a_request_refused_for_a_number_without_saying_whose_is_sent_one_by_one(
    app_ctx: Flask, tencent: FakeTencent
) -> None:
    add_due_messages(3, per_patient=1, body=BODY)
    bad = rows()[1]
    tencent.batch_error = "InvalidParameterValue.IncorrectPhoneNumber"
    tencent.set_number_error(bad.patient.phone_e164, "InvalidParameterValue.IncorrectPhoneNumber")

    report = run(gateway_for(tencent))

    assert (report.sent, report.failed) == (2, 1)
    assert send_requests(tencent) == 4  # the refused batch, then each member alone
    final = {r.id: r for r in rows()}
    assert final[bad.id].error_reason == "invalid_number"
    assert [p.phone_status for p in db.session.scalars(select(Patient))].count("invalid") == 1
    assert_each_sent_once(tencent, [r for r in final.values() if r.id != bad.id])


@pytest.mark.parametrize("fault", ["timeout_created", "500_created", "drop_created"])
def test_an_ambiguous_batch_is_reconciled_member_by_member_never_resent(
    app_ctx: Flask, tencent: FakeTencent, fault: str
) -> None:
    add_due_messages(5, per_patient=1, body=BODY)
    tencent.fail_next(1, fault)

    assert run(gateway_for(tencent)).unknown == 5
    assert len(tencent.messages) == 5  # created, but the answer was lost
    result = reconcile(gateway=gateway_for(tencent), settings=FAST)

    assert (result.found, result.resend) == (5, 0)
    assert_each_sent_once(tencent, rows())
    assert run(gateway_for(tencent)).claimed == 0
    assert send_requests(tencent) == 1


@pytest.mark.parametrize("fault", ["timeout", "500", "drop"])
def test_an_ambiguous_batch_that_created_nothing_is_resent_once(
    app_ctx: Flask, tencent: FakeTencent, fault: str
) -> None:
    add_due_messages(5, per_patient=1, body=BODY)
    tencent.fail_next(1, fault)

    assert run(gateway_for(tencent)).unknown == 5
    assert reconcile(gateway=gateway_for(tencent), settings=FAST).resend == 5
    assert run(gateway_for(tencent)).sent == 5

    assert send_requests(tencent) == 2
    assert_each_sent_once(tencent, rows())


def test_random_faults_on_batches_end_sent_exactly_once(
    app_ctx: Flask, tencent: FakeTencent
) -> None:
    add_due_messages(24, per_patient=1, body=BODY)
    add_due_messages(12, per_patient=1, body="【测试】提醒 8：请按时到院。")
    for kind in ["500", "timeout", "500_created", "timeout_created", "drop_created", "drop"]:
        tencent.fail_next(1, kind)

    for _round in range(12):
        run(gateway_for(tencent, timeout=1))
        reconcile(gateway=gateway_for(tencent), settings=FAST)
        if not [r for r in rows() if r.status in ("planned", "claimed", "unknown")]:
            break

    assert_each_sent_once(tencent, rows())


def test_the_provider_limit_of_200_numbers_splits_a_batch(
    app_ctx: Flask, tencent: FakeTencent
) -> None:
    add_due_messages(230, per_patient=1, body=BODY)

    report = run(gateway_for(tencent, timeout=5), replace(FAST, batch_size=250, workers=2))

    assert report.sent == 230
    assert send_requests(tencent) == 2
    assert sorted(
        sum(1 for m in tencent.messages if m.session_context == c)
        for c in {m.session_context for m in tencent.messages}
    ) == [30, 200]
    assert_each_sent_once(tencent, rows())


def test_references_that_would_overflow_session_context_split_the_batch(
    app_ctx: Flask, tencent: FakeTencent
) -> None:
    ids = add_due_messages(240, per_patient=1, body=BODY)
    # Every other row cancelled: the remaining ids are not one run, so "a,b,c..." grows.
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids[1::2]))
        .values(status="cancelled", dedupe_key=OutboxMessage.dedupe_key + ":x")
    )
    db.session.execute(update(OutboxMessage).values(id=OutboxMessage.id + 100000))
    db.session.commit()

    report = run(gateway_for(tencent, timeout=5), replace(FAST, batch_size=250, workers=2))

    assert report.sent == 120
    contexts = {m.session_context for m in tencent.messages}
    assert len(contexts) == send_requests(tencent) == 2  # 120 ids of 6 digits need two
    assert all(len(c.encode()) < 512 for c in contexts)
    assert_each_sent_once(tencent, [r for r in rows() if r.status != "cancelled"])


# -- receipts ----------------------------------------------------------------------------------

SECRET = "s" * 32


@pytest.fixture
def hooks(app_ctx: Flask) -> Iterator[FlaskClient]:
    saved = app_ctx.config.get("SMS_CALLBACK_SECRET")
    app_ctx.config["SMS_CALLBACK_SECRET"] = SECRET
    yield app_ctx.test_client()
    app_ctx.config["SMS_CALLBACK_SECRET"] = saved


def test_receipts_of_a_batch_settle_each_member(hooks: FlaskClient, tencent: FakeTencent) -> None:
    add_due_messages(4, per_patient=1, body=BODY)
    run(gateway_for(tencent))

    response = hooks.post(f"/webhooks/tencent/{SECRET}/status", json=tencent_receipts(tencent))

    assert response.status_code == 200
    final = rows()
    assert {r.status for r in final} == {"delivered"}
    assert_each_sent_once(tencent, final)


def test_a_receipt_before_the_batch_answer_finds_its_member_by_number(
    hooks: FlaskClient, tencent: FakeTencent
) -> None:
    add_due_messages(4, per_patient=1, body=BODY)
    tencent.fail_next(1, "timeout_created")  # created, answer lost: no SerialNo stored yet
    assert run(gateway_for(tencent)).unknown == 4

    hooks.post(f"/webhooks/tencent/{SECRET}/status", json=tencent_receipts(tencent))

    final = rows()
    assert {r.status for r in final} == {"delivered"}
    assert_each_sent_once(tencent, final)  # each row got its own member's SerialNo
    assert reconcile(gateway=gateway_for(tencent), settings=FAST).checked == 0


def tencent_receipts(fake: FakeTencent) -> list[dict[str, Any]]:
    return [fake.receipt_payload(m) for m in fake.messages]


# -- failover ----------------------------------------------------------------------------------


@pytest.fixture
def both() -> Iterator[tuple[FakeTencent, FakeAliyun]]:
    with FakeTencent(daily_limit=100) as tencent, FakeAliyun() as aliyun:
        yield tencent, aliyun


def test_failover_moves_a_batch_the_primary_refused_for_now(
    app_ctx: Flask, both: tuple[FakeTencent, FakeAliyun]
) -> None:
    tencent, aliyun = both
    tencent.request_error = "FailedOperation.InsufficientBalanceInSmsPackage"
    gateway = FailoverGateway(gateway_for(tencent), gateway_for(aliyun), CircuitBreaker(3))
    add_due_messages(4, per_patient=1, body=BODY)

    assert run(gateway).sent == 4

    final = rows()
    assert {r.provider for r in final} == {"aliyun"}
    assert tencent.messages == [] and send_requests(tencent) == 1
    assert aliyun.actions.count("SendBatchSms") == 1  # the secondary batches too
    assert len({m.biz_id for m in aliyun.messages}) == 1
    assert_each_sent_once_at_aliyun(aliyun, final)


def test_failover_moves_only_the_member_the_primary_rejected(
    app_ctx: Flask, both: tuple[FakeTencent, FakeAliyun]
) -> None:
    tencent, aliyun = both
    gateway = FailoverGateway(gateway_for(tencent), gateway_for(aliyun))
    add_due_messages(4, per_patient=1, body=BODY)
    moved = rows()[0]
    code = "FailedOperation.TemplateIncorrectOrUnapproved"
    tencent.set_number_error(moved.patient.phone_e164, code)

    assert run(gateway).sent == 4

    final = {r.id: r for r in rows()}
    assert final[moved.id].provider == "aliyun"
    assert [m.out_id for m in aliyun.messages] == [str(moved.id)]
    assert_each_sent_once(tencent, [r for r in final.values() if r.id != moved.id])
    # Its receipt finds it (known by its BizId, as any single Alibaba message).
    report = apply_receipts(parse_aliyun([aliyun.report_payload(aliyun.messages[0])]), source="t")
    assert report.updated == 1
    assert db.session.get(OutboxMessage, moved.id, populate_existing=True).status == "delivered"


def test_failover_never_resends_an_ambiguous_batch_elsewhere(
    app_ctx: Flask, both: tuple[FakeTencent, FakeAliyun]
) -> None:
    tencent, aliyun = both
    tencent.fail_next(1, "timeout_created")
    gateway = FailoverGateway(gateway_for(tencent), gateway_for(aliyun))
    add_due_messages(4, per_patient=1, body=BODY)

    assert run(gateway).unknown == 4
    result = reconcile(gateway=gateway, settings=FAST)

    assert (result.found, result.resend) == (4, 0)
    assert aliyun.messages == []
    assert {r.provider for r in rows()} == {"tencent"}
    assert_each_sent_once(tencent, rows())


# -- several dispatcher processes ----------------------------------------------------------------


@pytest.fixture(params=("tencent", "aliyun"))
def batch_provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    """Each batching provider's fake in turn (limits out of the way)."""
    server: Any = FakeTencent(daily_limit=10**6) if request.param == "tencent" else None
    server = server or FakeAliyun(daily_limit=10**6)
    with server:
        yield Provider(request.param, server)


def assert_sent_once_at(provider: Provider, sent: list[OutboxMessage]) -> None:
    if isinstance(provider.fake, FakeTencent):
        assert_each_sent_once(provider.fake, sent)
    else:
        assert_each_sent_once_at_aliyun(provider.fake, sent)


def batch_requests(provider: Provider) -> int:
    if isinstance(provider.fake, FakeTencent):
        return send_requests(provider.fake)
    return provider.fake.actions.count("SendBatchSms") + provider.fake.actions.count("SendSms")


@pytest.mark.slow
def test_two_dispatcher_processes_send_batches_exactly_once(
    app_ctx: Flask, database_url: str, batch_provider: Provider
) -> None:
    fake = batch_provider.fake
    add_due_messages(400, per_patient=1, body=BODY)
    add_due_messages(200, per_patient=1, body="【测试】提醒 8：请按时到院。")
    fake.latency = 0.5  # batches are fast: keep the first process busy until the second starts
    env = batch_provider.env(database_url, SMS_DISPATCH_WORKERS="4", SMS_DISPATCH_BATCH="20")

    processes = [start_flask(env, "sms", "send-due") for _ in range(2)]
    outputs = [finish(p) for p in processes]

    final = all_rows()
    assert len(final) == 600
    assert_sent_once_at(batch_provider, final)
    assert batch_requests(batch_provider) < 600 / 5  # batched: requests of up to 20 members
    claimers = set(
        db.session.scalars(
            select(OutboxStatusChange.source).where(OutboxStatusChange.to_status == "claimed")
        )
    )
    assert len(claimers) == 2, outputs


@pytest.mark.slow
def test_a_dispatcher_killed_with_batches_in_flight_sends_nothing_twice(
    app_ctx: Flask, database_url: str, batch_provider: Provider, clock: FrozenClock
) -> None:
    fake = batch_provider.fake
    add_due_messages(160, per_patient=1, body=BODY)
    fake.latency = 0.3

    def env() -> dict[str, str]:  # each child's clock starts at the test's clock now
        return batch_provider.env(
            database_url,
            SMS_DISPATCH_WORKERS="4",
            SMS_DISPATCH_BATCH="8",
            SMS_LEASE_SECONDS="4",
            SMS_RECONCILE_SETTLE_SECONDS="0",
        )

    started = time.monotonic()
    victim = start_flask(env(), "sms", "send-due")
    deadline = time.monotonic() + 60
    # Killed with a batch request at the fake (in its latency wait), not between two requests:
    # that batch's members are created after the kill and must be found, not resent.
    while (len(fake.messages) < 40 or fake.in_flight == 0) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=10)
    stranded = [r for r in all_rows() if r.status == "claimed"]
    assert stranded, "the kill should leave claimed rows behind"

    time.sleep(0.6)  # requests in flight at the kill land
    clock.advance(seconds=time.monotonic() - started + 4.5)
    fake.latency = 0.0
    reconciling = time.monotonic()
    finish(start_flask(env(), "sms", "reconcile"))
    clock.advance(seconds=time.monotonic() - reconciling + 1)
    finish(start_flask(env(), "sms", "send-due"))

    final = all_rows()
    assert_sent_once_at(batch_provider, final)
    found = [r for r in final if any((h.detail or "").startswith("found at") for h in r.history)]
    assert found  # members of batches in flight at the kill were found, not resent


# -- Alibaba: SendBatchSms -----------------------------------------------------------------------


@pytest.fixture
def aliyun() -> Iterator[FakeAliyun]:
    with FakeAliyun() as fake:
        yield fake


def assert_each_sent_once_at_aliyun(fake: FakeAliyun, sent: list[OutboxMessage]) -> None:
    """Every row: exactly one message at the fake to its number whose OutId names its id, and
    a provider id of its own; nothing else created."""
    for row in sent:
        national = (row.sent_to or "").removeprefix("+86")
        mine = [
            m for m in fake.messages if m.phone == national and reference_covers(m.out_id, row.id)
        ]
        assert len(mine) == 1, (row.id, mine)
        assert row.status in ACCEPTED
    assert len({r.provider_id for r in sent}) == len(sent)
    assert len(fake.messages) == len(sent)


def test_aliyun_identical_texts_are_one_send_batch_sms_with_an_id_per_member(
    app_ctx: Flask, aliyun: FakeAliyun
) -> None:
    ids = add_due_messages(5, per_patient=1, body=BODY)

    report = run(gateway_for(aliyun))

    assert report.sent == 5
    assert (aliyun.actions.count("SendBatchSms"), aliyun.actions.count("SendSms")) == (1, 0)
    [biz_id] = {m.biz_id for m in aliyun.messages}
    assert {m.out_id for m in aliyun.messages} == {f"{ids[0]}-{ids[-1]}"}
    final = rows()
    assert {r.provider_id for r in final} == {
        f"{biz_id}:{(r.sent_to or '').removeprefix('+86')}" for r in final
    }
    assert_each_sent_once_at_aliyun(aliyun, final)


def test_aliyun_receipts_of_a_batch_settle_each_member(
    hooks: FlaskClient, aliyun: FakeAliyun
) -> None:
    add_due_messages(4, per_patient=1, body=BODY)
    run(gateway_for(aliyun))

    reports = [aliyun.report_payload(m) for m in aliyun.messages]
    hooks.post(f"/webhooks/aliyun/{SECRET}/status", json=reports)

    assert {r.status for r in rows()} == {"delivered"}


@pytest.mark.parametrize("fault", ["timeout_created", "500_created", "drop_created"])
def test_an_ambiguous_aliyun_batch_is_found_member_by_member_then_named_by_receipts(
    hooks: FlaskClient, aliyun: FakeAliyun, fault: str
) -> None:
    add_due_messages(4, per_patient=1, body=BODY)
    aliyun.fail_next(1, fault)

    assert run(gateway_for(aliyun)).unknown == 4
    result = reconcile(gateway=gateway_for(aliyun), settings=FAST)

    assert (result.found, result.resend) == (4, 0)
    found = rows()
    assert all((r.provider_id or "").startswith("outid:") for r in found)
    assert_each_sent_once_at_aliyun(aliyun, found)
    assert run(gateway_for(aliyun)).claimed == 0
    # The receipts name each member's BizId: the rows found by OutId take it.
    reports = [aliyun.report_payload(m) for m in aliyun.messages]
    hooks.post(f"/webhooks/aliyun/{SECRET}/status", json=reports)
    final = rows()
    assert {r.status for r in final} == {"delivered"}
    [biz_id] = {m.biz_id for m in aliyun.messages}
    assert all((r.provider_id or "").startswith(f"{biz_id}:") for r in final)
    assert_each_sent_once_at_aliyun(aliyun, final)


def test_an_aliyun_batch_that_created_nothing_is_resent_once(
    app_ctx: Flask, aliyun: FakeAliyun
) -> None:
    add_due_messages(4, per_patient=1, body=BODY)
    aliyun.fail_next(1, "timeout")

    assert run(gateway_for(aliyun)).unknown == 4
    assert reconcile(gateway=gateway_for(aliyun), settings=FAST).resend == 4
    assert run(gateway_for(aliyun)).sent == 4

    assert aliyun.actions.count("SendBatchSms") == 2
    assert_each_sent_once_at_aliyun(aliyun, rows())


def test_an_aliyun_batch_refused_for_one_number_sends_each_member_alone(
    app_ctx: Flask, aliyun: FakeAliyun
) -> None:
    add_due_messages(4, per_patient=1, body=BODY)
    bad = rows()[2]
    aliyun.set_number_error(bad.patient.phone_e164.removeprefix("+86"), "isv.MOBILE_NUMBER_ILLEGAL")

    report = run(gateway_for(aliyun))

    assert (report.sent, report.failed) == (3, 1)
    assert (aliyun.actions.count("SendBatchSms"), aliyun.actions.count("SendSms")) == (1, 4)
    final = {r.id: r for r in rows()}
    assert final[bad.id].error_reason == "invalid_number"
    assert [p.phone_status for p in db.session.scalars(select(Patient))].count("invalid") == 1
    assert_each_sent_once_at_aliyun(aliyun, [r for r in final.values() if r.id != bad.id])


def test_an_aliyun_member_over_its_limit_waits_alone_and_the_others_go(
    app_ctx: Flask, aliyun: FakeAliyun
) -> None:
    add_due_messages(4, per_patient=1, body=BODY)
    limited = rows()[0]
    gateway = gateway_for(aliyun)
    gateway.send(limited.patient.phone_e164, BODY, reference="other")  # same text just before

    report = run(gateway)

    assert (report.sent, report.retried) == (3, 1)
    final = {r.id: r for r in rows()}
    assert (final[limited.id].status, final[limited.id].error_reason) == ("planned", "retrying")
    others = [r for r in final.values() if r.id != limited.id]
    assert all(r.status in ACCEPTED for r in others)
    assert len(aliyun.messages) == 1 + 3


def test_aliyun_pull_settles_batch_members_by_query(app_ctx: Flask, aliyun: FakeAliyun) -> None:
    add_due_messages(3, per_patient=1, body=BODY)
    gateway = gateway_for(aliyun)
    run(gateway)

    report = pull(gateway)

    assert report.receipts == 3
    assert {r.status for r in rows()} == {"delivered"}


def test_random_faults_on_aliyun_batches_end_sent_exactly_once(
    app_ctx: Flask, aliyun: FakeAliyun
) -> None:
    add_due_messages(24, per_patient=1, body=BODY)
    add_due_messages(12, per_patient=1, body="【测试】提醒 8：请按时到院。")
    for kind in ["500", "timeout", "500_created", "timeout_created", "drop_created", "drop"]:
        aliyun.fail_next(1, kind)

    for _round in range(12):
        run(gateway_for(aliyun, timeout=1))
        reconcile(gateway=gateway_for(aliyun), settings=FAST)
        if not [r for r in rows() if r.status in ("planned", "claimed", "unknown")]:
            break

    assert_each_sent_once_at_aliyun(aliyun, rows())


def test_failover_hands_back_a_batch_refused_for_one_number_to_be_sent_alone(
    app_ctx: Flask, both: tuple[FakeTencent, FakeAliyun]
) -> None:
    tencent, aliyun = both
    gateway = FailoverGateway(gateway_for(tencent), gateway_for(aliyun))
    add_due_messages(3, per_patient=1, body=BODY)
    bad = rows()[0]
    code = "InvalidParameterValue.IncorrectPhoneNumber"
    tencent.batch_error = code
    tencent.set_number_error(bad.patient.phone_e164, code)

    report = run(gateway)

    # An invalid number is the patient's fact, not the provider's: no failover for anyone.
    assert (report.sent, report.failed) == (2, 1)
    assert aliyun.messages == [] and send_requests(tencent) == 4
    final = {r.id: r for r in rows()}
    assert final[bad.id].error_reason == "invalid_number"
    assert_each_sent_once(tencent, [r for r in final.values() if r.id != bad.id])
