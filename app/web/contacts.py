"""A patient's contacts (own phone, caregivers) and their consents: list, add, change,
deactivate; record, withdraw and confirm consents. Every change is audited by the service."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models import Contact, ContactConsent, Patient, utcnow
from app.services.messaging.recipients import contact_block
from app.services.schedule import contacts as service
from app.services.schedule.contacts import ConsentInput, ContactError, ContactInput
from app.services.shared.patient_lookup import PatientNotFound, get_patient
from app.sms.privacy import mask_phone
from app.web import labels
from app.web.contact_forms import ConsentForm, ContactForm, ReasonForm, WithdrawConsentForm
from app.web.helpers import clinic_today
from app.web.messages import enrolment_error
from app.web.security import current_actor, require_login, requires

bp = Blueprint("contacts", __name__, url_prefix="/patients/<study_id>/contacts")
bp.before_request(require_login)

# Why a contact gets no message of a kind, in the nurse's words.
BLOCK_LABELS = {
    "no_consent": _l("no consent covering it"),
    "opted_out": _l("opted out by SMS"),
    "invalid_number": _l("the number does not work"),
    "off_study": _l("the patient is off study"),
    "inactive_contact": _l("contact deactivated"),
    "not_chosen": _l("not chosen for this contact"),
}
KINDS_SHOWN = (("reminder", "reminders"), ("checkin", "checkins"), ("reply", "replies"))


def register_contacts(app: Flask) -> None:
    """Register the blueprint and its filters."""
    app.register_blueprint(bp)
    app.jinja_env.filters["contact_code"] = labels.contact_code_label
    app.jinja_env.filters["contact_block"] = lambda code: labels._lookup(BLOCK_LABELS, code)
    app.jinja_env.filters["masked_name"] = service.mask_name
    app.jinja_env.filters["mask_phone"] = mask_phone
    app.jinja_env.filters["message_sender"] = lambda message: (
        service.message_sender(message.parse, message.contact_id) if message else None
    )


def _patient_or_404(study_id: str) -> Patient:
    try:
        return get_patient(study_id)
    except PatientNotFound:
        abort(404)


def _contact_or_404(patient: Patient, contact_id: int) -> Contact:
    contact = service.contact_of_patient(patient, contact_id)
    if contact is None:
        abort(404)
    return contact


def _consent_or_404(contact: Contact, consent_id: int) -> ContactConsent:
    consent = service.consent_of_contact(contact, consent_id)
    if consent is None:
        abort(404)
    return consent


def _back(patient: Patient, contact: Contact | None = None) -> Any:
    anchor = f"contact-{contact.id}" if contact is not None else None
    return redirect(url_for("contacts.index", study_id=patient.study_id, _anchor=anchor))


# --------------------------------------------------------------------------- pages


@bp.get("/")
def index(study_id: str) -> Any:
    """Every contact of the patient with what it gets now, its consents and the actions."""
    patient = _patient_or_404(study_id)
    return _render_index(patient, _contact_form(formdata=None), None)


def _render_index(
    patient: Patient, form: ContactForm, consent_forms: dict[int, ConsentForm] | None
) -> Any:
    contacts = service.contacts_of(patient)
    forms = consent_forms or {}
    for contact in contacts:
        forms.setdefault(contact.id, _blank_consent_form(contact))
    status = 400 if form.errors or any(f.errors for f in forms.values()) else 200
    return (
        render_template(
            "contacts/index.html",
            patient=patient,
            contacts=contacts,
            form=form,
            consent_forms=forms,
            withdraw_form=WithdrawConsentForm(formdata=None),
            reason_form=ReasonForm(formdata=None),
            gets={c.id: _what_it_gets(c) for c in contacts},
            waiting={c.id: sorted(c.scopes_waiting()) for c in contacts},
        ),
        status,
    )


def _blank_consent_form(contact: Contact) -> ConsentForm:
    form = ConsentForm(formdata=None, prefix=f"c{contact.id}")
    form.recorded_on.data = clinic_today()
    return form


def _what_it_gets(contact: Contact) -> list[tuple[str, str | None]]:
    """(message choice, why it is not sent or None) for each kind of message."""
    return [(choice, contact_block(contact, kind)) for kind, choice in KINDS_SHOWN]


@bp.post("/")
@requires("patients.write")
def add(study_id: str) -> Any:
    """Add a contact; its consent is recorded next (nothing is sent to it before)."""
    patient = _patient_or_404(study_id)
    form = _contact_form()
    if not form.validate_on_submit():
        return _render_index(patient, form, None)
    try:
        contact = service.committed(
            service.add_contact, patient, _contact_input(form), actor=current_actor(), now=utcnow()
        )
    except ContactError as exc:
        _attach(form, exc)
        return _render_index(patient, form, None)
    flash(_("Contact added. Record their consent: no message goes to them before."), "success")
    return _back(patient, contact)


@bp.route("/<int:contact_id>/edit", methods=["GET", "POST"])
@requires("patients.write")
def edit(study_id: str, contact_id: int) -> Any:
    """Change a contact's number, language, messages or order (a reason is required)."""
    patient = _patient_or_404(study_id)
    contact = _contact_or_404(patient, contact_id)
    form = _contact_form(obj=None if _posted() else _as_form_data(contact))
    if _posted() and form.validate_on_submit():
        if not (form.reason.data or "").strip():
            form.reason.errors = [_("Say why.")]
        else:
            try:
                service.committed(
                    service.update_contact,
                    contact,
                    _contact_input(form),
                    actor=current_actor(),
                    now=utcnow(),
                    reason=form.reason.data,
                )
            except ContactError as exc:
                _attach(form, exc)
            else:
                flash(_("Contact changed."), "success")
                return _back(patient, contact)
    status = 400 if _posted() else 200
    html = render_template("contacts/edit.html", patient=patient, contact=contact, form=form)
    return html, status


