"""Alibaba queue mode (issue 12): the real aliyun-mns-sdk against a loopback fake MNS that checks
every request's signature. Receipts and replies read from the queues go through the same code
as the pushes; a message is deleted only after its work was committed."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.clock import utcnow
from app.extensions import db
from app.models import AuditEntry, OutboxMessage
from app.services.conversations import inbox
from app.services.conversations.inbound import provider_queue, provider_replies, replies
from app.services.messaging import provider_receipts
from app.services.messaging.dispatch import Dispatcher, DispatchSettings
from app.sms import AliyunGateway, TemplateCatalogue
from app.sms.aliyun_mns import forget_tokens
from jobs import provider_queue as queue_job
from tests.fakes.fake_aliyun import FakeAliyun
from tests.fakes.fake_mns import FakeMns
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.sms_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    ROOT,
    add_due_messages,
    subprocess_env,
)
from tests.replies.conftest import add_rota, alerts, inbound_rows, patient

REPORTS = "Alicom-Queue-1-SmsReport"
UPS = "Alicom-Queue-1-SmsUp"
KEY_ID, KEY_SECRET = "LTAImns", "mns-secret-0123456789"
RED_TEXT = "今天发烧39度，还拉了好几次"
FAST = DispatchSettings(
    batch_size=10,
    workers=2,
    lease=timedelta(minutes=2),
    min_lease_left=timedelta(seconds=5),
    retry_base=timedelta(0),
    retry_cap=timedelta(0),
    settle=timedelta(0),
)
MNS_KEYS = (
    "ALIYUN_MNS_ENDPOINT",
    "ALIYUN_MNS_REPORT_QUEUE",
    "ALIYUN_MNS_REPLY_QUEUE",
    "ALIYUN_MNS_ACCESS_KEY_ID",
    "ALIYUN_MNS_ACCESS_KEY_SECRET",
    "ALIYUN_MNS_WAIT_SECONDS",
    "ALIYUN_MNS_AUTH",
    "ALIYUN_MNS_TOKEN_ENDPOINT",
)


@pytest.fixture
def mns(app_ctx: Flask) -> Iterator[FakeMns]:
    """A fake MNS with both SMS queues, and the app's queue-mode settings pointed at it."""
    saved = {key: app_ctx.config.get(key) for key in MNS_KEYS}
    forget_tokens()  # a new fake may get an earlier one's port: never reuse its tokens
    with FakeMns(keys={KEY_ID: KEY_SECRET}, queues=(REPORTS, UPS)) as fake:
        app_ctx.config.update(
            ALIYUN_MNS_ENDPOINT=fake.endpoint,
            ALIYUN_MNS_REPORT_QUEUE=REPORTS,
            ALIYUN_MNS_REPLY_QUEUE=UPS,
            ALIYUN_MNS_ACCESS_KEY_ID=KEY_ID,
            ALIYUN_MNS_ACCESS_KEY_SECRET=KEY_SECRET,
            ALIYUN_MNS_WAIT_SECONDS="0",
            ALIYUN_MNS_AUTH="token",
            ALIYUN_MNS_TOKEN_ENDPOINT=fake.endpoint,  # Dybaseapi's QueryTokenForMnsQueue
        )
        yield fake
    app_ctx.config.update(saved)


def run_job(app: Flask) -> provider_queue.QueueReport:
    """The scheduled job once, as the jobs process runs it (its own app context)."""
    db.session.commit()  # end the test's read transaction before the job writes
    report = queue_job.run_once(app, threading.Event())
    assert report is not None
    return report


def local_now() -> str:
    """The provider's time stamp of now (China time)."""
    return (utcnow() + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")


def outbox(kind: str) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == kind)
            .order_by(OutboxMessage.id)
            .execution_options(populate_existing=True)
        )
    )


