"""Who a patient's message goes to: the first of the patient's contacts allowed to get it.

A message of a kind goes to a contact only when staff chose that kind for the contact, a consent
in force covers it, the contact has not opted out and its number works. Contacts are tried in
their fallback order (``position``). A patient without any contact row (made before contacts,
or directly in a test) keeps the old rule: the patient's own number and the patient's consent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from app.extensions import db
from app.models import Contact, Patient

# Which staff choice a message kind needs, and which consent scopes.
CHOICE_OF_KIND = {
    "reminder": "reminders",
    "moved": "reminders",
    "notice": "reminders",
    "checkin": "checkins",
    "reply": "replies",
}
SCOPES_OF_CHOICE = {
    "reminders": frozenset({"sms_reminders"}),
    # A check-in asks about symptoms: sensitive health information (PIPL Art. 28-29).
    "checkins": frozenset({"checkins", "sensitive_health"}),
    # An answer to the contact's own message may speak of symptoms too.
    "replies": frozenset({"sms_reminders", "sensitive_health"}),
}
OFF_STUDY = ("withdrawn", "off_study")


@dataclass(frozen=True)
class Recipient:
    """Where one message goes: number, language, and the contact (None: legacy patient row)."""

    phone: str
    locale: str
    contact_id: int | None = None
    relation: str = "self"


def patient_contacts(patient_id: int) -> list[Contact]:
    """The patient's active contacts in fallback order."""
    return list(
        db.session.scalars(
            select(Contact)
            .where(Contact.patient_id == patient_id, Contact.active.is_(True))
            .order_by(Contact.position, Contact.id)
        )
    )


def contacts_of(patient_ids: Iterable[int]) -> dict[int, list[Contact]]:
    """Every contact (active or not) of these patients with its consents, in fallback order,
    in two queries (the dispatcher's claim: no query per message)."""
    ids = set(patient_ids)
    if not ids:
        return {}
    rows = db.session.scalars(
        select(Contact)
        .where(Contact.patient_id.in_(ids))
        .options(selectinload(Contact.consents))
        .order_by(Contact.patient_id, Contact.position, Contact.id)
    )
    found: dict[int, list[Contact]] = {}
    for contact in rows:
        found.setdefault(contact.patient_id, []).append(contact)
    return found


def patients_and_contacts(
    patient_ids: Iterable[int],
) -> tuple[dict[int, Patient], dict[int, list[Contact]]]:
    """These patients, and every contact of theirs (active or not) with its consents in
    fallback order, in one query (the dispatcher's claim: one round trip, not three)."""
    ids = set(patient_ids)
    if not ids:
        return {}, {}
    rows = db.session.execute(
        select(Patient, Contact)
        .outerjoin(Contact, Contact.patient_id == Patient.id)
        .where(Patient.id.in_(ids))
        .options(joinedload(Contact.consents))
        .order_by(Patient.id, Contact.position, Contact.id)
    ).unique()
    patients: dict[int, Patient] = {}
    contacts: dict[int, list[Contact]] = {}
    for patient, contact in rows:
        patients[patient.id] = patient
        if contact is not None:
            contacts.setdefault(patient.id, []).append(contact)
    return patients, contacts


def has_contacts(patient_id: int) -> bool:
    """True when the patient has contact rows (then contacts decide who gets what)."""
    found = db.session.scalar(select(Contact.id).where(Contact.patient_id == patient_id).limit(1))
    return found is not None


def own_number_block(patient: Patient) -> str | None:
    """The patient's own flags: consent, opt-out, number, status (the rule before contacts)."""
    if not patient.sms_consent:
        return "no_consent"
    if patient.sms_opted_out_at is not None:
        return "opted_out"
    if patient.phone_status != "ok":
        return "invalid_number"
    if patient.status in OFF_STUDY:
        return "off_study"
    return None


def contact_block(contact: Contact, kind: str) -> str | None:
    """Why this contact may not get a message of ``kind`` now, or None when it may.

    The patient's own number also obeys the patient's flags (consent, opt-out, number status).
    """
    choice = CHOICE_OF_KIND.get(kind, "reminders")
    if contact.phone_e164 == contact.patient.phone_e164:
        own = own_number_block(contact.patient)
        if own is not None:
            return own
    if not contact.active:
        return "inactive_contact"
    if contact.opted_out_at is not None:
        return "opted_out"
    if contact.phone_status != "ok":
        return "invalid_number"
    if choice not in (contact.messages or []):
        return "not_chosen"
    if not SCOPES_OF_CHOICE[choice] <= contact.scopes_in_force():
        return "no_consent"
    return None


