"""The patient page's timeline: events grouped by phase, then by treatment cycle."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from app.models import CalendarEvent
from app.web.labels import WARNING_FLAGS

OPEN = ("planned", "confirmed")
# A cycle stays open on the page when it has events this close to today.
NEAR_DAYS_BEFORE = 21
NEAR_DAYS_AFTER = 42


@dataclass
class CycleGroup:
    """The events of one cycle (or of a phase part without cycles)."""

    phase: str
    cycle: int | None
    events: list[CalendarEvent] = field(default_factory=list)
    is_open: bool = False

    @property
    def first(self) -> date:
        """Date of the first event."""
        return min(e.date for e in self.events)

    @property
    def last(self) -> date:
        """Date of the last event."""
        return max(e.date for e in self.events)

    @property
    def done(self) -> int:
        """Events recorded as done."""
        return sum(1 for e in self.events if e.status == "done")

    @property
    def active_count(self) -> int:
        """Events not cancelled."""
        return sum(1 for e in self.events if e.status != "cancelled")

    @property
    def warnings(self) -> int:
        """Open events with a flag that needs attention."""
        return sum(
            1 for e in self.events if e.status in OPEN and set(e.flags or ()) & set(WARNING_FLAGS)
        )

    @property
    def anchor_id(self) -> str:
        """HTML id of the group."""
        return f"{self.phase}-c{self.cycle}" if self.cycle is not None else f"{self.phase}-other"


@dataclass
class PhaseGroup:
    """A phase and its cycles, in date order."""

    phase: str
    groups: list[CycleGroup] = field(default_factory=list)

    @property
    def first(self) -> date:
        """Date of the phase's first event."""
        return min(g.first for g in self.groups)

    @property
    def last(self) -> date:
        """Date of the phase's last event."""
        return max(g.last for g in self.groups)

    @property
    def is_open(self) -> bool:
        """Open when any of its cycles is."""
        return any(g.is_open for g in self.groups)

    @property
    def event_count(self) -> int:
        """Events in the phase, cancelled ones excluded."""
        return sum(g.active_count for g in self.groups)


def build(events: Sequence[CalendarEvent], today: date) -> list[PhaseGroup]:
    """Phases in order of their first event; events without a cycle join the running cycle."""
    ordered = sorted(events, key=lambda e: (e.date, e.id or 0))
    phases: dict[str, PhaseGroup] = {}
    cycles: dict[tuple[str, int | None], CycleGroup] = {}
    starts = _cycle_starts(ordered)
    for event in ordered:
        cycle = event.cycle if event.cycle is not None else _running_cycle(starts, event)
        phase = phases.setdefault(event.phase, PhaseGroup(event.phase))
        key = (event.phase, cycle)
        if key not in cycles:
            cycles[key] = CycleGroup(event.phase, cycle)
            phase.groups.append(cycles[key])
        cycles[key].events.append(event)
    for group in cycles.values():
        group.is_open = _near(group.events, today)
        group.events.sort(key=lambda e: (e.date, _kind_rank(e.kind), e.id or 0))
    result = list(phases.values())
    for phase in result:
        phase.groups.sort(key=lambda g: (g.cycle is None, g.first, g.cycle or 0))
    result.sort(key=lambda p: p.first)
    if result and not any(p.is_open for p in result):
        _open_next(result, today)
    return result


def _cycle_starts(events: Iterable[CalendarEvent]) -> dict[str, list[tuple[date, int]]]:
    starts: dict[str, list[tuple[date, int]]] = {}
    for e in events:
        if e.kind == "infusion" and e.cycle is not None and e.status != "cancelled":
            starts.setdefault(e.phase, []).append((e.date, e.cycle))
    for items in starts.values():
        items.sort()
    return starts


def _running_cycle(starts: dict[str, list[tuple[date, int]]], event: CalendarEvent) -> int | None:
    running = None
    for day, cycle in starts.get(event.phase, []):
        if day <= event.date:
            running = cycle
    return running


def _near(events: Iterable[CalendarEvent], today: date) -> bool:
    low, high = today - timedelta(days=NEAR_DAYS_BEFORE), today + timedelta(days=NEAR_DAYS_AFTER)
    for e in events:
        if e.status in OPEN and (low <= e.date <= high or e.window_end < today):
            return True
        if e.status in OPEN and set(e.flags or ()) & set(WARNING_FLAGS):
            return True
    return False


def _open_next(phases: list[PhaseGroup], today: date) -> None:
    """When nothing is near today, open the next group that still has open events."""
    for phase in phases:
        for group in phase.groups:
            if any(e.status in OPEN and e.date >= today for e in group.events):
                group.is_open = True
                return


_KIND_RANK = {
    k: i
    for i, k in enumerate(
        ("labs", "premedication", "infusion", "radiotherapy", "imaging", "endoscopy", "review")
    )
}


def _kind_rank(kind: str) -> int:
    return _KIND_RANK.get(kind, len(_KIND_RANK))


def counts(events: Sequence[CalendarEvent], today: date) -> dict[str, int]:
    """Headline numbers for the patient page."""
    active = [e for e in events if e.status != "cancelled"]
    return {
        "total": len(active),
        "done": sum(1 for e in active if e.status == "done"),
        "missed": sum(1 for e in active if e.status == "missed"),
        "upcoming": sum(1 for e in active if e.status in OPEN and e.date >= today),
        "overdue": sum(1 for e in active if e.status in OPEN and e.window_end < today),
        "flagged": sum(
            1 for e in active if e.status in OPEN and set(e.flags or ()) & set(WARNING_FLAGS)
        ),
    }
