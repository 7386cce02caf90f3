"""A patient's contacts (own phone, caregivers) and the consent recorded for each.

A contact is one phone number that may get a patient's messages: the patient's own (relation
``self``) or a caregiver's. Which messages a contact gets is chosen by staff (``messages``), and
``position`` orders contacts for fallback. A message goes to a contact only while a consent
covering that kind of message is in force (not withdrawn) and the contact has not opted out.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.patient import Patient
from app.models.types import UTCDateTime, utcnow

RELATIONS = ("self", "spouse", "son", "daughter", "other")
# What staff choose per contact: which messages it gets.
CONTACT_MESSAGES = ("reminders", "checkins", "replies")
# What a consent covers (PIPL Art. 28-29: sensitive health information is consented apart).
CONSENT_SCOPES = ("sms_reminders", "checkins", "sensitive_health")
CONSENT_METHODS = ("paper", "verbal_witness", "electronic", "before_contacts")
LEGACY_CONSENT_NOTE = "recorded before contacts existed"
# What a migrated consent (the patient's old single SMS box) covers until a nurse confirms it:
# SMS reminders only; check-ins and sensitive health information wait for the confirmation.
UNCONFIRMED_SCOPES = frozenset({"sms_reminders"})


class Contact(db.Model):
    """One phone number that may get a patient's messages, with its language and choices."""

    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("patient_id", "phone_e164"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    relation: Mapped[str] = mapped_column(String(16), default="self")
    name: Mapped[str] = mapped_column(String(40), default="")
    phone_e164: Mapped[str] = mapped_column(String(20), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="zh")
    messages: Mapped[list[str]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phone_status: Mapped[str] = mapped_column(String(16), default="ok")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship()
    consents: Mapped[list[ContactConsent]] = relationship(
        back_populates="contact",
        order_by="(ContactConsent.recorded_on, ContactConsent.id)",
        cascade="all, delete-orphan",
    )

    def scopes_in_force(self) -> set[str]:
        """What the contact's consents not withdrawn cover together (an unconfirmed migrated
        consent covers SMS reminders only)."""
        scopes: set[str] = set()
        for consent in self.consents:
            if consent.withdrawn_at is None:
                scopes.update(consent.scopes_in_force())
        return scopes

    def scopes_waiting(self) -> set[str]:
        """Scopes of unconfirmed migrated consents that wait for a nurse's confirmation."""
        waiting: set[str] = set()
        for consent in self.consents:
            if consent.withdrawn_at is None and consent.needs_confirmation:
                waiting.update(set(consent.scopes or []) - UNCONFIRMED_SCOPES)
        return waiting - self.scopes_in_force()

    def __repr__(self) -> str:
        return f"<Contact {self.id} {self.relation} of patient {self.patient_id}>"


class ContactConsent(db.Model):
    """One consent a contact gave: when, how, what it covers, who recorded it; or its withdrawal."""

    __tablename__ = "contact_consent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"), index=True)
    recorded_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    witness: Mapped[str | None] = mapped_column(String(80))
    recorded_by: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)
    # A consent migrated from the patient's single flag waits for a nurse to confirm it.
    needs_confirmation: Mapped[bool] = mapped_column(Boolean, default=False)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by: Mapped[str | None] = mapped_column(String(120))
    withdrawal_method: Mapped[str | None] = mapped_column(String(16))
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="consents")

    def scopes_in_force(self) -> set[str]:
        """What this consent covers now: all its scopes once confirmed, else SMS reminders."""
        scopes = set(self.scopes or [])
        return scopes & UNCONFIRMED_SCOPES if self.needs_confirmation else scopes

    def __repr__(self) -> str:
        return f"<ContactConsent {self.id} {self.method} {self.scopes}>"
