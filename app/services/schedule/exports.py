"""Exports of a patient's calendar: an iCalendar file and the data of a printable page.

A copy for a contact (a caregiver) is ``neutral``: every event is named by what happens
(treatment day, blood test, scan ...), never by the protocol's title, and carries no note, so
no diagnosis or drug name reaches a phone or a sheet outside the patient's own hands.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from icalendar import Calendar, Event, Timezone

from app.models import CalendarEvent, Patient

PRODID = "-//Cadence//Trial follow-up calendar//EN"
# Kinds shown to the patient on the printed page (all of them are things the patient does).
PRINT_KINDS = (
    "infusion",
    "labs",
    "premedication",
    "imaging",
    "endoscopy",
    "radiotherapy",
    "checkin",
    "followup",
)
ICS_STATUS = {"planned": "TENTATIVE", "confirmed": "CONFIRMED", "done": "CONFIRMED"}
# What a contact's copy calls each kind of event: no drug, no diagnosis.
NEUTRAL_TITLES = {
    "infusion": _l("Treatment day at the hospital"),
    "labs": _l("Blood test at the hospital"),
    "premedication": _l("Medicine to take before the treatment day"),
    "imaging": _l("Scan at the hospital"),
    "endoscopy": _l("Endoscopy at the hospital"),
    "radiotherapy": _l("Treatment at the hospital (every working day)"),
    "checkin": _l("Questions about how the patient feels (by SMS)"),
    "followup": _l("The study team will get in touch"),
    "review": _l("Hospital visit"),
}


def _lang() -> str:
    locale = get_locale()
    return "zh" if locale is not None and locale.language == "zh" else "en"


def _title(event: CalendarEvent, *, neutral: bool = False) -> str:
    if neutral:
        return neutral_title(event.kind)
    return (event.title_zh if _lang() == "zh" else event.title_en) or event.title_en


def neutral_title(kind: str) -> str:
    """What a contact's copy calls an event of ``kind`` (no drug, no diagnosis)."""
    return str(NEUTRAL_TITLES.get(kind, NEUTRAL_TITLES["review"]))


def _uid(patient: Patient, event: CalendarEvent) -> str:
    digest = hashlib.sha256(f"{patient.protocol_code}|{patient.study_id}".encode()).hexdigest()
    return f"{event.key}.{digest[:16]}@cadence"


def patient_ics(patient: Patient, *, now: datetime, neutral: bool = False) -> bytes:
    """The patient's calendar as iCalendar (RFC 5545) bytes, in the current locale.

    Call it inside flask_babel.force_locale(patient.locale) to get the patient's language.

    Calendar events are whole days in the patient's time zone (VALUE=DATE, so they stay on the
    same day wherever the file is opened); the zone is declared with a VTIMEZONE and
    X-WR-TIMEZONE; timestamps are UTC. Cancelled and missed events are left out; UIDs are stable,
    so importing a newer file updates the events. ``neutral``: a contact's copy (see above).
    """
    tz = ZoneInfo(patient.timezone)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", _("Follow-up calendar %(id)s", id=patient.study_id))
    cal.add("x-wr-timezone", patient.timezone)
    events = [e for e in patient.events if e.status in ICS_STATUS]
    if events:
        first = min(e.date for e in events)
        last = max(e.date for e in events)
        cal.add_component(_vtimezone(tz, first, last))
    stamp = now.astimezone(ZoneInfo("UTC"))
    for event in events:
        cal.add_component(_vevent(patient, event, stamp, neutral=neutral))
    return cal.to_ical()


def _vtimezone(tz: ZoneInfo, first: date, last: date) -> Timezone:
    return _vtimezone_for_years(tz.key, first.year, last.year)


@lru_cache(maxsize=64)
def _vtimezone_for_years(key: str, first_year: int, last_year: int) -> Timezone:
    """VTIMEZONE of a zone over whole years (slow to build, so built once and reused)."""
    return Timezone.from_tzinfo(
        ZoneInfo(key), key, first_date=date(first_year, 1, 1), last_date=date(last_year + 1, 1, 1)
    )


def _vevent(
    patient: Patient, event: CalendarEvent, stamp: datetime, *, neutral: bool = False
) -> Event:
    item = Event()
    item.add("uid", _uid(patient, event))
    item.add("dtstamp", stamp)
    item.add("dtstart", event.date)
    item.add("dtend", event.date + timedelta(days=1))
    item.add("summary", _title(event, neutral=neutral))
    item.add("description", _description(event, neutral=neutral))
    item.add("status", ICS_STATUS[event.status])
    item.add("transp", "TRANSPARENT")
    item.add("categories", [event.kind])
    if event.updated_at:
        item.add("last-modified", event.updated_at.astimezone(ZoneInfo("UTC")))
    return item


def _description(event: CalendarEvent, *, neutral: bool = False) -> str:
    window = _(
        "Can be done from %(start)s to %(end)s",
        start=event.window_start.isoformat(),
        end=event.window_end.isoformat(),
    )
    if neutral:
        return window
    note = (event.details or {}).get("note_zh" if _lang() == "zh" else "note_en")
    return window + (f"\n{note}" if note else "")


@dataclass(frozen=True)
class PrintLine:
    """One line of the printed calendar (consecutive radiotherapy days share one line)."""

    first: date
    last: date
    kind: str
    title: str
    window_start: date
    window_end: date
    count: int = 1


def print_lines(
    patient: Patient, *, start: date, weeks: int, neutral: bool = False
) -> list[PrintLine]:
    """Upcoming open events from `start` for `weeks` weeks, radiotherapy runs merged.

    Titles are in the current locale (use force_locale(patient.locale)); ``neutral``: a
    contact's copy.
    """
    end = start + timedelta(weeks=weeks)
    events = sorted(
        (
            e
            for e in patient.events
            if start <= e.date < end
            and e.status in ("planned", "confirmed")
            and e.kind in PRINT_KINDS
        ),
        key=lambda e: (e.date, PRINT_KINDS.index(e.kind), e.id or 0),
    )
    lines: list[PrintLine] = []
    for e in events:
        previous = lines[-1] if lines else None
        if (
            e.kind == "radiotherapy"
            and previous is not None
            and previous.kind == "radiotherapy"
            and (e.date - previous.last).days <= 4
        ):
            lines[-1] = PrintLine(
                first=previous.first,
                last=e.date,
                kind="radiotherapy",
                title=previous.title,
                window_start=previous.window_start,
                window_end=e.window_end,
                count=previous.count + 1,
            )
            continue
        title = _title(e, neutral=neutral)
        if e.kind == "radiotherapy" and not neutral:
            title = _("Radiotherapy (every working day)")
        lines.append(
            PrintLine(
                first=e.date,
                last=e.date,
                kind=e.kind,
                title=title,
                window_start=e.window_start,
                window_end=e.window_end,
            )
        )
    return lines
