"""How an audit entry's before/after data is shown: changed fields and calendar changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l

from app.models import EVENT_STATUSES, AuditEntry
from app.web import labels

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
}


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
    return str(value)


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
        old_text, new_text = _text(old), _text(new)
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
    return {"zh": "中文", "en": "English"}.get(value, value) if value else None


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
