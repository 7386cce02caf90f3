"""Translated messages for the errors the domain and services raise in English.

The domain writes precise English messages for developers and the CLI; nurses get the same facts
in their language. Unknown messages are shown as they are (English) rather than hidden.
"""

from __future__ import annotations

import re

from flask_babel import gettext as _

ENROLMENT_FIELDS = (
    "study_id",
    "initials",
    "phone",
    "choices",
    "start_date",
    "recurrence_date",
    "sms_consent",
    "sms_consent_date",
    "locale",
    "timezone",
)


def enrolment_error(field: str, english: str) -> str:
    """A nurse-facing message for one field of an EnrolmentError."""
    text = english or ""
    between = re.search(r"must be between (\d{4}-\d{2}-\d{2}) and (\d{4}-\d{2}-\d{2})", text)
    if between:
        return _(
            "Use a date between %(earliest)s and %(latest)s.",
            earliest=between.group(1),
            latest=between.group(2),
        )
    if field == "study_id":
        match = re.search(r"study id (\S+) is already enrolled", text)
        if match:
            return _("Study ID %(id)s is already enrolled.", id=match.group(1))
        return _("Use 2 to 32 letters, digits, '-' or '_' (for example JSCH-001).")
    if field == "initials":
        return _(
            "Use 2 to 4 Latin letters: the pinyin initials (e.g. WL), never the name, which "
            "would show in every list."
        )
    if field == "phone":
        return _phone_error(text)
    if field == "choices":
        return _("Choose every treatment option of the protocol.")
    if field == "start_date":
        if "in the past" in text:
            return _(
                "The first infusion is in the past: tick 'started before enrolment in "
                "Cadence' (earlier events are then not tracked) or correct the date."
            )
        return _("Enter the date of the first infusion.")
    if field == "recurrence_date":
        if "required" in text:
            return _("Enter the date of the recurrence (the primary endpoint counts from it).")
        return _("The recurrence cannot be after the first infusion.")
    if field == "sms_consent":
        return _("SMS consent must be recorded before enrolment.")
    if field == "sms_consent_date":
        if "future" in text:
            return _("Consent cannot be dated in the future.")
        if "after the first infusion" in text:
            return _("Consent cannot be dated after the first infusion.")
        return _("Enter the date the patient gave consent.")
    if field == "locale":
        return _("Choose Chinese or English.")
    if field == "timezone":
        return _("Choose a time zone from the list.")
    return text


def _phone_error(text: str) -> str:
    match = re.search(r"already used by (.+?): give a reason", text)
    if match:
        return _(
            "This mobile number is already used by %(ids)s. If it is shared (e.g. a family "
            "phone), give the reason below.",
            ids=match.group(1),
        )
    if "required" in text:
        return _("Enter the patient's mobile number.")
    if "not a mobile number" in text:
        return _("This is a landline or service number: SMS needs a mobile number.")
    if "not a valid number" in text:
        return _(
            "This number is not valid. Check the digits; a mainland mobile has 11 digits "
            "starting with 1, other countries need their code (e.g. +852)."
        )
    return _("This is not a phone number. Type the digits, with +country code if not mainland.")


_CALENDAR_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"is already done; a done event never moves"), "done"),
    (re.compile(r"only planned or confirmed events can be moved"), "closed"),
    (re.compile(r"is outside the window of .*give a reason"), "outside_window"),
    (re.compile(r"is before today .*give a reason"), "past"),
    (re.compile(r"would be (-?\d+) days after .*minimum is (\d+) days"), "min_interval"),
    (re.compile(r"would be closer than (\d+) days to"), "next_fixed"),
    (re.compile(r"progression cannot be recorded for a future date"), "future_progression"),
    (re.compile(r"salvage already started|is already in the calendar"), "salvage_started"),
    (re.compile(r"is off study"), "off_study"),
    (re.compile(r"a cancelled event cannot change status"), "cancelled"),
    (re.compile(r"no working day in the"), "no_working_day"),
)


def calendar_error(english: str) -> str:
    """A nurse-facing message for a CalendarError / CalendarActionError."""
    for pattern, code in _CALENDAR_PATTERNS:
        match = pattern.search(english or "")
        if match:
            return _calendar_message(code, match.groups())
    return english


def _calendar_message(code: str, groups: tuple[str | None, ...]) -> str:
    if code == "done":
        return _("This event is already done; a done event never moves.")
    if code == "closed":
        return _("Only planned or confirmed events can be moved.")
    if code == "outside_window":
        return _("The new date is outside the event's window: give a reason to move it there.")
    if code == "past":
        return _("The new date is in the past: give a reason to record a past date.")
    if code == "min_interval":
        return _(
            "Two infusions would be only %(days)s days apart; the protocol's minimum is "
            "%(minimum)s days.",
            days=groups[0],
            minimum=groups[1],
        )
    if code == "next_fixed":
        return _(
            "The next infusion can no longer move and would be closer than %(minimum)s days.",
            minimum=groups[0],
        )
    if code == "future_progression":
        return _("Progression cannot be recorded for a future date.")
    if code == "salvage_started":
        return _("Salvage chemoradiation is already in this calendar.")
    if code == "off_study":
        return _("This patient is off study: the calendar can no longer change.")
    if code == "cancelled":
        return _("A cancelled event cannot change status.")
    return _("No working day was found near this date.")
