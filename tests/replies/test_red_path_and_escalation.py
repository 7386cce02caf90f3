"""Red flags end to end (reply, alert, page through the outbox and the fake Twilio server) and
escalation with a fixed clock (both databases)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.clock import utcnow
from app.extensions import db
from app.models import Alert, AuditEntry, OutboxMessage
from app.services.alerts import alerts as alert_service
from app.services.alerts.escalation import escalate_due
from app.services.conversations.inbound.replies import receive
from app.services.messaging.dispatch import Dispatcher, DispatchSettings
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.sms_support import (
    fake_fixture,  # noqa: F401  (the `fake` fixture)
    gateway_for,
    names_no_drug_or_diagnosis,
)
from tests.replies.conftest import (
    CLINICIAN_PHONE,
    INVESTIGATOR_PHONE,
    MONDAY_10,
    NURSE_PHONE,
    add_rota,
    alerts,
    inbound_form,
    later,
    patient,
    post_inbound,
    twiml_message,
)

FAST = DispatchSettings(
    batch_size=10,
    workers=2,
    lease=timedelta(minutes=2),
    min_lease_left=timedelta(seconds=5),
    retry_base=timedelta(0),
    retry_cap=timedelta(0),
    settle=timedelta(0),
)


def pages() -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "page")
            .order_by(OutboxMessage.id)
            .execution_options(populate_existing=True)
        )
    )


def dispatch(fake: FakeTwilio, now: datetime) -> None:
    Dispatcher(gateway_for(fake), FAST, actor="test").run(now)


# -- the red path --------------------------------------------------------------------------------


def test_a_red_flag_in_chinese_end_to_end(client: FlaskClient, fake: FakeTwilio) -> None:
    p = patient("JSCH-042", locale="zh")
    add_rota()
    response = post_inbound(client, inbound_form(p.phone_e164, "今天发烧39度，还拉了好几次"))
    text = twiml_message(response)
    assert "120" in text and "急诊" in text and "已通知" in text
    (alert,) = alerts()
    assert (alert.level, alert.kind, alert.patient_id, alert.status) == (
        "red",
        "symptom",
        p.id,
        "open",
    )
    assert any("temperature_high" in r for r in alert.reasons)
    (page,) = pages()
    assert page.patient_id is None and page.recipient == CLINICIAN_PHONE
    assert page.status == "planned"
    dispatch(fake, utcnow())
    (page,) = pages()
    assert page.status in ("queued", "sent", "delivered") and page.provider_id
    (sent,) = fake.bodies_for(CLINICIAN_PHONE)
    assert "JSCH-042" in sent and "发热" in sent and "39.0" in sent
    assert p.initials not in sent and names_no_drug_or_diagnosis(sent)
    assert fake.bodies_for(p.phone_e164) == []  # the patient got the TwiML answer, no extra SMS
    dispatch(fake, utcnow() + timedelta(minutes=1))
    assert len(fake.bodies_for(CLINICIAN_PHONE)) == 1  # exactly once


def test_a_red_flag_in_english_gets_an_english_answer(client: FlaskClient) -> None:
    p = patient(locale="en")
    add_rota()
    text = twiml_message(post_inbound(client, inbound_form(p.phone_e164, "I have chest pain")))
    assert text.endswith("We have told your care team.")
    assert "Call 120 or go to the nearest emergency department now" in text
    assert [a.level for a in alerts()] == ["red"]
    assert [m.recipient for m in pages()] == [CLINICIAN_PHONE]


def test_red_flags_are_never_missed_whatever_the_intent(app_ctx: Flask) -> None:
    p = patient(locale="zh")
    add_rota()
    for body in ("1 但是吐血了", "改期，我拉黑便", "TD 胸痛", "喝水都咽不下去", "晕倒了"):
        result = receive(inbound_form(p.phone_e164, body), MONDAY_10)
        assert result.priority == "red", body
        assert "120" in (result.reply or ""), body
    assert [a.level for a in alerts()] == ["red"] * 5
    assert len(pages()) == 5


def test_a_red_flag_from_an_unknown_number_pages_without_naming_anyone(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    patient("JSCH-001")
    add_rota()
    result = receive(inbound_form("+8613911112222", "我爸爸胸痛"), MONDAY_10)
    assert "120" in (result.reply or "") and "JSCH" not in (result.reply or "")
    (alert,) = alerts()
    assert (alert.level, alert.kind, alert.patient_id) == ("red", "review", None)
    dispatch(fake, later(1))
    (sent,) = fake.bodies_for(CLINICIAN_PHONE)
    assert "2222" in sent and "JSCH" not in sent


def test_nobody_on_call_falls_back_to_the_configured_number(app_ctx: Flask) -> None:
    p = patient()
    app_ctx.config["ESCALATION_FALLBACK_PHONE"] = "+8613955556666"
    try:
        receive(inbound_form(p.phone_e164, "胸痛"), MONDAY_10)
    finally:
        app_ctx.config["ESCALATION_FALLBACK_PHONE"] = None
    assert [m.recipient for m in pages()] == ["+8613955556666"]


def test_an_opted_out_patient_is_still_triaged_and_the_page_still_goes(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    p = patient()
    add_rota()
    receive(inbound_form(p.phone_e164, "TD"), MONDAY_10)
    result = receive(inbound_form(p.phone_e164, "胸痛"), MONDAY_10)
    assert result.priority == "red"
    dispatch(fake, later(1))
    assert len(fake.bodies_for(CLINICIAN_PHONE)) == 1
    assert fake.bodies_for(p.phone_e164) == []


# -- escalation ----------------------------------------------------------------------------------


def test_an_unacknowledged_red_alert_pages_the_investigator_every_15_minutes(
    app_ctx: Flask, fake: FakeTwilio
) -> None:
    p = patient("JSCH-009", locale="zh")
    add_rota()
    receive(inbound_form(p.phone_e164, "胸口痛"), MONDAY_10)
    assert escalate_due(later(14)).escalated == 0
    first = escalate_due(later(15))
    assert (first.escalated, first.pages) == (1, 1)
    assert escalate_due(later(16)).escalated == 0
    assert escalate_due(later(30)).escalated == 1
    assert [m.recipient for m in pages()] == [
        CLINICIAN_PHONE,
        INVESTIGATOR_PHONE,
        INVESTIGATOR_PHONE,
    ]
    dispatch(fake, later(31))
    escalations = fake.bodies_for(INVESTIGATOR_PHONE)
    assert len(escalations) == 2 and all("JSCH-009" in b for b in escalations)
    # The investigator reads English; the two pages may arrive in either order.
    assert sorted("after 15 min" in b for b in escalations) == [False, True]
    assert any("not acknowledged after 30 min" in b for b in escalations)

    alert = alert_service.acknowledge(alerts()[0].id, actor="user:dr.li", now=later(37))
    assert alert.time_to_acknowledge_seconds == 37 * 60
    assert alert.time_to_acknowledge == timedelta(minutes=37)
    assert escalate_due(later(45)).escalated == 0
    assert escalate_due(later(120)).escalated == 0
    assert len(pages()) == 3
    actions = [a.action for a in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions.count("alert.escalate") == 2 and "alert.acknowledge" in actions


def test_an_amber_alert_reminds_the_nurse_on_call_after_4_hours_of_cover(app_ctx: Flask) -> None:
    p = patient(locale="zh")
    add_rota()  # a nurse on call around the clock, every day
    friday_16 = datetime(2026, 3, 6, 8, 0, tzinfo=UTC)  # Friday 16:00 in Nanjing
    receive(inbound_form(p.phone_e164, "今天拉了五次"), friday_16)
    (alert,) = alerts()
    friday_20 = friday_16 + timedelta(hours=4)  # no longer Monday 11:00 (working hours)
    assert alert.next_escalation_at == friday_20
    assert escalate_due(friday_20 - timedelta(minutes=1)).escalated == 0
    assert escalate_due(friday_20).escalated == 1
    assert [m.recipient for m in pages()] == [NURSE_PHONE]
    assert escalate_due(friday_20 + timedelta(hours=3)).escalated == 0
    assert escalate_due(friday_20 + timedelta(hours=4)).escalated == 1  # Saturday 00:00


def test_green_notes_never_escalate(app_ctx: Flask) -> None:
    p = patient()
    add_rota()
    receive(inbound_form(p.phone_e164, "有点累"), MONDAY_10)
    assert escalate_due(later(60 * 24 * 7)).escalated == 0
    assert pages() == []


def test_an_escalation_step_is_taken_once_even_if_two_processes_race(app_ctx: Flask) -> None:
    p = patient()
    add_rota()
    receive(inbound_form(p.phone_e164, "胸痛"), MONDAY_10)
    alert = alerts()[0]
    assert escalate_due(later(15)).escalated == 1
    # A second process that read the alert before the first one's step finds it taken.
    from app.services.alerts.escalation import EscalationReport, _escalate_one

    report = EscalationReport()
    _escalate_one(alert.id, 0, later(15), "job:other", report)
    assert (report.escalated, report.lost) == (0, 1)
    assert len(pages()) == 2 and alerts()[0].escalation_count == 1


def test_the_escalation_job_runs_in_the_scheduler_process(app_ctx: Flask) -> None:
    from jobs import escalation
    from jobs.schedule import job_specs

    spec = {s.id: s for s in job_specs(app_ctx.config)}["alert-escalation"]
    assert spec.func is escalation.run and spec.run_at_start
    p = patient()
    add_rota()
    old = utcnow() - timedelta(hours=1)
    receive(inbound_form(p.phone_e164, "胸痛"), old)
    escalation.run(app_ctx, threading.Event())
    assert alerts()[0].escalation_count == 1
    assert [m.recipient for m in pages()] == [CLINICIAN_PHONE, INVESTIGATOR_PHONE]


def test_unresolved_counts_and_urgent_badge(app_ctx: Flask) -> None:
    p = patient()
    add_rota()
    receive(inbound_form(p.phone_e164, "胸痛"), MONDAY_10)
    receive(inbound_form(p.phone_e164, "今天拉了五次"), MONDAY_10)
    receive(inbound_form(p.phone_e164, "有点累"), MONDAY_10)
    counts = alert_service.unresolved_counts()
    assert (counts["red"], counts["amber"], counts["green"], counts["total"]) == (1, 1, 1, 3)
    assert alert_service.open_urgent_count() == 2
    ordered = [a.level for a in alert_service.unresolved()]
    assert ordered == ["red", "amber", "green"]
    assert isinstance(alerts()[0], Alert)


def test_with_page_now_the_page_leaves_at_once_without_waiting_for_the_job(
    client: FlaskClient, fake: FakeTwilio
) -> None:
    import time

    p = patient(locale="en")
    add_rota()
    app = client.application
    app.config["ESCALATION_PAGE_NOW"] = True
    app.extensions["cadence.sms_gateway"] = gateway_for(fake, timeout=2)
    try:
        post_inbound(client, inbound_form(p.phone_e164, "I vomited blood"))
        deadline = time.monotonic() + 10
        while not fake.bodies_for(CLINICIAN_PHONE) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        app.config["ESCALATION_PAGE_NOW"] = False
        app.extensions.pop("cadence.sms_gateway", None)
    (sent,) = fake.bodies_for(CLINICIAN_PHONE)
    assert "JSCH-001" in sent
    deadline = time.monotonic() + 10
    while pages()[0].status == "claimed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pages()[0].status in ("queued", "sent", "delivered")


def test_page_now_hands_every_page_to_one_sender_thread_per_process(
    client: FlaskClient, fake: FakeTwilio
) -> None:
    import time

    first, second = patient(locale="en"), patient("JSCH-002", locale="en", phone="13800138001")
    add_rota()
    app = client.application
    app.config["ESCALATION_PAGE_NOW"] = True
    app.extensions["cadence.sms_gateway"] = gateway_for(fake, timeout=2)
    try:
        post_inbound(client, inbound_form(first.phone_e164, "I vomited blood"))
        post_inbound(client, inbound_form(second.phone_e164, "I vomited blood"))
        deadline = time.monotonic() + 10
        while len(fake.bodies_for(CLINICIAN_PHONE)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        senders = [t for t in threading.enumerate() if t.name == "page-now"]
    finally:
        app.config["ESCALATION_PAGE_NOW"] = False
        app.extensions.pop("cadence.sms_gateway", None)
    sent = fake.bodies_for(CLINICIAN_PHONE)
    assert len(sent) == 2
    assert any("JSCH-001" in body for body in sent) and any("JSCH-002" in body for body in sent)
    assert len(senders) == 1  # the second red woke the same thread: no thread per page
