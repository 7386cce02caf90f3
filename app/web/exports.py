"""Exports of a patient's calendar: an .ics file and a printable page in the patient's language."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import force_locale
from flask_babel import gettext as _

from app.models import Patient
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


@bp.get("/<study_id>/calendar.ics")
def ics(study_id: str) -> Any:
    """Download the calendar as iCalendar, in the patient's language."""
    patient = _patient_or_404(study_id)
    with force_locale(patient.locale):
        body = patient_ics(patient, now=clinic_now())
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{patient.study_id}-calendar.ics"'
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<study_id>/print")
def printable(study_id: str) -> Any:
    """A one-page calendar to hand to the patient, in the patient's language."""
    patient = _patient_or_404(study_id)
    raw = request.args.get("weeks", "")
    weeks = int(raw) if raw.isdigit() and int(raw) in PRINT_WEEKS_CHOICES else PRINT_WEEKS_DEFAULT
    today = clinic_today()
    toolbar = {
        "print": _("Print"),
        "back": _("Back to the patient"),
        "weeks": _("Weeks shown"),
        "language_note": _("This page is in the patient's language."),
    }
    with force_locale(patient.locale):
        lines = print_lines(patient, start=today, weeks=weeks)
        shown = fitting_on_one_page(lines, patient.locale)
        truncated = len(shown) < len(lines)
        lines = shown
        html = render_template(
            "exports/print.html",
            patient=patient,
            lines=lines,
            today=today,
            weeks=weeks,
            truncated=truncated,
            toolbar=toolbar,
            weeks_choices=PRINT_WEEKS_CHOICES,
            patient_locale=patient.locale,
        )
    return html