def sent_through_fake_aliyun(fake: FakeAliyun, count: int) -> list[Any]:
    """Send ``count`` due reminders through the fake; the fake's messages in outbox-id order."""
    gateway = AliyunGateway(
        "LTAItest",
        "secret",
        sign_name="江苏省肿瘤医院",
        templates=TemplateCatalogue.load(fallback="message"),
        timeout=1.0,
        endpoint=fake.endpoint,
    )
    ids = add_due_messages(count)
    Dispatcher(gateway, FAST, actor="test").run()
    by_reference = {m.out_id: m for m in fake.messages}
    return [by_reference[str(i)] for i in ids]


def reminder(fake_message: Any) -> OutboxMessage:
    """The outbox row a fake Alibaba message was sent for."""
    row = db.session.get(OutboxMessage, int(fake_message.out_id), populate_existing=True)
    assert row is not None
    return row


# -- receipts -----------------------------------------------------------------------------------


def test_receipts_by_queue_update_the_status_history_once(app_ctx: Flask, mns: FakeMns) -> None:
    with FakeAliyun() as aliyun:
        good, bad = sent_through_fake_aliyun(aliyun, 2)
        reports = [aliyun.report_payload(good), aliyun.report_payload(bad, success=False)]
    for payload in reports:
        mns.put_json(REPORTS, payload)

    report = run_job(app_ctx)

    assert (report.receipts, report.duplicates, report.failed) == (2, 0, 0)
    rows = [reminder(good), reminder(bad)]
    assert [r.status for r in rows] == ["delivered", "undelivered"]
    assert "MK:0001" in (rows[1].error_message or "")
    assert all(r.history[-1].source == "aliyun-mns" for r in rows)
    assert mns.pending(REPORTS) == 0 and mns.deletes() == [204, 204]
    lengths = [len(r.history) for r in rows]

    for payload in reports:  # Alibaba does not promise once: the same receipts again
        mns.put_json(REPORTS, payload)
    again = run_job(app_ctx)

    assert (again.receipts, again.duplicates) == (0, 2)
    db.session.expire_all()
    assert [len(reminder(m).history) for m in (good, bad)] == lengths
    assert mns.pending(REPORTS) == 0


# -- replies ------------------------------------------------------------------------------------


def test_a_red_reply_by_queue_reaches_the_inbox_is_answered_and_pages(
    app_ctx: Flask, mns: FakeMns
) -> None:
    p = patient("JSCH-061")
    add_rota()
    mns.put_reply(UPS, p.phone_e164, RED_TEXT, local_now())
    mns.put_reply(UPS, p.phone_e164, "好的", local_now())

    report = run_job(app_ctx)

    assert (report.replies, report.failed, report.malformed) == (2, 0, 0)
    red, fine = inbound_rows()
    assert (red.patient_id, red.priority, red.status, red.body) == (
        p.id,
        "red",
        "processed",
        RED_TEXT,
    )
    assert fine.priority != "red"
    [alert] = [a for a in alerts() if a.level == "red"]
    assert alert.patient_id == p.id and alert.status == "open"
    first = inbox.open_items(patient_id=p.id)[0]  # the triage inbox: most urgent first
    assert first.alert.id == alert.id and first.category == inbox.category_of(alert)
    answers = [m.body or "" for m in outbox("reply") if red.sid in (m.dedupe_key or "")]
    assert len(answers) == 1 and "120" in answers[0] and "急诊" in answers[0], answers
    assert outbox("page"), "the on-call clinician is paged"
    assert mns.pending(UPS) == 0


def test_a_reply_seen_by_queue_and_again_is_stored_once(app_ctx: Flask, mns: FakeMns) -> None:
    p = patient("JSCH-062")
    add_rota()
    sent_at = local_now()
    mns.put_reply(UPS, p.phone_e164, RED_TEXT, sent_at)
    run_job(app_ctx)
    mns.put_reply(UPS, p.phone_e164, RED_TEXT, sent_at)  # the same SmsUp delivered twice

    again = run_job(app_ctx)

    assert (again.replies, again.duplicates) == (0, 1)
    assert len(inbound_rows()) == 1
    assert len([a for a in alerts() if a.level == "red"]) == 1
    assert len([m for m in outbox("reply") if "120" in (m.body or "")]) == 1


