"""Caregivers and contacts (issue 14): consent gating, attribution of replies, shared phones,
fallback to the next contact, the CLI commands."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from app.clock import FrozenClock
from app.extensions import db
from app.models import Alert, AuditEntry, Contact, InboundMessage, OutboxMessage, Patient
from app.services.conversations.inbound.replies import receive
from app.services.demo import load_demo_data
from app.services.messaging import reminders
from app.services.messaging.dispatch import Dispatcher, DispatchSettings
from app.services.messaging.fallback import plan_fallbacks
from app.services.messaging.recipients import contact_block
from app.services.messaging.status_callbacks import apply_status_callback
from app.services.schedule import contacts as contact_service
from app.services.schedule.contacts import ConsentInput, ContactError, ContactInput
from app.sms import ConsoleGateway, SentMessage, TerminalSmsError
from tests.integration.sms_support import add_due_messages, enrol

START = date(2026, 3, 10)
NOW = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)  # FIXED_NOW
DAUGHTER = "+8613900139001"
SPOUSE_PHONE = "+8613900139002"
ALL = ("sms_reminders", "checkins", "sensitive_health")

_sids = iter(range(10**9))


def inbound(sender: str, body: str, at: datetime = NOW) -> InboundMessage:
    """Receive one SMS as the webhook does; the stored row."""
    result = receive({"MessageSid": f"SMT{next(_sids):030d}", "From": sender, "Body": body}, at)
    row = db.session.get(InboundMessage, result.message_id, populate_existing=True)
    assert row is not None
    return row


def add_daughter(
    patient: Patient,
    *,
    messages: tuple[str, ...] = ("reminders", "checkins", "replies"),
    scopes: tuple[str, ...] = ALL,
    locale: str = "zh",
) -> Contact:
    """A daughter 王芳 with her own consent, after the patient in the fallback order."""
    contact = contact_service.add_contact(
        patient,
        ContactInput(
            relation="daughter", phone=DAUGHTER, name="王芳", locale=locale, messages=messages
        ),
        actor="user:nurse1",
        now=NOW,
    )
    contact_service.record_consent(
        contact,
        ConsentInput(recorded_on=date(2026, 3, 1), method="paper", scopes=scopes),
        actor="user:nurse1",
        now=NOW,
        today=date(2026, 3, 4),
    )
    db.session.commit()
    return contact


def own_contact(patient: Patient) -> Contact:
    return next(c for c in contact_service.contacts_of(patient) if c.relation == "self")


def planned(patient: Patient) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.patient_id == patient.id, OutboxMessage.status == "planned")
            .execution_options(populate_existing=True)
        )
    )


def run_dispatch(gateway: ConsoleGateway, at: datetime, clock: FrozenClock | None = None) -> None:
    """Send what is due at ``at`` (the app clock set there when given)."""
    if clock is not None:
        clock.set(at)
    Dispatcher(gateway, DispatchSettings(quiet_hours=None), actor="test").run(at)


def run_days(gateway: ConsoleGateway, clock: FrozenClock, first: date, days: int) -> None:
    """Dispatch every six hours for ``days`` days from ``first`` (00:00 UTC)."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    for hour in range(0, 24 * days, 6):
        run_dispatch(gateway, start + timedelta(hours=hour), clock)


# -- enrolment and consent ---------------------------------------------------------------------