def _contact_form(**kwargs: Any) -> ContactForm:
    """The contact form with the languages named in the reader's language."""
    form = ContactForm(**kwargs)
    form.locale.choices = [(code, labels.language_name(code)) for code in ("zh", "en")]
    return form


def _posted() -> bool:
    return request.method == "POST"


class _FormData:
    """A contact's values as a form's ``obj``."""

    def __init__(self, contact: Contact) -> None:
        self.relation = contact.relation
        self.name = contact.name
        self.phone = contact.phone_e164
        self.locale = contact.locale
        self.messages = list(contact.messages or [])
        self.position = contact.position
        self.reason = ""


def _as_form_data(contact: Contact) -> _FormData:
    return _FormData(contact)


def _contact_input(form: ContactForm) -> ContactInput:
    return ContactInput(
        relation=form.relation.data or "",
        phone=form.phone.data or "",
        name=form.name.data or "",
        locale=form.locale.data or "zh",
        messages=tuple(form.messages.data or ()),
        position=form.position.data,
    )


@bp.post("/<int:contact_id>/consents")
@requires("patients.write")
def record_consent(study_id: str, contact_id: int) -> Any:
    """Record a consent the contact gave (date, method, scopes, witness)."""
    patient = _patient_or_404(study_id)
    contact = _contact_or_404(patient, contact_id)
    form = ConsentForm(prefix=f"c{contact.id}")
    if form.validate_on_submit():
        data = ConsentInput(
            recorded_on=form.recorded_on.data,
            method=form.method.data,
            scopes=tuple(form.scopes.data or ()),
            witness=form.witness.data,
            note=form.note.data,
        )
        try:
            service.committed(
                service.record_consent,
                contact,
                data,
                actor=current_actor(),
                now=utcnow(),
                today=clinic_today(),
            )
        except ContactError as exc:
            _attach(form, exc)
        else:
            flash(_("Consent recorded."), "success")
            return _back(patient, contact)
    return _render_index(patient, _contact_form(formdata=None), {contact.id: form})


