"""A patient's contacts and their consents: add, change, record and withdraw consent, opt out.

Every change is audited (who, when, what, why) and re-plans the patient's reminders in the
same transaction, so planned messages always go to a contact that may get them; the messages
of a contact that lost its consent or opted out are cancelled. The changes flush and leave the
commit to the caller (the inbound SMS use case); ``committed(change, ...)`` runs one and commits
(the web pages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import func, select

from app.domain.patients import InvalidPhoneNumber, normalise_phone
from app.extensions import db
from app.models import (
    CONSENT_METHODS,
    CONSENT_SCOPES,
    CONTACT_MESSAGES,
    RELATIONS,
    Contact,
    ContactConsent,
    Patient,
)
from app.services.messaging import recipients
from app.services.messaging.reminders import cancel_unsent_to_contact, plan_patient
from app.services.shared import audit
from app.sms.privacy import mask_phone

# Methods staff may choose; "before_contacts" is only for migrated consents.
RECORDABLE_METHODS = tuple(m for m in CONSENT_METHODS if m != "before_contacts")
ALL_MESSAGES = list(CONTACT_MESSAGES)
ALL_SCOPES = list(CONSENT_SCOPES)
T = TypeVar("T")


class ContactError(ValueError):
    """Invalid contact or consent input: ``errors`` maps each field to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class ContactInput:
    """What staff type for a contact."""

    relation: str
    phone: str
    name: str = ""
    locale: str = "zh"
    messages: tuple[str, ...] = tuple(CONTACT_MESSAGES)
    position: int | None = None


@dataclass(frozen=True)
class ConsentInput:
    """What staff record for a consent: when, how, what it covers, the witness (verbal)."""

    recorded_on: date
    method: str
    scopes: tuple[str, ...]
    witness: str | None = None
    note: str | None = None


@dataclass
class ContactView:
    """One contact as the CLI and pages show it (number masked unless asked)."""

    study_id: str
    relation: str
    name: str
    phone: str
    locale: str
    messages: list[str]
    consents: list[dict[str, Any]] = field(default_factory=list)
    opted_out: bool = False
    position: int = 0

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``contacts list``."""
        return {
            "study_id": self.study_id,
            "relation": self.relation,
            "name": self.name,
            "phone": self.phone,
            "locale": self.locale,
            "messages": self.messages,
            "consents": self.consents,
            "opted_out": self.opted_out,
            "position": self.position,
        }


# -- reading -------------------------------------------------------------------------------------


def contacts_of(patient: Patient) -> list[Contact]:
    """The patient's contacts (inactive ones too) in fallback order."""
    return list(
        db.session.scalars(
            select(Contact)
            .where(Contact.patient_id == patient.id)
            .order_by(Contact.position, Contact.id)
        )
    )


def mask_name(name: str) -> str:
    """A name as shown in the inbox: its first character, the rest starred (王** / W*)."""
    text = (name or "").strip()
    if not text:
        return ""
    return text[0] + "*" * max(len(text) - 1, 1)


def sender_label(contact: Contact | None) -> dict[str, str] | None:
    """Who sent a message, for the inbox and conversation: relation and masked name."""
    if contact is None:
        return None
    return {"relation": contact.relation, "name": mask_name(contact.name)}


def message_sender(parse: dict[str, Any] | None, contact_id: int | None) -> dict[str, str] | None:
    """Who wrote an inbound message when it was not the patient's own phone: relation and
    masked name, from what was stored with the message (or its contact); None otherwise."""
    stored = (parse or {}).get("sender")
    if isinstance(stored, dict) and stored.get("relation"):
        label = {"relation": str(stored["relation"]), "name": str(stored.get("name") or "")}
    elif contact_id is not None:
        label = sender_label(db.session.get(Contact, contact_id))
    else:
        label = None
    return label if label is not None and label["relation"] != "self" else None


