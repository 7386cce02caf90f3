"""What a calendar change does, in words a nurse reads before confirming it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from flask_babel import gettext as _
from flask_babel import ngettext

from app.domain.calendar import CalendarChange, PlannedEvent
from app.models import CalendarEvent, Patient
from app.web.labels import localised


@dataclass(frozen=True)
class CascadeItem:
    """One event the change touches."""

    key: str
    title: str
    kind: str
    old_date: date | None
    new_date: date | None
    old_status: str | None
    new_status: str | None
    left_window: bool
    is_target: bool = False

    @property
    def delta(self) -> int | None:
        """Days moved (None when not moved)."""
        if self.old_date is None or self.new_date is None or self.old_date == self.new_date:
            return None
        return (self.new_date - self.old_date).days

    @property
    def added(self) -> bool:
        """True for a new event."""
        return self.old_status is None

    @property
    def cancelled(self) -> bool:
        """True when the change cancels this event."""
        return self.new_status == "cancelled" and self.old_status not in (None, "cancelled")


@dataclass(frozen=True)
class CascadeSummary:
    """A sentence per effect, and the list of touched events (target first, then by date)."""

    lines: list[str]
    items: list[CascadeItem]
    moved: int = 0
    left_window: int = 0
    added: int = 0
    cancelled: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing would change."""
        return not self.items


def signed(days: int) -> str:
    """+7 / -3 / 0."""
    return f"+{days}" if days > 0 else str(days)


def _items(change: CalendarChange, target_key: str | None) -> list[CascadeItem]:
    new_events = {e.key: e for e in change.events}
    items = []
    for c in change.changes:
        event: PlannedEvent | None = new_events.get(c.key)
        items.append(
            CascadeItem(
                key=c.key,
                title=localised(event) if event else c.key,
                kind=event.kind if event else "",
                old_date=c.old_date,
                new_date=c.new_date,
                old_status=c.old_status,
                new_status=c.new_status,
                left_window=c.left_window,
                is_target=c.key == target_key,
            )
        )
    items.sort(key=lambda i: (not i.is_target, i.new_date or i.old_date or date.max, i.key))
    return items


def target_label(event: CalendarEvent | PlannedEvent) -> str:
    """'Cycle 3' for an infusion, else the event's title."""
    if event.kind == "infusion" and event.cycle is not None:
        return _("Cycle %(num)d", num=event.cycle)
    return localised(event)


def reschedule_summary(
    change: CalendarChange, target: CalendarEvent, announced: int | None = None
) -> CascadeSummary:
    """'Cycle 3 and 27 later events move +7 days; 2 events leave their window.'

    ``announced``: how many of the moves the patient's schedule-change SMS names or counts.
    """
    items = _items(change, target.key)
    moved = [i for i in items if i.delta is not None]
    target_item = next((i for i in items if i.is_target), None)
    others = [i for i in moved if not i.is_target]
    lines: list[str] = []
    if target_item is None or target_item.delta is None:
        lines.append(_("Nothing changes: the event is already on this date."))
    else:
        lines.append(_move_line(target_label(target), target_item.delta, others))
    lines.extend(_effect_lines(items))
    if announced:
        lines.append(_announced_line(announced))
    return CascadeSummary(
        lines=lines,
        items=items,
        moved=len(moved),
        left_window=sum(1 for i in items if i.left_window),
        added=sum(1 for i in items if i.added),
        cancelled=sum(1 for i in items if i.cancelled),
    )


def _announced_line(announced: int) -> str:
    """What the patient is told: one SMS about the appointments among the moves."""
    return ngettext(
        "The patient gets one SMS about %(num)d moved appointment; the other moved events "
        "keep their own reminders.",
        "The patient gets one SMS about %(num)d moved appointments; the other moved events "
        "keep their own reminders.",
        announced,
    )


def _move_line(label: str, delta: int, others: list[CascadeItem]) -> str:
    deltas = {i.delta for i in others}
    if not others:
        return _("%(target)s moves %(delta)s days.", target=label, delta=signed(delta))
    if deltas == {delta}:
        return ngettext(
            "%(target)s and %(num)d later event move %(delta)s days.",
            "%(target)s and %(num)d later events move %(delta)s days.",
            len(others),
            target=label,
            delta=signed(delta),
        )
    low = min(d for d in deltas if d is not None)
    high = max(d for d in deltas if d is not None)
    return ngettext(
        "%(target)s moves %(delta)s days; %(num)d later event moves %(low)s to %(high)s days.",
        "%(target)s moves %(delta)s days; %(num)d later events move %(low)s to %(high)s days.",
        len(others),
        target=label,
        delta=signed(delta),
        low=signed(low),
        high=signed(high),
    )


def _effect_lines(items: list[CascadeItem]) -> list[str]:
    lines = []
    left = sum(1 for i in items if i.left_window)
    if left:
        lines.append(
            ngettext("%(num)d event leaves its window.", "%(num)d events leave their window.", left)
        )
    else:
        lines.append(_("Every event stays inside its window."))
    added = sum(1 for i in items if i.added)
    if added:
        lines.append(ngettext("%(num)d event is added.", "%(num)d events are added.", added))
    cancelled = sum(1 for i in items if i.cancelled)
    if cancelled:
        lines.append(
            ngettext("%(num)d event is cancelled.", "%(num)d events are cancelled.", cancelled)
        )
    return lines


def decision_summary(change: CalendarChange) -> CascadeSummary:
    """What a treatment decision does: events moved, added, cancelled, out of window."""
    items = _items(change, None)
    moved = [i for i in items if i.delta is not None]
    lines = []
    if moved:
        lines.append(ngettext("%(num)d event moves.", "%(num)d events move.", len(moved)))
    flagged = [i for i in items if not i.added and not i.cancelled and i.delta is None]
    if flagged:
        lines.append(
            ngettext(
                "%(num)d event is marked for review.",
                "%(num)d events are marked for review.",
                len(flagged),
            )
        )
    lines.extend(_effect_lines(items))
    if not items:
        lines = [_("The calendar does not change.")]
    return CascadeSummary(
        lines=lines,
        items=items,
        moved=len(moved),
        left_window=sum(1 for i in items if i.left_window),
        added=sum(1 for i in items if i.added),
        cancelled=sum(1 for i in items if i.cancelled),
    )


def calendar_fingerprint(patient: Patient) -> str:
    """A digest of the patient's calendar, to notice a change between preview and confirm."""
    return fingerprint_events(patient.events, patient.status)


def fingerprint_events(events: Iterable[CalendarEvent], status: str = "") -> str:
    """Digest of (key, date, status) of every event."""
    parts = sorted(f"{e.key}|{e.date.isoformat()}|{e.status}" for e in events)
    digest = hashlib.sha256("\n".join([status, *parts]).encode())
    return digest.hexdigest()[:20]