@bp.post("/<int:contact_id>/consents/<int:consent_id>/withdraw")
@requires("patients.write")
def withdraw_consent(study_id: str, contact_id: int, consent_id: int) -> Any:
    """Record that the contact withdrew a consent: its messages stop at once."""
    patient = _patient_or_404(study_id)
    contact = _contact_or_404(patient, contact_id)
    consent = _consent_or_404(contact, consent_id)
    form = WithdrawConsentForm()
    if not form.validate_on_submit():
        flash(_("The withdrawal was not saved: say how it was given and why."), "error")
        return _back(patient, contact)
    try:
        cancelled = service.committed(
            service.withdraw_consent,
            consent,
            actor=current_actor(),
            now=utcnow(),
            method=form.method.data,
            reason=form.reason.data,
        )
    except ContactError as exc:
        flash(" ".join(contact_error(k, v) for k, v in exc.errors.items()), "error")
        return _back(patient, contact)
    flash(_("Consent withdrawn: %(num)d planned messages cancelled.", num=cancelled), "success")
    return _back(patient, contact)


@bp.post("/<int:contact_id>/consents/<int:consent_id>/confirm")
@requires("patients.write")
def confirm_consent(study_id: str, contact_id: int, consent_id: int) -> Any:
    """Confirm a consent recorded before contacts existed (after checking the signed form)."""
    patient = _patient_or_404(study_id)
    contact = _contact_or_404(patient, contact_id)
    consent = _consent_or_404(contact, consent_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        flash(_("Not confirmed: say how you checked the consent (e.g. the signed form)."), "error")
        return _back(patient, contact)
    service.committed(
        service.confirm_consent,
        consent,
        actor=current_actor(),
        now=utcnow(),
        reason=form.reason.data,
    )
    flash(_("Consent confirmed: the messages it covers can be sent."), "success")
    return _back(patient, contact)


@bp.post("/<int:contact_id>/active/<int:active>")
@requires("patients.write")
def set_active(study_id: str, contact_id: int, active: int) -> Any:
    """Deactivate a contact (nothing more goes to it) or make it active again."""
    patient = _patient_or_404(study_id)
    contact = _contact_or_404(patient, contact_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        flash(_("Nothing changed: say why."), "error")
        return _back(patient, contact)
    service.committed(
        service.set_contact_active,
        contact,
        bool(active),
        actor=current_actor(),
        now=utcnow(),
        reason=form.reason.data,
    )
    flash(_("Contact active again.") if active else _("Contact deactivated."), "success")
    return _back(patient, contact)


# --------------------------------------------------------------------------- errors


def _attach(form: Any, exc: ContactError) -> None:
    """Put each service error on its field (translated), or on the form."""
    for name, english in exc.errors.items():
        field = getattr(form, name, None)
        message = contact_error(name, english)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*list(field.errors or []), message]
        else:
            flash(message, "error")


def contact_error(field: str, english: str) -> str:
    """A nurse-facing message for one field of a ContactError."""
    text = english or ""
    if field == "phone":
        if "already has a contact" in text:
            return _("This patient already has a contact with this number.")
        if "required" in text or not text:
            return _("Enter the mobile number.")
        return enrolment_error("phone", text)
    if field == "scopes":
        return _("Choose what the contact consented to.")
    if field == "witness":
        return _("A verbal consent needs the witness's name.")
    if field == "recorded_on":
        return _("A consent cannot be dated in the future.")
    if field == "consent":
        return _("This consent is already withdrawn.")
    if field == "reason":
        return _("Say why.")
    if field == "name":
        return _("At most 40 characters.")
    if field == "relation" and "already has their own phone" in text:
        return _("The patient's own phone is already a contact: choose the caregiver's relation.")
    if field == "relation" and "stays the patient's own" in text:
        return _("The patient's own phone stays the patient's: add a caregiver as a new contact.")
    if field == "position":
        return _("Use a number from 0 to 99.")
    if re.search(r"must be one of", text):
        return _("Choose one of the options.")
    return text
