"""Exports of a patient's calendar: an .ics file and a printable page in the patient's language;
a contact's copy (caregiver) in the contact's language, naming no drug or diagnosis."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import force_locale
from flask_babel import gettext as _

from app.models import Contact, Patient
from app.services.messaging.recipients import contact_locale
from app.services.schedule.contacts import contact_of_patient
from app.services.schedule.exports import PrintLine, patient_ics, print_lines
from app.services.shared.patient_lookup import PatientNotFound, get_patient
from app.web.helpers import clinic_now, clinic_today
from app.web.security import require_login

bp = Blueprint("exports", __name__, url_prefix="/patients")
bp.before_request(require_login)

PRINT_WEEKS_DEFAULT = 12
PRINT_WEEKS_CHOICES = (4, 8, 12, 16, 26)
# What fits on one A4 page: rows are counted in printed lines of the "What" column.
PRINT_MAX_ROW_LINES = 27
CHARS_PER_LINE = {"zh": 34, "en": 64}


def _patient_or_404(study_id: str) -> Patient:
    try:
        return get_patient(study_id)
    except PatientNotFound:
        abort(404)


def fitting_on_one_page(lines: list[PrintLine], locale: str) -> list[PrintLine]:
    """The first lines that fit on one A4 page (long titles take two or three printed lines)."""
    per_line = CHARS_PER_LINE.get(locale, CHARS_PER_LINE["en"])
    used, shown = 0, []
    for line in lines:
        used += 1 + len(line.title) // per_line
        if used > PRINT_MAX_ROW_LINES:
            break
        shown.append(line)
    return shown


def _contact_or_404(patient: Patient, contact_id: int) -> Contact:
    contact = contact_of_patient(patient, contact_id)
    if contact is None:
        abort(404)
    return contact


@bp.get("/<study_id>/calendar.ics")
def ics(study_id: str) -> Any:
    """Download the calendar as iCalendar, in the patient's language."""
    patient = _patient_or_404(study_id)
    return _ics_response(patient, patient.locale, f"{patient.study_id}-calendar.ics")


@bp.get("/<study_id>/contacts/<int:contact_id>/calendar.ics")
def contact_ics(study_id: str, contact_id: int) -> Any:
    """A contact's .ics: the contact's language, events named without drug or diagnosis."""
    patient = _patient_or_404(study_id)
    contact = _contact_or_404(patient, contact_id)
    name = f"{patient.study_id}-{contact.relation}-calendar.ics"
    return _ics_response(patient, contact_locale(contact), name, neutral=True)


def _ics_response(patient: Patient, locale: str, filename: str, *, neutral: bool = False) -> Any:
    with force_locale(locale):
        body = patient_ics(patient, now=clinic_now(), neutral=neutral)
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<study_id>/print")
def printable(study_id: str) -> Any:
    """A one-page calendar to hand to the patient, in the patient's language."""
    patient = _patient_or_404(study_id)
    return _printable(patient, patient.locale, None)


@bp.get("/<study_id>/contacts/<int:contact_id>/print")
def contact_printable(study_id: str, contact_id: int) -> Any:
    """A one-page calendar for a contact, in the contact's language (no drug or diagnosis)."""
    patient = _patient_or_404(study_id)
    contact = _contact_or_404(patient, contact_id)
    return _printable(patient, contact_locale(contact), contact)


def _printable(patient: Patient, locale: str, contact: Contact | None) -> Any:
    raw = request.args.get("weeks", "")
    weeks = int(raw) if raw.isdigit() and int(raw) in PRINT_WEEKS_CHOICES else PRINT_WEEKS_DEFAULT
    today = clinic_today()
    toolbar = {
        "print": _("Print"),
        "back": _("Back to the patient"),
        "weeks": _("Weeks shown"),
        "language_note": _("This page is in the patient's language.")
        if contact is None
        else _("This page is in the contact's language and names no drug or diagnosis."),
    }
    with force_locale(locale):
        lines = print_lines(patient, start=today, weeks=weeks, neutral=contact is not None)
        shown = fitting_on_one_page(lines, locale)
        truncated = len(shown) < len(lines)
        html = render_template(
            "exports/print.html",
            patient=patient,
            contact=contact,
            lines=shown,
            today=today,
            weeks=weeks,
            truncated=truncated,
            toolbar=toolbar,
            weeks_choices=PRINT_WEEKS_CHOICES,
            patient_locale=locale,
        )
    return html