def consent_json(consent: ContactConsent) -> dict[str, Any]:
    """One consent as plain data."""
    return {
        "id": consent.id,
        "recorded_on": consent.recorded_on.isoformat(),
        "method": consent.method,
        "scopes": list(consent.scopes or []),
        "witness": consent.witness,
        "recorded_by": consent.recorded_by,
        "needs_confirmation": consent.needs_confirmation,
        "withdrawn_at": consent.withdrawn_at.isoformat() if consent.withdrawn_at else None,
        "withdrawn_by": consent.withdrawn_by,
    }


def contact_view(contact: Contact, *, full_phone: bool = False) -> ContactView:
    """A contact as plain data (the number masked unless ``full_phone``)."""
    return ContactView(
        study_id=contact.patient.study_id,
        relation=contact.relation,
        name=contact.name,
        phone=contact.phone_e164 if full_phone else mask_phone(contact.phone_e164),
        locale=recipients.contact_locale(contact),
        messages=list(contact.messages or []),
        consents=[consent_json(c) for c in contact.consents],
        opted_out=contact.opted_out_at is not None,
        position=contact.position,
    )


def list_contacts(study_id: str | None, *, full_phone: bool = False) -> list[ContactView]:
    """Every contact of one patient (study id), or of all patients when ``study_id`` is None."""
    stmt = select(Contact).join(Patient).order_by(Patient.study_id, Contact.position, Contact.id)
    if study_id is not None:
        stmt = stmt.where(Patient.study_id == study_id)
    return [contact_view(c, full_phone=full_phone) for c in db.session.scalars(stmt)]


def contact_of_patient(patient: Patient, contact_id: int) -> Contact | None:
    """The patient's contact with this id, or None (another patient's contact is None too)."""
    contact = db.session.get(Contact, contact_id)
    return contact if contact is not None and contact.patient_id == patient.id else None


def consent_of_contact(contact: Contact, consent_id: int) -> ContactConsent | None:
    """The contact's consent with this id, or None."""
    return next((c for c in contact.consents if c.id == consent_id), None)


def active_contacts_by_patient(patient_ids: Iterable[int]) -> dict[int, list[Contact]]:
    """Every active contact of these patients in fallback order, by patient id (for staff)."""
    ids = set(patient_ids)
    found: dict[int, list[Contact]] = {pid: [] for pid in ids}
    if not ids:
        return found
    rows = db.session.scalars(
        select(Contact)
        .where(Contact.patient_id.in_(ids), Contact.active.is_(True))
        .order_by(Contact.patient_id, Contact.position, Contact.id)
    )
    for contact in rows:
        found[contact.patient_id].append(contact)
    return found


