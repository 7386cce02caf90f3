"""How an audit entry's before/after data is shown: changed fields and calendar changes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l

from app.models import EVENT_STATUSES, AuditEntry
from app.web import labels, reasons

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
}

# Stored English summaries written by the services, shown in the reader's language.
SUMMARY_LABELS = {
    "opted out of SMS": _l("Opted out of SMS"),
    "opt-out keyword by SMS": _l("Opt-out keyword by SMS"),
    "opted back in to SMS": _l("Opted back in to SMS"),
}
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
    }
    if key in coded:
        return coded[key](str(value))
    if key == "reasons" and isinstance(value, list):
        return reason_text(";".join(str(v) for v in value))
    if key == "summary" and str(value) in SUMMARY_LABELS:
        return str(SUMMARY_LABELS[str(value)])
    if key == "time_to_acknowledge_seconds" and isinstance(value, int):
        return labels.duration_label(value)
    if key in ("assigned_to", "acknowledged_by", "resolved_by"):
        return labels.actor_label(str(value))
    return _text(value)


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
    if value in EVENT_STATUSES:
        return labels.event_status_label(value)
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
