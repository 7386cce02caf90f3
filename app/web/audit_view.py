"""How an audit entry's before/after data is shown: changed fields and calendar changes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from babel.dates import get_day_names
from flask_babel import format_datetime, get_locale
from flask_babel import lazy_gettext as _l

from app.models import EVENT_STATUSES, AuditEntry
from app.web import labels, reasons, terms

FIELD_LABELS = {
    "status": _l("Status"),
    "note": _l("Note"),
    "role": _l("Role"),
    "active": _l("Active"),
    "locale": _l("Language"),
    "display_name": _l("Name"),
    "must_change_password": _l("Must change password"),
    "study_id": _l("Study ID"),
    "initials": _l("Initials"),
    "phone": _l("Mobile number"),
    "timezone": _l("Time zone"),
    "sms_consent": _l("SMS consent"),
    "sms_consent_date": _l("Date of SMS consent"),
    "start_date": _l("First infusion"),
    "choices": _l("Treatment"),
    "events": _l("Events"),
    "username": _l("Username"),
    "level": _l("Level"),
    "kind": _l("Kind"),
    "summary": _l("Summary"),
    "reasons": _l("Reasons"),
    "assigned_to": _l("Assigned to"),
    "resolution_action": _l("What was done"),
    "resolution_note": _l("Note"),
    "sms_opted_out_at": _l("Opted out of SMS at"),
    "sms_opted_in_at": _l("Opted back in at"),
    "acknowledged_at": _l("Acknowledged at"),
    "resolved_at": _l("Resolved at"),
    "time_to_acknowledge_seconds": _l("Time to acknowledge"),
    "priority": _l("Level"),
    "intent": _l("Message type"),
    "id": _l("Number"),
    "name": _l("Name"),
    "weekdays": _l("Days"),
    "hours": _l("Hours"),
    "started_before_cadence": _l("Started before Cadence"),
    "not_tracked": _l("Events not tracked"),
    "warnings": _l("Warnings"),
    "channel": _l("Channel"),
    "alert": _l("Alert"),
    "alert_id": _l("Alert"),
    "event_key": _l("Event"),
    "phone_role": _l("Role"),
    "action": _l("What was done"),
    "answers": _l("Answers"),
    "items": _l("Questions"),
    "delivery_blocked": _l("No SMS possible"),
    "clinic_timezone": _l("Time zone"),
    "contacts": _l("Contacts"),
    "relation": _l("Relation"),
    "messages": _l("Messages"),
    "position": _l("Order"),
    "scopes": _l("Consent covers"),
    "scopes_in_force": _l("Consent covers"),
    "method": _l("Method"),
    "witness": _l("Witness"),
    "recorded_on": _l("Recorded on"),
    "recorded_by": _l("Recorded by"),
    "needs_confirmation": _l("To be confirmed"),
    "withdrawn_at": _l("Withdrawn at"),
    "withdrawn_by": _l("Withdrawn by"),
    "opted_out_at": _l("Opted out of SMS at"),
    "consent": _l("Consent"),
    "contact_id": _l("Contact"),
}
CONTACT_CODED = ("relation", "method")
CONTACT_CODE_LISTS = ("messages", "scopes", "scopes_in_force")

# Stored English summaries written by the services, shown in the reader's language.
SUMMARY_LABELS = {
    "opted out of SMS": _l("Opted out of SMS"),
    "opt-out keyword by SMS": _l("Opt-out keyword by SMS"),
    "opted back in to SMS": _l("Opted back in to SMS"),
    "reschedule request": _l("Reschedule request"),
    "message to read": _l("Message to read"),
}
SYMPTOM_GRADE = re.compile(r"(?P<code>[a-z_]+) G(?P<grade>\d)")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONE = re.compile(r"(?:Africa|America|Asia|Australia|Europe|Pacific)/[A-Za-z_]+")
ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


@dataclass(frozen=True)
class FieldChange:
    """One field: its label, the old and the new value (as text)."""

    label: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class DateChange:
    """One event of a calendar change."""

    key: str
    old_date: date | None
    new_date: date | None
    old_status: str | None
    new_status: str | None
    left_window: bool


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(_l("yes") if value else _l("no"))
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return moment_text(str(value))


def moment_text(text: str) -> str:
    """An ISO instant in the clinic time zone and the reader's locale; other text unchanged."""
    if ZONE.fullmatch(text):
        return labels.timezone_name(text)
    if not ISO_MOMENT.match(text):
        return text
    try:
        return format_datetime(datetime.fromisoformat(text), "medium")
    except ValueError:
        return text


def reason_text(reason: str | None) -> str:
    """An audit reason in the reader's language (triage reasons and known service reasons)."""
    if not reason:
        return ""
    parts = [part.strip() for part in str(reason).split(";") if part.strip()]
    shown = [reasons.reason_label(part) for part in parts]
    return "；".join(shown) if labels.is_zh() else "; ".join(shown)


def summary_text(summary: str) -> str:
    """An alert summary ('diarrhea G2, 38.2 C', 'message to read') in the reader's language."""
    text = str(summary)
    if text.startswith("check-in: "):
        return f"{_l('Check-in')}: {summary_text(text.removeprefix('check-in: '))}"
    if text in SUMMARY_LABELS:
        return str(SUMMARY_LABELS[text])
    parts = []
    for part in text.split(", "):
        match = SYMPTOM_GRADE.fullmatch(part)
        if match:
            grade = str(_l("grade %(num)s", num=match.group("grade")))
            parts.append(f"{labels.symptom_label(match.group('code'))} {grade}")
        elif part in labels.SYMPTOM_LABELS:
            parts.append(labels.symptom_label(part))
        else:
            parts.append(reasons.reason_label(part))
    return ("、" if labels.is_zh() else ", ").join(parts)


