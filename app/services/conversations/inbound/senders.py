"""Who sent an inbound SMS: the patient it is about, and which of the patient's contacts sent it.

A number is looked up among the patients' contacts (their own phones and caregivers') and the
patients' own numbers (patients without contact rows). A number several patients share (a
couple on one phone) is resolved, in order, by the initials written in the message, the one
open SMS check-in, or the most recent message we sent to that number (7 days); otherwise the
match is ambiguous: the caller asks which patient (by initials) and flags it for a nurse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import phonenumbers
from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import and_, bindparam, select, union_all

from app.extensions import db
from app.models import Contact, OutboxMessage, Patient
from app.models.messages import ACCEPTED_STATUSES, HANDED_OVER_STATUSES
from app.services.conversations.checkins.by_sms import LOOK_UP, OPEN_SESSION_ID_OF_PATIENT
from app.services.schedule.contacts import mask_name

RECENT_MESSAGE_LOOKBACK = timedelta(days=7)
REMINDER_LOOKBACK = timedelta(days=7)
REMINDER_KINDS = ("reminder", "moved")
OFF_STUDY = ("withdrawn", "off_study")

LATEST_REMINDER_KEYS_OF_PATIENT = (
    select(OutboxMessage.event_keys)
    .where(
        OutboxMessage.patient_id == Patient.id,
        OutboxMessage.kind.in_(REMINDER_KINDS),
        OutboxMessage.status.in_(HANDED_OVER_STATUSES),
        OutboxMessage.sent_at >= bindparam("p_since", type_=OutboxMessage.sent_at.type),
    )
    .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
    .limit(1)
    .correlate(Patient)
    .scalar_subquery()
)
"""The event keys of the last reminder handed to the provider for the patient (7 days; bind
``p_since``), correlated to a query on Patient: read with the sender in one statement."""

_NUMBER = bindparam("p_number")
_PATIENTS_OF_NUMBER = union_all(
    select(Contact.patient_id).where(Contact.phone_e164 == _NUMBER),
    select(Patient.id).where(Patient.phone_e164 == _NUMBER),
)
_CANDIDATES = (
    select(Patient, Contact, OPEN_SESSION_ID_OF_PATIENT, LATEST_REMINDER_KEYS_OF_PATIENT)
    .outerjoin(Contact, and_(Contact.patient_id == Patient.id, Contact.phone_e164 == _NUMBER))
    .where(Patient.id.in_(_PATIENTS_OF_NUMBER))
    .order_by(Contact.id.is_(None), Contact.position, Contact.id, Patient.id)
    .limit(20)
)
"""Every patient the number belongs to (through a contact's number or the patient's own), one
statement: a row per matching contact, or one row without a contact when only the patient's
own number matches; contacts first, by position."""


@dataclass(frozen=True)
class Candidate:
    """One patient a number belongs to, through which contact, with the open check-in's id and
    the event keys of the last reminder sent (None: no reminder in the last 7 days)."""

    patient: Patient
    contact: Contact | None
    open_checkin: int | None
    reminder_keys: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SenderMatch:
    """The patient a message is about (None: unknown or ambiguous) and the contact who sent it.

    ``ambiguous`` holds the patients sharing the number when none could be chosen;
    ``resolved_by`` says how a shared number was resolved (``only`` when it is not shared);
    ``reminder_keys``: the event keys of the patient's last reminder, read with the sender.
    """

    patient: Patient | None = None
    contact: Contact | None = None
    open_checkin: int | Literal["look up"] | None = LOOK_UP
    ambiguous: tuple[Patient, ...] = ()
    resolved_by: str | None = None
    reminder_keys: tuple[str, ...] | Literal["look up"] | None = LOOK_UP

    @property
    def from_caregiver(self) -> bool:
        """True when a caregiver (not the patient's own phone) sent the message."""
        return self.contact is not None and self.contact.relation != "self"


def match_sender(sender: str, body: str, now: datetime) -> SenderMatch:
    """The patient (and contact) an inbound message from ``sender`` is about."""
    candidates = _candidates(sender, now)
    if not candidates:
        e164 = as_e164(sender)
        if e164 and e164 != sender:
            sender = e164
            candidates = _candidates(e164, now)
    on_study = [c for c in candidates if c.patient.status not in OFF_STUDY]
    chosen = on_study or candidates
    if not chosen:
        return SenderMatch()
    if len(chosen) == 1:
        return _matched(chosen[0], "only")
    for rule, pick in (
        ("initials", _by_initials(chosen, body)),
        ("open_checkin", _by_open_checkin(chosen)),
        ("recent_message", _by_recent_message(chosen, sender, now)),
    ):
        if pick is not None:
            return _matched(pick, rule)
    return SenderMatch(open_checkin=None, ambiguous=tuple(c.patient for c in chosen))


def _matched(candidate: Candidate, rule: str) -> SenderMatch:
    return SenderMatch(
        candidate.patient, candidate.contact, candidate.open_checkin, (), rule,
        candidate.reminder_keys,
    )  # fmt: skip


def _candidates(number: str, now: datetime) -> list[Candidate]:
    params = {"p_number": number, "p_now": now, "p_since": now - REMINDER_LOOKBACK}
    found: dict[int, Candidate] = {}
    for patient, contact, open_id, keys in db.session.execute(_CANDIDATES, params):
        found.setdefault(patient.id, Candidate(patient, contact, open_id, _keys(keys)))
    return sorted(found.values(), key=lambda c: c.patient.id)


def _keys(value: Any) -> tuple[str, ...] | None:
    """Event keys as read (a JSON list), or None when there is no recent reminder."""
    return tuple(str(key) for key in value) if value else None


def _by_initials(candidates: list[Candidate], body: str) -> Candidate | None:
    """The one candidate whose initials the message writes as a word (e.g. "WL: 发烧")."""
    hits = [c for c in candidates if _mentions(body, c.patient.initials)]
    return hits[0] if len(hits) == 1 else None


def _mentions(body: str, initials: str) -> bool:
    letters = re.sub(r"[^A-Za-z]", "", initials or "")
    if len(letters) < 2:
        return False
    pattern = r"(?<![A-Za-z])" + r"\.?\s?".join(letters) + r"\.?(?![A-Za-z])"
    return re.search(pattern, body or "", flags=re.IGNORECASE) is not None


def _by_open_checkin(candidates: list[Candidate]) -> Candidate | None:
    with_checkin = [c for c in candidates if c.open_checkin is not None]
    return with_checkin[0] if len(with_checkin) == 1 else None


def _by_recent_message(candidates: list[Candidate], number: str, now: datetime) -> Candidate | None:
    """The candidate we last sent a reminder, notice or check-in to at this number."""
    by_id = {c.patient.id: c for c in candidates}
    latest = db.session.scalar(
        select(OutboxMessage.patient_id)
        .where(
            OutboxMessage.sent_to == number,
            OutboxMessage.patient_id.in_(list(by_id)),
            OutboxMessage.kind.in_(("reminder", "moved", "checkin")),
            OutboxMessage.status.in_(ACCEPTED_STATUSES),
            OutboxMessage.sent_at >= now - RECENT_MESSAGE_LOOKBACK,
        )
        .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
        .limit(1)
    )
    return by_id.get(latest) if latest is not None else None


def as_e164(raw: str) -> str | None:
    """A sender number as E.164 in the default region, or None when it is no number."""
    region = str(current_app.config.get("DEFAULT_PHONE_REGION") or "CN")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def which_patient_reply(locale: str, patients: tuple[Patient, ...]) -> str:
    """Ask a shared phone which patient the message is about, by initials."""
    initials = " / ".join(p.initials for p in patients)
    with force_locale(locale):
        return gettext(
            "This phone belongs to more than one patient. Please send your message again "
            "starting with the patient's initials (%(initials)s). A nurse will also read it.",
            initials=initials,
        )


def shared_number_reasons(patients: tuple[Patient, ...]) -> list[str]:
    """Why the nurse must look: the patients sharing the number."""
    ids = ", ".join(p.study_id for p in patients)
    return [f"shared phone: patients {ids}; asked which patient, attribute it by hand"]


def sender_record(match: SenderMatch) -> dict[str, Any] | None:
    """Who sent it, as stored with what we understood (relation, masked name, how resolved)."""
    if match.contact is None:
        return None
    return {
        "contact_id": match.contact.id,
        "relation": match.contact.relation,
        "name": mask_name(match.contact.name),
        "resolved_by": match.resolved_by,
    }