def committed(change: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one of this module's changes and commit; roll back and re-raise when it fails."""
    try:
        result = change(*args, **kwargs)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return result


# -- validation ----------------------------------------------------------------------------------


def _region() -> str:
    return str(current_app.config.get("DEFAULT_PHONE_REGION") or "CN")


def validate_contact(data: ContactInput) -> dict[str, Any]:
    """The contact's column values, or ContactError naming every bad field."""
    errors: dict[str, str] = {}
    if data.relation not in RELATIONS:
        errors["relation"] = f"must be one of {', '.join(RELATIONS)}"
    try:
        phone = normalise_phone(data.phone, _region())
    except InvalidPhoneNumber as exc:
        errors["phone"] = str(exc)
        phone = ""
    if data.locale not in ("zh", "en"):
        errors["locale"] = "must be zh or en"
    unknown = sorted(set(data.messages) - set(CONTACT_MESSAGES))
    if unknown:
        errors["messages"] = f"unknown: {', '.join(unknown)}; known: {', '.join(CONTACT_MESSAGES)}"
    name = (data.name or "").strip()
    if len(name) > 40:
        errors["name"] = "at most 40 characters"
    if data.position is not None and not 0 <= data.position <= 99:
        errors["position"] = "must be between 0 and 99"
    if errors:
        raise ContactError(errors)
    return {
        "relation": data.relation,
        "phone_e164": phone,
        "name": name,
        "locale": data.locale,
        "messages": [m for m in CONTACT_MESSAGES if m in data.messages],
    }


def validate_consent(data: ConsentInput, *, today: date) -> None:
    """ContactError naming every bad field of a consent."""
    errors: dict[str, str] = {}
    if data.method not in RECORDABLE_METHODS:
        errors["method"] = f"must be one of {', '.join(RECORDABLE_METHODS)}"
    if not data.scopes:
        errors["scopes"] = "choose what the contact consented to"
    elif set(data.scopes) - set(CONSENT_SCOPES):
        errors["scopes"] = f"unknown; known: {', '.join(CONSENT_SCOPES)}"
    if data.method == "verbal_witness" and not (data.witness or "").strip():
        errors["witness"] = "a verbal consent needs the witness's name"
    if data.recorded_on > today:
        errors["recorded_on"] = "a consent date cannot be in the future"
    if errors:
        raise ContactError(errors)


# -- changes -------------------------------------------------------------------------------------


def add_contact(patient: Patient, data: ContactInput, *, actor: str, now: datetime) -> Contact:
    """Add a contact to the patient (audited, reminders re-planned); no commit."""
    values = validate_contact(data)
    existing = contacts_of(patient)
    if any(c.phone_e164 == values["phone_e164"] for c in existing):
        raise ContactError({"phone": "this patient already has a contact with this number"})
    if values["relation"] == "self" and any(c.relation == "self" for c in existing):
        raise ContactError({"relation": "the patient already has their own phone as a contact"})
    position = data.position
    if position is None:
        highest = db.session.scalar(
            select(func.max(Contact.position)).where(Contact.patient_id == patient.id)
        )
        position = 0 if highest is None else highest + 1
    contact = Contact(patient_id=patient.id, position=position, created_at=now, updated_at=now)
    for key, value in values.items():
        setattr(contact, key, value)
    db.session.add(contact)
    db.session.flush()
    audit.record(
        actor,
        "contact.add",
        entity_type="contact",
        entity_id=contact.id,
        patient_id=patient.id,
        after=contact_snapshot(contact),
        reason="contact added",
        at=now,
    )
    plan_patient(patient, now=now, source=actor)
    return contact


def update_contact(
    contact: Contact, data: ContactInput, *, actor: str, now: datetime, reason: str
) -> Contact:
    """Change a contact's number, language, choices or order (audited, re-planned); no commit."""
    values = validate_contact(data)
    if any(
        c.id != contact.id and c.phone_e164 == values["phone_e164"]
        for c in contacts_of(contact.patient)
    ):
        raise ContactError({"phone": "this patient already has a contact with this number"})
    if (contact.relation == "self") != (values["relation"] == "self"):
        raise ContactError({"relation": "the patient's own phone stays the patient's own"})
    before = contact_snapshot(contact)
    old_phone = contact.phone_e164
    for key, value in values.items():
        setattr(contact, key, value)
    if data.position is not None:
        contact.position = data.position
    contact.updated_at = now
    if contact.relation == "self" and contact.patient.phone_e164 == old_phone:
        contact.patient.phone_e164 = contact.phone_e164  # the patient's own number follows
    db.session.flush()
    audit.record(
        actor,
        "contact.update",
        entity_type="contact",
        entity_id=contact.id,
        patient_id=contact.patient_id,
        before=before,
        after=contact_snapshot(contact),
        reason=reason or "contact changed",
        at=now,
    )
    if old_phone != contact.phone_e164:
        cancel_unsent_to_contact(contact.id, reason="number_changed", source=actor)
    plan_patient(contact.patient, now=now, source=actor)
    return contact


def record_consent(
    contact: Contact, data: ConsentInput, *, actor: str, now: datetime, today: date
) -> ContactConsent:
    """Record a consent the contact gave (audited, reminders re-planned); no commit."""
    validate_consent(data, today=today)
    consent = ContactConsent(
        contact_id=contact.id,
        recorded_on=data.recorded_on,
        method=data.method,
        scopes=[s for s in CONSENT_SCOPES if s in data.scopes],
        witness=(data.witness or "").strip() or None,
        note=(data.note or "").strip() or None,
        recorded_by=actor,
        needs_confirmation=False,
        created_at=now,
    )
    db.session.add(consent)
    db.session.flush()
    db.session.refresh(contact)
    audit.record(
        actor,
        "contact.consent_recorded",
        entity_type="contact",
        entity_id=contact.id,
        patient_id=contact.patient_id,
        after=consent_json(consent),
        reason=f"consent ({data.method})",
        at=now,
    )
    plan_patient(contact.patient, now=now, source=actor)
    return consent


def withdraw_consent(
    consent: ContactConsent, *, method: str, reason: str, actor: str, now: datetime
) -> int:
    """Record a withdrawal; that contact's unsent messages are cancelled, others re-planned.

    Returns how many messages were cancelled; no commit.
    """
    if method not in RECORDABLE_METHODS:
        raise ContactError({"method": f"must be one of {', '.join(RECORDABLE_METHODS)}"})
    if not (reason or "").strip():
        raise ContactError({"reason": "say why (the contact's words or the form)"})
    if consent.withdrawn_at is not None:
        raise ContactError({"consent": "this consent is already withdrawn"})
    before = consent_json(consent)
    consent.withdrawn_at = now
    consent.withdrawn_by = actor
    consent.withdrawal_method = method
    consent.withdrawal_reason = reason.strip()
    db.session.flush()
    contact = consent.contact
    db.session.refresh(contact)
    audit.record(
        actor,
        "contact.consent_withdrawn",
        entity_type="contact",
        entity_id=contact.id,
        patient_id=contact.patient_id,
        before=before,
        after=consent_json(consent),
        reason=reason.strip(),
        at=now,
    )
    return _stop_and_replan(contact, "consent_withdrawn", actor, now)


def confirm_consent(
    consent: ContactConsent, *, actor: str, now: datetime, reason: str = ""
) -> bool:
    """A nurse confirms a consent recorded before contacts existed (audited, re-planned: the
    messages it covers may now be sent); False when it needed no confirmation; no commit."""
    if not consent.needs_confirmation or consent.withdrawn_at is not None:
        return False
    consent.needs_confirmation = False
    audit.record(
        actor,
        "contact.consent_confirmed",
        entity_type="contact",
        entity_id=consent.contact_id,
        patient_id=consent.contact.patient_id,
        before={"needs_confirmation": True},
        after={"needs_confirmation": False, "scopes": list(consent.scopes or [])},
        reason=(reason or "").strip() or "consent recorded before contacts existed, confirmed",
        at=now,
    )
    db.session.flush()
    plan_patient(consent.contact.patient, now=now, source=actor)
    return True


def set_contact_active(
    contact: Contact, active: bool, *, actor: str, now: datetime, reason: str
) -> bool:
    """Deactivate a contact (nothing more is sent to it; unsent messages are cancelled) or
    make it active again; audited with the reason; False when nothing changed; no commit."""
    if not (reason or "").strip():
        raise ContactError({"reason": "say why"})
    if contact.active == active:
        return False
    contact.active = active
    contact.updated_at = now
    db.session.flush()
    audit.record(
        actor,
        "contact.reactivated" if active else "contact.deactivated",
        entity_type="contact",
        entity_id=contact.id,
        patient_id=contact.patient_id,
        before={"active": not active},
        after={"active": active} | contact_snapshot(contact),
        reason=reason.strip(),
        at=now,
    )
    if not active:
        cancel_unsent_to_contact(contact.id, reason="contact_deactivated", source=actor)
    plan_patient(contact.patient, now=now, source=actor)
    return True


def opt_out_contact(contact: Contact, *, now: datetime, actor: str) -> int:
    """An opt-out keyword from this contact: it alone gets nothing more; no commit.

    The patient's own contact also marks the patient opted out (the patient pages show it).
    """
    if contact.opted_out_at is not None:
        return 0
    contact.opted_out_at = now
    audit.record(
        actor,
        _own_or_contact(contact, "sms_opted_out"),
        entity_type="contact",
        entity_id=contact.id,
        patient_id=contact.patient_id,
        before={"opted_out_at": None},
        after={"opted_out_at": now.isoformat(), "relation": contact.relation},
        reason="opt-out keyword by SMS from this contact",
        at=now,
    )
    patient = contact.patient
    if contact.relation == "self" and patient.sms_opted_out_at is None:
        patient.sms_opted_out_at = now
    db.session.flush()
    return _stop_and_replan(contact, "opted_out", actor, now)


def opt_in_contact(contact: Contact, *, now: datetime, actor: str) -> bool:
    """An opt-in keyword from this contact after an opt-out; False if it had not opted out."""
    if contact.opted_out_at is None:
        return False
    before = contact.opted_out_at.isoformat()
    contact.opted_out_at = None
    if contact.relation == "self":
        contact.patient.sms_opted_out_at = None
    audit.record(
        actor,
        _own_or_contact(contact, "sms_opted_in"),
        entity_type="contact",
        entity_id=contact.id,
        patient_id=contact.patient_id,
        before={"opted_out_at": before},
        after={"opted_out_at": None},
        reason="opt-in keyword by SMS from this contact",
        at=now,
    )
    db.session.flush()
    plan_patient(contact.patient, now=now, source=actor)
    return True


def _own_or_contact(contact: Contact, what: str) -> str:
    """The audit action: ``patient.X`` for the patient's own phone, ``contact.X`` otherwise."""
    return f"patient.{what}" if contact.relation == "self" else f"contact.{what}"


def _stop_and_replan(contact: Contact, reason: str, actor: str, now: datetime) -> int:
    cancelled = cancel_unsent_to_contact(contact.id, reason=reason, source=actor)
    plan_patient(contact.patient, now=now, source=actor)
    return cancelled


def add_self_contact(
    patient: Patient,
    *,
    actor: str,
    now: datetime,
    consent_on: date | None,
    scopes: Iterable[str] = CONSENT_SCOPES,
    method: str = "paper",
) -> Contact:
    """The patient's own number as the first contact, with the enrolment consent; no commit.

    The caller audits it (enrolment records the contact in its own audit entry).
    """
    contact = Contact(
        patient_id=patient.id,
        relation="self",
        name=patient.initials,
        phone_e164=patient.phone_e164,
        locale=patient.locale,
        messages=list(ALL_MESSAGES),
        position=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(contact)
    db.session.flush()
    if consent_on is not None:
        db.session.add(
            ContactConsent(
                contact_id=contact.id,
                recorded_on=consent_on,
                method=method,
                scopes=list(scopes),
                recorded_by=actor,
                note="enrolment",
                needs_confirmation=False,
                created_at=now,
            )
        )
        db.session.flush()
    db.session.refresh(contact)
    return contact


def needs_confirmation(contact: Contact) -> bool:
    """True when a consent of the contact was migrated and waits for a nurse."""
    return any(c.needs_confirmation and c.withdrawn_at is None for c in contact.consents)


def contact_snapshot(contact: Contact) -> dict[str, Any]:
    """The audit view of a contact: number and name masked."""
    return {
        "relation": contact.relation,
        "name": mask_name(contact.name),
        "phone": mask_phone(contact.phone_e164),
        "locale": contact.locale,
        "messages": list(contact.messages or []),
        "position": contact.position,
        "scopes_in_force": sorted(contact.scopes_in_force()),
    }