def test_enrolment_makes_the_patients_phone_a_self_contact_with_consent(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    [contact] = contact_service.contacts_of(patient)
    assert (contact.relation, contact.phone_e164, contact.position) == (
        "self",
        patient.phone_e164,
        0,
    )
    assert contact.scopes_in_force() == set(ALL)
    assert {r.contact_id for r in planned(patient)} == {contact.id}


def test_bad_contact_and_consent_input_is_refused_field_by_field(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    with pytest.raises(ContactError) as bad:
        contact_service.add_contact(
            patient,
            ContactInput(relation="cousin", phone="12", locale="fr", messages=("spam",)),
            actor="user:nurse1",
            now=NOW,
        )
    assert set(bad.value.errors) == {"relation", "phone", "locale", "messages"}
    contact = own_contact(patient)
    with pytest.raises(ContactError) as no_witness:
        contact_service.record_consent(
            contact,
            ConsentInput(date(2026, 3, 5), "verbal_witness", ()),
            actor="user:nurse1",
            now=NOW,
            today=date(2026, 3, 4),
        )
    assert set(no_witness.value.errors) == {"witness", "scopes", "recorded_on"}


def test_a_contact_without_consent_for_checkins_gets_reminders_only(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    daughter = add_daughter(patient, scopes=("sms_reminders",))
    assert contact_block(daughter, "reminder") is None
    assert contact_block(daughter, "checkin") == "no_consent"


def test_a_withdrawn_consent_stops_exactly_that_contacts_messages(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    patient = enrol(start=START)
    daughter = add_daughter(patient)
    own = own_contact(patient)
    assert {r.contact_id for r in planned(patient)} == {own.id}
    [consent] = [c for c in own.consents if c.withdrawn_at is None]

    contact_service.withdraw_consent(
        consent, method="paper", reason="the patient signed the withdrawal form",
        actor="user:nurse1", now=NOW,
    )  # fmt: skip
    db.session.commit()

    # The patient's reminders now go to the daughter, nothing to the patient's own phone.
    assert planned(patient) and {r.contact_id for r in planned(patient)} == {daughter.id}
    gateway = ConsoleGateway()
    run_days(gateway, clock, date(2026, 3, 4), 8)
    sent_to = Counter(m.to for m in gateway.sent)
    assert sent_to[patient.phone_e164] == 0
    assert sent_to[DAUGHTER] > 0
    actions = [a.action for a in db.session.scalars(select(AuditEntry))]
    assert "contact.consent_withdrawn" in actions


def test_a_row_planned_before_a_withdrawal_is_blocked_at_send_time(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    own = own_contact(patient)
    for consent in own.consents:  # withdrawn behind the planner's back: dispatch must refuse
        consent.withdrawn_at = NOW
    db.session.commit()
    gateway = ConsoleGateway()

    report = Dispatcher(gateway, DispatchSettings(quiet_hours=None), actor="test").run(
        datetime(2026, 3, 12, 0, tzinfo=UTC)
    )

    assert report.sent == 0 and report.blocked > 0
    assert gateway.sent == []


# -- replies from a contact --------------------------------------------------------------------


def test_a_caregivers_reply_reaches_the_patient_with_the_right_priority(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    daughter = add_daughter(patient)

    row = inbound(DAUGHTER, "我爸今天发烧39.5度，还喘不上气")

    assert row.patient_id == patient.id and row.contact_id == daughter.id
    assert row.priority == "red"
    assert row.parse is not None
    assert row.parse["sender"]["relation"] == "daughter"
    assert row.parse["sender"]["name"] == "王*"
    assert "from_contact:daughter" in row.parse["actions"]
    alert = db.session.scalar(select(Alert).where(Alert.inbound_message_id == row.id))
    assert alert is not None and alert.patient_id == patient.id and alert.level == "red"


def test_a_caregivers_green_report_is_green_for_the_patient(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    add_daughter(patient)

    row = inbound(DAUGHTER, "我妈今天挺好的，没有不舒服")

    assert row.patient_id == patient.id
    assert row.priority in ("green", "none")


def test_an_opt_out_from_a_caregiver_stops_that_contact_only(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    daughter = add_daughter(patient)
    own = own_contact(patient)

    row = inbound(DAUGHTER, "退订")

    db.session.refresh(daughter)
    db.session.refresh(own)
    db.session.refresh(patient)
    assert daughter.opted_out_at is not None
    assert own.opted_out_at is None and patient.sms_opted_out_at is None
    assert planned(patient)  # the patient's own reminders go on
    alert = db.session.scalar(select(Alert).where(Alert.inbound_message_id == row.id))
    assert alert is not None and alert.kind == "opt_out" and alert.patient_id == patient.id
    actions = {a.action for a in db.session.scalars(select(AuditEntry))}
    assert "contact.sms_opted_out" in actions


# -- a phone two patients share ----------------------------------------------------------------


def couple() -> tuple[Patient, Patient]:
    """Two patients; the wife's phone is also the husband's contact (a couple on one phone)."""
    wife = enrol("JSCH-201", start=START, phone=SPOUSE_PHONE)
    husband = enrol("JSCH-202", start=START)
    husband.initials = "ZM"
    contact_service.add_contact(
        husband,
        ContactInput(relation="spouse", phone=SPOUSE_PHONE, name="王丽"),
        actor="user:nurse1",
        now=NOW,
    )
    db.session.commit()
    return wife, husband


def test_a_shared_number_asks_which_patient_and_flags_it(app_ctx: Flask) -> None:
    couple()

    row = inbound(SPOUSE_PHONE, "今天有点恶心")

    assert row.patient_id is None
    assert "WL" in (row.reply_body or "") and "ZM" in (row.reply_body or "")
    alert = db.session.scalar(select(Alert).where(Alert.inbound_message_id == row.id))
    assert alert is not None and alert.level == "amber"
    assert any("shared phone: patients JSCH-201, JSCH-202" in r for r in alert.reasons)


def test_initials_in_the_message_resolve_a_shared_number(app_ctx: Flask) -> None:
    _, husband = couple()

    row = inbound(SPOUSE_PHONE, "ZM 今天有点恶心")

    assert row.patient_id == husband.id
    assert row.parse is not None
    assert "shared_phone_resolved_by:initials" in row.parse["actions"]


def test_the_latest_reminder_resolves_a_shared_number(app_ctx: Flask) -> None:
    _wife, husband = couple()
    reminder = planned(husband)[0]
    reminder.status, reminder.sent_to, reminder.sent_at = "delivered", SPOUSE_PHONE, NOW
    db.session.commit()

    row = inbound(SPOUSE_PHONE, "收到", at=NOW + timedelta(hours=1))

    assert row.patient_id == husband.id


# -- fallback ----------------------------------------------------------------------------------


def test_an_undelivered_reminder_falls_back_to_the_next_contact_once(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    patient = enrol(start=START)
    daughter = add_daughter(patient)
    gateway = ConsoleGateway()
    at = datetime(2026, 3, 9, 10, 30, tzinfo=UTC)
    run_dispatch(gateway, at, clock)
    first = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.status == "sent").order_by(OutboxMessage.id)
    ).first()
    assert first is not None and first.sent_to == patient.phone_e164
    apply_status_callback(first.provider_id or "", "undelivered", error_code=30003, at=at)

    reports = []
    for minutes in (1, 2, 500):
        clock.set(at + timedelta(minutes=minutes))
        reports.append(plan_fallbacks(at + timedelta(minutes=minutes), source="test"))
        run_dispatch(gateway, at + timedelta(minutes=minutes + 1), clock)

    assert [r.planned for r in reports].count(1) == 1
    copies = list(
        db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key == first.dedupe_key + ":fb")
        )
    )
    assert len(copies) == 1 and copies[0].contact_id == daughter.id
    to_daughter = [m for m in gateway.sent if m.to == DAUGHTER]
    assert [m.body for m in to_daughter].count(first.body) == 1


def test_a_reminder_without_receipt_falls_back_after_the_setting(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    patient = enrol(start=START)
    add_daughter(patient)
    gateway = ConsoleGateway()
    at = datetime(2026, 3, 9, 10, 30, tzinfo=UTC)
    run_dispatch(gateway, at, clock)

    early = plan_fallbacks(at + timedelta(minutes=30), source="test")
    late = plan_fallbacks(at + timedelta(minutes=121), source="test")
    run_dispatch(gateway, at + timedelta(minutes=122), clock)
    again = plan_fallbacks(at + timedelta(minutes=300), source="test")

    assert early.planned == 0 and late.planned >= 1 and again.planned == 0


def test_a_fallback_without_a_next_contact_plans_nothing(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    patient = enrol(start=START)
    gateway = ConsoleGateway()
    at = datetime(2026, 3, 9, 10, 30, tzinfo=UTC)
    run_dispatch(gateway, at, clock)

    report = plan_fallbacks(at + timedelta(minutes=130), source="test")

    assert report.planned == 0 and report.no_next_contact >= 1
    assert reminders.blocked_reason(patient) is None


def planned_with_daughter_first() -> tuple[Patient, Contact, Contact]:
    """A patient whose reminders go to the daughter first (own number: check-ins, replies), planned."""
    patient = enrol(start=START)
    daughter = add_daughter(patient)
    own = own_contact(patient)
    own.messages = ["checkins", "replies"]
    reminders.plan_patient(patient, now=NOW, source="test")
    db.session.commit()
    return patient, daughter, own


# -- exactly once with several contacts --------------------------------------------------------


def test_each_message_goes_out_once_with_several_contacts(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    patient = enrol(start=START)
    add_daughter(patient, messages=("checkins",))
    gateway = ConsoleGateway()
    for hour in range(0, 24 * 12, 6):  # two dispatchers' worth of runs over twelve days
        moment = datetime(2026, 3, 4, tzinfo=UTC) + timedelta(hours=hour)
        run_dispatch(gateway, moment, clock)
        run_dispatch(gateway, moment, clock)

    sent = list(
        db.session.scalars(select(OutboxMessage).where(OutboxMessage.provider_id.is_not(None)))
    )
    assert sent and len(gateway.sent) == len(sent)
    assert {m.to for m in gateway.sent} == {patient.phone_e164}


# -- command line ------------------------------------------------------------------------------


def test_contacts_list_prints_one_json_object_per_contact(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    add_daughter(patient)

    result = app_ctx.test_cli_runner().invoke(
        args=["contacts", "list", patient.study_id, "--format", "json"]
    )

    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["relation"] for r in rows] == ["self", "daughter"]
    assert set(rows[1]) >= {"study_id", "relation", "phone", "locale", "messages", "consents"}
    assert rows[1]["phone"] != DAUGHTER  # masked unless --full-numbers
    assert rows[1]["opted_out"] is False


def test_simulate_inbound_runs_the_webhook_path_and_prints_json(app_ctx: Flask) -> None:
    patient = enrol(start=START)
    add_daughter(patient)

    result = app_ctx.test_cli_runner().invoke(
        args=["sms", "simulate-inbound", "--from", DAUGHTER, "--body", "我爸发烧39.5度"]
    )

    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["patient"] == patient.study_id and out["contact"] == "daughter"
    assert out["priority"] in ("red", "amber") and out["reply"]
    assert "from_contact:daughter" in out["actions"]


def test_simulate_inbound_is_refused_in_production(app_ctx: Flask) -> None:
    app_ctx.config["CADENCE_ENV"] = "production"
    try:
        result = app_ctx.test_cli_runner().invoke(
            args=["sms", "simulate-inbound", "--from", DAUGHTER, "--body", "hi"]
        )
    finally:
        app_ctx.config["CADENCE_ENV"] = "test"
    assert result.exit_code != 0 and "production" in result.output
    assert db.session.scalar(select(InboundMessage.id)) is None


def test_the_demo_data_has_a_caregiver_and_a_shared_family_phone(app_ctx: Flask) -> None:
    load_demo_data(today=date(2026, 3, 4))
    load_demo_data(today=date(2026, 3, 4))  # twice: nothing added twice

    views = contact_service.list_contacts(None, full_phone=True)

    caregivers = [v for v in views if v.relation != "self"]
    assert {(v.study_id, v.relation) for v in caregivers} == {
        ("JSCH-001", "daughter"),
        ("JSCH-002", "spouse"),
    }
    by_phone = Counter(v.phone for v in views)
    assert by_phone["+8613800138003"] == 2  # JSCH-003's own phone and JSCH-002's spouse


def test_an_invalid_caregiver_number_marks_that_contact_only(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    patient, daughter, own = planned_with_daughter_first()
    gateway = ConsoleGateway()
    at = datetime(2026, 3, 9, 10, 30, tzinfo=UTC)
    run_dispatch(gateway, at, clock)
    sent = db.session.scalars(select(OutboxMessage).where(OutboxMessage.status == "sent")).first()
    assert sent is not None and sent.sent_to == DAUGHTER

    apply_status_callback(sent.provider_id or "", "undelivered", error_code=30006, at=at)

    db.session.refresh(daughter)
    db.session.refresh(patient)
    assert daughter.phone_status == "invalid"
    assert patient.phone_status == "ok" and patient.sms_opted_out_at is None
    assert contact_block(own, "checkin") is None


class _RefusesDaughter(ConsoleGateway):
    """A provider that refuses the daughter's number as invalid and sends the rest."""

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        reference: str | None = None,
    ) -> SentMessage:
        if to == DAUGHTER:
            raise TerminalSmsError("invalid number", reason="invalid_number", provider_code=1016)
        return super().send(to, body, status_callback=status_callback, reference=reference)


def test_a_send_refused_for_a_caregivers_number_marks_that_contact_only(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    patient, daughter, _own = planned_with_daughter_first()

    run_dispatch(_RefusesDaughter(), datetime(2026, 3, 9, 10, 30, tzinfo=UTC), clock)

    refused = db.session.scalars(select(OutboxMessage).where(OutboxMessage.status == "failed"))
    assert {(m.sent_to, m.error_reason) for m in refused} == {(DAUGHTER, "invalid_number")}
    db.session.refresh(daughter)
    db.session.refresh(patient)
    assert daughter.phone_status == "invalid"
    assert patient.phone_status == "ok" and patient.sms_opted_out_at is None


def test_the_claim_blocks_a_contact_by_the_kind_of_each_message(app_ctx: Flask) -> None:
    # the daughter chose check-ins only: a reminder to her is blocked, a check-in is not
    patient = enrol(start=START)
    daughter = add_daughter(patient, messages=("checkins",))
    due = NOW - timedelta(minutes=1)
    for message_id, kind in zip(add_due_messages(2, due=due), ("reminder", "checkin"), strict=True):
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(patient_id=patient.id, contact_id=daughter.id, kind=kind)
        )
    db.session.execute(
        OutboxMessage.__table__.update()
        .where(OutboxMessage.patient_id == patient.id, OutboxMessage.contact_id.is_(None))
        .values(status="cancelled")
    )
    db.session.commit()
    dispatcher = Dispatcher(ConsoleGateway(), DispatchSettings(workers=1), name="kind-test")

    claimed = dispatcher.claim(NOW, 10)

    blocked = {db.session.get(OutboxMessage, one.id).kind: one.blocked for one in claimed}
    assert blocked == {"reminder": "not_chosen", "checkin": None}