def _joined(parts: Any) -> str:
    return ("、" if labels.is_zh() else ", ").join(str(p) for p in parts)


def _answers_text(answers: dict[str, Any]) -> str:
    """Check-in answers {'F': 36.8, 'S': 0} as 'Temperature 36.8, Difficulty swallowing 0'."""
    return _joined(
        f"{terms.answer_code_label(str(code))} {value}" for code, value in answers.items()
    )


def weekdays_text(value: str) -> str:
    """'mon,tue' or 'mon-fri' as the reader's weekday names (Babel)."""
    names = get_day_names("abbreviated", locale=get_locale() or "en")
    text = str(value)
    for index, day in enumerate(WEEKDAYS):
        text = re.sub(rf"\b{day}\b", names[index], text)
    return text.replace(",", "、" if labels.is_zh() else ", ")


def _value_text(key: str, value: Any) -> str | None:
    """A field's value for people: codes translated by field, instants formatted."""
    if value is None or value == "":
        return None if value is None else ""
    coded = {
        "level": labels.level_label,
        "priority": labels.level_label,
        "intent": labels.intent_label,
        "kind": labels.alert_kind_label,
        "resolution_action": labels.resolution_action_label,
        "action": labels.resolution_action_label,
    }
    if key in coded:
        return coded[key](str(value))
    if key == "reasons" and isinstance(value, list):
        return reason_text(";".join(str(v) for v in value))
    if key == "summary":
        return summary_text(str(value))
    if key in ("timezone", "clinic_timezone"):
        return labels.timezone_name(str(value))
    if key == "answers" and isinstance(value, dict):
        return _answers_text(value)
    if key == "items" and isinstance(value, list):
        return _joined(terms.answer_code_label(str(code)) for code in value)
    if key in CONTACT_CODED:
        return labels.contact_code_label(str(value))
    if key in CONTACT_CODE_LISTS and isinstance(value, list):
        return _joined(labels.contact_code_label(str(code)) for code in value)
    if key == "contacts" and isinstance(value, list):
        return _joined(_contact_text(c) for c in value if isinstance(c, dict))
    if key in ("recorded_by", "withdrawn_by"):
        return labels.actor_label(str(value))
    if key == "weekdays":
        return weekdays_text(str(value))
    if key == "choices" and isinstance(value, dict):
        return terms.choices_text(value)
    if key == "event_key":
        return labels.event_key_label(str(value))
    if key == "channel":
        return labels.channel_label(str(value))
    if key == "time_to_acknowledge_seconds" and isinstance(value, int):
        return labels.duration_label(value)
    if key in ("assigned_to", "acknowledged_by", "resolved_by"):
        return labels.actor_label(str(value))
    return _text(value)


def _contact_text(contact: dict[str, Any]) -> str:
    """'Daughter 王* +86139****9001' from a contact's audit snapshot."""
    relation = str(contact.get("relation") or "")
    parts = [labels.contact_code_label(relation)]
    shown = ("phone",) if relation == "self" else ("name", "phone")  # the patient: no initials
    parts += [str(contact[k]) for k in shown if contact.get(k)]
    return " ".join(parts)


def field_changes(entry: AuditEntry) -> list[FieldChange]:
    """Fields that differ between before and after (calendar change lists excluded)."""
    before = entry.before or {}
    after = entry.after or {}
    result = []
    for key in [*before, *[k for k in after if k not in before]]:
        if key == "changes":
            continue
        old, new = before.get(key), after.get(key)
        if old == new and key in before:
            continue
        label = FIELD_LABELS.get(key)
        old_text, new_text = _value_text(key, old), _value_text(key, new)
        if key == "status":
            old_text, new_text = _status_text(old), _status_text(new)
        if key == "locale":
            old_text, new_text = _language(old), _language(new)
        if key == "role":
            old_text = labels.role_label(old) if old else None
            new_text = labels.role_label(new) if new else None
        result.append(
            FieldChange(str(label) if label else labels.humanise(key), old_text, new_text)
        )
    return result


def _status_text(value: Any) -> str | None:
    """Patient statuses and event statuses share the 'status' key; label each by its value."""
    if not value:
        return None
    if value in labels.ALERT_STATUS_LABELS:
        return labels.alert_status_label(value)
    if value in EVENT_STATUSES:
        return labels.event_status_label(value)
    if value in labels.CHECKIN_STATUS_LABELS:
        return labels.checkin_status_label(value)
    return labels.patient_status_label(value)


def _language(value: Any) -> str | None:
    return labels.language_name(value) if value else None


def date_changes(entry: AuditEntry) -> list[DateChange]:
    """The calendar changes recorded with a reschedule or a treatment decision."""
    raw = (entry.after or {}).get("changes") or []
    result = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        result.append(
            DateChange(
                key=str(item.get("key", "")),
                old_date=_date(item.get("old_date")),
                new_date=_date(item.get("new_date")),
                old_status=item.get("old_status"),
                new_status=item.get("new_status"),
                left_window=bool(item.get("left_window")),
            )
        )
    return result


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None