def test_smsup_time_in_the_compact_form_is_read_as_china_time(app_ctx: Flask) -> None:
    [reply] = provider_replies.parse_aliyun(
        [{"phone_number": "13800138000", "content": "好", "send_time": "20260304090000"}]
    )
    assert reply.at == utcnow()  # FIXED_NOW is 09:00 in Nanjing


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth,key_id,secret,code",
    [
        ("token", KEY_ID, "not-the-secret", "SignatureDoesNotMatch"),  # at QueryTokenForMnsQueue
        ("token", "LTAIother", KEY_SECRET, "InvalidAccessKeyId"),
        ("key", KEY_ID, "not-the-secret", "SignatureDoesNotMatch"),  # at MNS itself
        ("key", "LTAIother", KEY_SECRET, "InvalidAccessKeyId"),
    ],
)
def test_a_wrong_key_is_refused_and_reported_clearly(
    app_ctx: Flask,
    mns: FakeMns,
    caplog: pytest.LogCaptureFixture,
    auth: str,
    key_id: str,
    secret: str,
    code: str,
) -> None:
    p = patient("JSCH-063")
    mns.put_reply(UPS, p.phone_e164, "好的", local_now())
    app_ctx.config.update(
        ALIYUN_MNS_AUTH=auth, ALIYUN_MNS_ACCESS_KEY_ID=key_id, ALIYUN_MNS_ACCESS_KEY_SECRET=secret
    )

    with caplog.at_level(logging.ERROR, logger="cadence.provider_queue"):
        report = run_job(app_ctx)

    assert len(report.errors) == 2  # both queues refused
    assert all("refused the credentials" in e and code in e for e in report.errors)
    assert any("ALIYUN_MNS_ACCESS_KEY_ID" in r.getMessage() for r in caplog.records)
    assert {status for _, _, status in mns.requests} == {403}
    assert mns.tokens == {}
    assert inbound_rows() == [] and mns.pending(UPS) == 1


def test_a_revoked_token_is_reported_then_replaced(app_ctx: Flask, mns: FakeMns) -> None:
    p = patient("JSCH-067")
    run_job(app_ctx)  # tokens for both queues
    mns.revoke_tokens()
    mns.put_reply(UPS, p.phone_e164, "好的", local_now())

    refused = run_job(app_ctx)
    again = run_job(app_ctx)

    assert len(refused.errors) == 2 and refused.replies == 0
    assert (again.errors, again.replies) == ([], 1)
    assert sorted(mns.token_requests) == sorted([("SmsReport", REPORTS), ("SmsUp", UPS)] * 2)


@pytest.mark.parametrize("kind", ["reply", "report"])
def test_a_crash_before_commit_leaves_the_message_for_one_redelivery(
    app_ctx: Flask, mns: FakeMns, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    p = patient("JSCH-064")
    add_rota()
    if kind == "reply":
        mns.put_reply(UPS, p.phone_e164, RED_TEXT, local_now())
        target, name = replies, "store"
    else:
        with FakeAliyun() as aliyun:
            [sent] = sent_through_fake_aliyun(aliyun, 1)
            mns.put_json(REPORTS, aliyun.report_payload(sent))
        target, name = provider_receipts, "apply_status_callback"
    real = getattr(target, name)
    calls = []

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("connection lost"))
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, crash_once)

    first = run_job(app_ctx)
    assert first.failed == 1 and mns.deletes() == []
    assert run_job(app_ctx).failed == 0  # invisible until the visibility timeout
    mns.advance(31)
    second = run_job(app_ctx)

    assert second.failed == 0 and mns.deletes() == [204]
    assert mns.pending(UPS) == mns.pending(REPORTS) == 0
    if kind == "reply":
        assert second.replies == 1 and len(inbound_rows()) == 1
        assert len([a for a in alerts() if a.level == "red"]) == 1
        assert len([m for m in outbox("reply") if "120" in (m.body or "")]) == 1
    else:
        assert second.receipts == 1 and reminder(sent).status == "delivered"