def eligible_contacts(patient: Patient, kind: str) -> list[Contact]:
    """The patient's contacts allowed to get a message of ``kind``, in fallback order."""
    if patient.status in OFF_STUDY:
        return []
    return [c for c in patient_contacts(patient.id) if contact_block(c, kind) is None]


def contact_locale(contact: Contact) -> str:
    """The language a contact reads: the patient's own for the patient's ``self`` contact
    (a correction of the patient's language applies at once), else the contact's."""
    locale = contact.patient.locale if contact.relation == "self" else contact.locale
    return locale if locale in ("zh", "en") else "zh"


def recipient_of(contact: Contact) -> Recipient:
    """A contact as a message recipient."""
    return Recipient(contact.phone_e164, contact_locale(contact), contact.id, contact.relation)


def primary_recipient(
    patient: Patient, kind: str, active: Sequence[Contact] | None = None
) -> Recipient | None:
    """Where a message of ``kind`` goes first, or None when nobody may get it.

    Without contact rows: the patient's own number (the caller checks the patient's consent).
    ``active``: the patient's active contacts in fallback order, when already loaded.
    """
    contacts = patient_contacts(patient.id) if active is None else active
    if not contacts:
        locale = patient.locale if patient.locale in ("zh", "en") else "zh"
        return Recipient(patient.phone_e164, locale)
    if patient.status in OFF_STUDY:
        return None
    allowed = [c for c in contacts if contact_block(c, kind) is None]
    return recipient_of(allowed[0]) if allowed else None


def next_recipient(patient: Patient, kind: str, after_contact_id: int) -> Recipient | None:
    """The next contact in fallback order after ``after_contact_id`` allowed to get ``kind``."""
    contacts = eligible_contacts(patient, kind)
    ids = [c.id for c in patient_contacts(patient.id)]
    if after_contact_id not in ids:
        return None
    later = ids[ids.index(after_contact_id) + 1 :]
    for contact in contacts:
        if contact.id in later:
            return recipient_of(contact)
    return None


def contacts_block(
    patient: Patient, kind: str, active: Sequence[Contact] | None = None
) -> str | None:
    """Why no contact of a patient with contacts may get ``kind`` (the first contact's reason).

    ``active``: the patient's active contacts in fallback order, when already loaded.
    """
    if patient.status in OFF_STUDY:
        return "off_study"
    contacts = patient_contacts(patient.id) if active is None else active
    reasons = [contact_block(c, kind) for c in contacts]
    if any(reason is None for reason in reasons):
        return None
    return reasons[0] if reasons else "no_contact"


def row_block(
    patient: Patient,
    kind: str,
    contact_id: int | None,
    every: Sequence[Contact] | None = None,
) -> str | None:
    """Why an outbox row of a patient with contacts may not go out now, or None.

    A row names its contact; a row from before contacts existed goes to the patient's own
    number, so the contact with that number decides. ``every``: all the patient's contacts
    (``contacts_of``), when already loaded.
    """
    if patient.status in OFF_STUDY:
        return "off_study"
    if contact_id is not None:
        contact = (
            db.session.get(Contact, contact_id)
            if every is None
            else next((c for c in every if c.id == contact_id), None)
        )
        return "no_contact" if contact is None else contact_block(contact, kind)
    contacts = patient_contacts(patient.id) if every is None else [c for c in every if c.active]
    own = [c for c in contacts if c.phone_e164 == patient.phone_e164]
    if own:
        return contact_block(own[0], kind)
    return contacts_block(patient, kind, contacts)


def recipient_values(patient: Patient, kind: str) -> dict[str, object]:
    """The outbox column naming where a new message of ``kind`` goes ({} : the patient's own).

    Only ``contact_id``: dispatch sends to the contact's number (``recipient`` stays for pages,
    whose UNIQUE key is per recipient).

    When no contact may get it, the row names the first contact so that dispatch blocks it
    with that contact's reason (nothing is sent without consent).
    """
    recipient = primary_recipient(patient, kind)
    if recipient is None:
        contacts = patient_contacts(patient.id)
        if not contacts:
            return {}
        recipient = recipient_of(contacts[0])
    if recipient.contact_id is None:
        return {}
    return {"contact_id": recipient.contact_id}
