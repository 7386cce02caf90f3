"""An unanswered check-in is offered to the caregiver allowed to get check-ins (issue 14 §4):
once, after the patient's window (the reminder moment), in the caregiver's language, and the
caregiver's answers reach the patient's check-in."""

from __future__ import annotations

from datetime import date

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Contact, Patient
from app.services.conversations.checkins import schedule as schedule
from app.services.conversations.inbound.replies import receive
from app.services.schedule import contacts as contact_service
from app.services.schedule.contacts import ConsentInput, ContactInput
from tests.checkins.conftest import (
    checkin_events,
    checkin_messages,
    days,
    enrol,
    fresh,
    local,
    mark_checkin_messages_sent,
)

DAUGHTER = "+8613900139001"
ALL = ("sms_reminders", "checkins", "sensitive_health")


def add_caregiver(
    patient: Patient,
    *,
    messages: tuple[str, ...] = ("reminders", "checkins", "replies"),
    scopes: tuple[str, ...] = ALL,
    locale: str = "en",
    phone: str = DAUGHTER,
) -> Contact:
    contact = contact_service.add_contact(
        patient,
        ContactInput(relation="daughter", phone=phone, name="王芳", locale=locale,
                     messages=messages),
        actor="user:nurse1",
        now=local(date(2026, 3, 4), 9),
    )  # fmt: skip
    contact_service.record_consent(
        contact,
        ConsentInput(recorded_on=date(2026, 3, 1), method="paper", scopes=scopes),
        actor="user:nurse1",
        now=local(date(2026, 3, 4), 9),
        today=date(2026, 3, 4),
    )
    db.session.commit()
    return contact


def _issue(patient: Patient):
    sent = local(checkin_events(patient)[0].date, 10, 0)
    (session,) = schedule.start_due(sent)
    mark_checkin_messages_sent(sent)
    return session, sent


def test_the_unanswered_check_in_is_offered_once_to_the_caregiver(app_ctx: Flask) -> None:
    patient = enrol()
    daughter = add_caregiver(patient)
    session, sent = _issue(patient)
    [first] = checkin_messages(session)
    own = next(c for c in contact_service.contacts_of(patient) if c.relation == "self")
    assert first.contact_id == own.id  # the patient is asked first

    assert schedule.remind_due(sent + days(1)) == 1
    assert schedule.remind_due(sent + days(1.5)) == 0
    rows = {row.dedupe_key.rsplit(":", 1)[1]: row for row in checkin_messages(session)}
    assert set(rows) == {"start", "reminder", "caregiver"}
    offer = rows["caregiver"]
    assert (offer.contact_id, offer.locale) == (daughter.id, "en")
    assert rows["reminder"].contact_id == own.id
    assert "WL has not answered the symptom check-in" in offer.body and "/c/" in offer.body
    for word in ("sintilimab", "docetaxel", "cancer", "信迪利"):
        assert word not in offer.body.lower()
    [entry] = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "checkin.offered_to_contact")
    ).all()
    assert entry.after == {"contact_id": daughter.id, "relation": "daughter"}

    # The caregiver answers from her own number: the answer reaches the patient's check-in.
    at = sent + days(1.1)
    receive({"MessageSid": "SMcaregiver0001", "From": DAUGHTER, "Body": "1"}, at)
    assert fresh(session).answers


def test_no_offer_to_a_caregiver_without_check_in_consent_or_choice(app_ctx: Flask) -> None:
    patient = enrol()
    add_caregiver(patient, scopes=("sms_reminders",))
    second = enrol("JSCH-102")
    add_caregiver(second, messages=("reminders",), phone="+8613900139002")
    sent = local(checkin_events(patient)[0].date, 10, 0)
    sessions = schedule.start_due(sent)
    assert len(sessions) == 2
    mark_checkin_messages_sent(sent)
    assert schedule.remind_due(sent + days(1)) == 2
    for session in sessions:
        kinds = [row.dedupe_key.rsplit(":", 1)[1] for row in checkin_messages(session)]
        assert kinds == ["start", "reminder"]


def test_no_offer_when_the_caregiver_was_asked_first(app_ctx: Flask) -> None:
    patient = enrol()
    own = contact_service.contacts_of(patient)[0]
    contact_service.update_contact(
        own,
        ContactInput(relation="self", phone=own.phone_e164, name=own.name, messages=("reminders",)),
        actor="user:nurse1",
        now=local(date(2026, 3, 4), 9),
        reason="the patient does not read SMS questions",
    )  # the patient's own phone gets no check-ins
    daughter = add_caregiver(patient)
    session, sent = _issue(patient)
    schedule.remind_due(sent + days(1))
    rows = checkin_messages(session)
    assert [row.dedupe_key.rsplit(":", 1)[1] for row in rows] == ["start", "reminder"]
    assert {row.contact_id for row in rows} == {daughter.id}