def test_a_lost_delete_brings_the_message_back_as_a_duplicate(app_ctx: Flask, mns: FakeMns) -> None:
    p = patient("JSCH-065")
    add_rota()
    mns.put_reply(UPS, p.phone_e164, RED_TEXT, local_now())
    mns.fail_deletes(1)

    first = run_job(app_ctx)
    mns.advance(31)
    second = run_job(app_ctx)

    assert (first.replies, second.replies, second.duplicates) == (1, 0, 1)
    assert mns.deletes() == [500, 204] and mns.pending(UPS) == 0
    assert len(inbound_rows()) == 1
    assert len([a for a in alerts() if a.level == "red"]) == 1
    assert len([m for m in outbox("reply") if "120" in (m.body or "")]) == 1


def test_malformed_messages_are_audited_masked_and_deleted(
    app_ctx: Flask, mns: FakeMns, caplog: pytest.LogCaptureFixture
) -> None:
    p = patient("JSCH-066")
    mns.put_raw(UPS, "this is %% not base64")
    mns.put_json(
        UPS, {"phone_number": "13800138000", "content": "我发烧了", "send_time": "yesterday"}
    )
    mns.put_json(REPORTS, {"biz_id": "123", "success": "yes"})
    mns.put_reply(UPS, p.phone_e164, "好的", local_now())  # a good one behind them

    with caplog.at_level(logging.WARNING, logger="cadence.provider_queue"):
        report = run_job(app_ctx)

    assert (report.malformed, report.replies, report.failed) == (3, 1, 0)
    assert mns.pending(UPS) == mns.pending(REPORTS) == 0
    entries = list(
        db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == provider_queue.MALFORMED_ACTION)
        )
    )
    assert len(entries) == 3
    assert {e.after["queue"] for e in entries} == {UPS, REPORTS}
    bodies = " ".join(e.after["body"] for e in entries)
    assert "我发烧了" in bodies and "13800138000" not in bodies and "138****8000" in bodies
    assert any("time" in (e.reason or "") for e in entries)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "malformed" in logged and "我发烧了" not in logged and "13800138000" not in logged
    assert len(inbound_rows()) == 1


def test_the_jobs_process_refuses_half_configured_queue_mode(database_url: str) -> None:
    env = subprocess_env(database_url, None, ALIYUN_MNS_REPLY_QUEUE=UPS, ALIYUN_MNS_ENDPOINT="")

    result = subprocess.run(
        [sys.executable, "-m", "jobs", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 78, result.stderr
    assert "refusing to start: ALIYUN_MNS_ENDPOINT is not set" in result.stderr


def test_the_jobs_process_reads_the_queues_and_sends_the_red_answer(
    app_ctx: Flask, mns: FakeMns, database_url: str
) -> None:
    p = patient("JSCH-068")
    add_rota()
    phone = p.phone_e164
    mns.put_reply(UPS, phone, RED_TEXT, local_now())
    db.session.commit()
    with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as twilio:
        settings = {key: str(app_ctx.config[key]) for key in MNS_KEYS}
        env = subprocess_env(database_url, twilio, SMS_PULL_SECONDS="0", **settings)

        result = subprocess.run(
            [sys.executable, "-m", "jobs", "--once"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        sent = twilio.messages

    assert result.returncode == 0, result.stderr[-2000:]
    assert mns.pending(UPS) == 0 and ("SmsUp", UPS) in mns.token_requests
    [row] = inbound_rows()
    assert row.priority == "red"
    answers = [m.body for m in sent if m.to == phone and "120" in m.body]
    assert len(answers) == 1 and "急诊" in answers[0]
