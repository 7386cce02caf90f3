"""The trial calendar engine: protocol + choices + start date -> planned events, and changes.

Pure domain code: dates are local calendar dates of the patient's time zone, the working-day
calendar and `today` are arguments. The engine has no trial-specific code: everything comes
from the protocol file (app/protocols/*.yaml).

Engine-owned keys in `PlannedEvent.details` (JSON-serialisable, persisted with the event):
- "working_day": the event must fall on a working day;
- "offset_days": the event's planned date is its anchor's date + this many days;
- "sequence": "next_working_day" for radiotherapy fractions (the day after the previous one);
- "min_interval_days": for infusions, the least number of days after the previous infusion;
- "placement": "latest" for events put on the latest allowed day of their window (labs);
- "fasting": {food_hours, water_hours} before the test; "contrast": the imaging contrast;
- "closure": the clinic closure behind a `closure_in_nadir` flag;
- "decisions": {flag: {decision, date, note}}: a clinician's decision about a flag (the flag
  is not raised again while the event keeps that date);
- "options": a progression review's choices (reviews stored before 2026-12-08 kept them as a
  list under "decisions": `flag_decisions` reads such a list as no decision yet).
An event without "offset_days" and with an anchor sits on the protocol's own grid and moves by
the same number of days as its anchor's planned date (later cycles, delay-following imaging).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from app.domain.protocol import (
    PHASE_NAMES,
    Assessment,
    CycleBlock,
    DrugDose,
    Fasting,
    Phase,
    Protocol,
    RadiotherapyBlock,
    Window,
)
from app.domain.working_days import WorkingDays

KINDS = (
    "infusion",
    "labs",
    "premedication",
    "imaging",
    "endoscopy",
    "checkin",
    "followup",
    "radiotherapy",
    "review",  # a task for the team, e.g. decide what to do after progression
)
PHASES = PHASE_NAMES
STATUSES = ("planned", "confirmed", "done", "missed", "cancelled", "not_tracked")
OPEN_STATUSES = ("planned", "confirmed")
DOSE_KINDS = ("infusion", "radiotherapy")
CYCLE_KINDS = ("infusion", "labs", "premedication", "checkin")

# Flags recomputed whenever an event is placed on a date.
FLAG_MOVED = "moved_non_working_day"
FLAG_NO_WORKING_DAY = "no_working_day_in_window"
FLAG_OUTSIDE_WINDOW = "outside_window"
FLAG_MIN_INTERVAL = "min_interval_enforced"
FLAG_ON_NON_WORKING_DAY = "on_non_working_day"
FLAG_OVERDUE = "overdue"
PLACEMENT_FLAGS = frozenset(
    {
        FLAG_MOVED,
        FLAG_NO_WORKING_DAY,
        FLAG_OUTSIDE_WINDOW,
        FLAG_MIN_INTERVAL,
        FLAG_ON_NON_WORKING_DAY,
        FLAG_OVERDUE,
    }
)
# Flags that record what happened to an event.
FLAG_RESCHEDULED = "rescheduled"
FLAG_SHIFTED = "shifted"
FLAG_PAUSED = "paused_for_salvage"
FLAG_STOPPED_FOR_SALVAGE = "stopped_for_salvage"
FLAG_PROGRESSION = "progression_recorded"
FLAG_TREATMENT_STOPPED = "treatment_stopped"
FLAG_OFF_STUDY = "off_study"
FLAG_SUPERSEDED = "superseded"
FLAG_BEFORE_CADENCE = "before_cadence"
# Flags for a clinician to decide on ("decisions waiting").
FLAG_CLOSURE_IN_NADIR = "closure_in_nadir"
FLAG_RT_PROLONGED = "rt_prolonged"
DECISION_FLAGS = (FLAG_CLOSURE_IN_NADIR, FLAG_RT_PROLONGED, FLAG_NO_WORKING_DAY)
# Flags for what the salvage block did to routine imaging.
FLAG_SUSPENDED_FOR_RT = "suspended_for_radiotherapy"
# A routine imaging visit this close to the response assessment after radiotherapy is replaced by
# it (the same scans a few days apart, or a CT on the day of the response barium study).
RESPONSE_REPLACES_ROUTINE_DAYS = 28
FLAG_PROGRESSION_ENDS_IMAGING = "imaging_ended_at_progression"
# An assessment that could not go in the days before its infusion (a closure) and went earlier.
FLAG_IMAGING_EARLY = "imaging_early"

_KIND_ORDER = {kind: i for i, kind in enumerate(KINDS)}
_SEARCH_LIMIT_DAYS = 60


class CalendarError(ValueError):
    """A calendar change that cannot be made as asked (the message says why)."""


class RescheduleError(CalendarError):
    """A reschedule that is not allowed (done event, outside window without reason, ...)."""


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class PlannedEvent:
    """One event of a patient's calendar; `key` is stable and never derived from dates."""

    key: str
    kind: str
    phase: str
    cycle: int | None
    date: date
    window_start: date
    window_end: date
    title_en: str
    title_zh: str
    drugs: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    moved_from: date | None = None
    anchor: str | None = None
    status: str = "planned"

    @property
    def in_window(self) -> bool:
        """True when the date is inside the event's window."""
        return self.window_start <= self.date <= self.window_end

    @property
    def is_open(self) -> bool:
        """True for planned or confirmed events (they can still move or be cancelled)."""
        return self.status in OPEN_STATUSES

    def to_json(self) -> dict[str, Any]:
        """JSON form (dates as YYYY-MM-DD)."""
        return {
            "key": self.key,
            "date": self.date.isoformat(),
            "kind": self.kind,
            "phase": self.phase,
            "cycle": self.cycle,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "moved_from": self.moved_from.isoformat() if self.moved_from else None,
            "flags": list(self.flags),
            "drugs": list(self.drugs),
            "title_en": self.title_en,
            "title_zh": self.title_zh,
            "status": self.status,
            "anchor": self.anchor,
            "details": self.details,
            **self._clinical_fields(),
        }

    def _clinical_fields(self) -> dict[str, Any]:
        """`contrast` for imaging and `fasting` where the test has a fasting rule."""
        fields: dict[str, Any] = {}
        if self.kind == "imaging":
            fields["contrast"] = self.details.get("contrast")
        if "fasting" in self.details:
            fields["fasting"] = self.details["fasting"]
        return fields

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlannedEvent:
        """Rebuild an event from `to_json()` output."""
        moved = data.get("moved_from")
        return cls(
            key=data["key"],
            kind=data["kind"],
            phase=data["phase"],
            cycle=data.get("cycle"),
            date=date.fromisoformat(data["date"]),
            window_start=date.fromisoformat(data["window_start"]),
            window_end=date.fromisoformat(data["window_end"]),
            title_en=data["title_en"],
            title_zh=data["title_zh"],
            drugs=tuple(data.get("drugs", ())),
            details=dict(data.get("details", {})),
            flags=tuple(data.get("flags", ())),
            moved_from=date.fromisoformat(moved) if moved else None,
            anchor=data.get("anchor"),
            status=data.get("status", "planned"),
        )


@dataclass(frozen=True)
class EventChange:
    """What happened to one event in a calendar change (old_* are None for added events)."""

    key: str
    old_date: date | None
    new_date: date | None
    old_status: str | None
    new_status: str | None
    left_window: bool
    flags_added: tuple[str, ...] = ()

    @property
    def added(self) -> bool:
        """True for an event the change created."""
        return self.old_status is None

    @property
    def moved(self) -> bool:
        """True when an existing event got a new date."""
        return self.old_date is not None and self.old_date != self.new_date


@dataclass(frozen=True)
class CalendarChange:
    """The full new calendar (no event removed, same keys) and what changed."""

    events: list[PlannedEvent]
    changes: list[EventChange]

    @property
    def moved_count(self) -> int:
        """Number of existing events that got a new date."""
        return sum(1 for c in self.changes if c.moved)

    @property
    def left_window_keys(self) -> list[str]:
        """Keys of changed events that are now outside their window."""
        return [c.key for c in self.changes if c.left_window]

    @property
    def added_keys(self) -> list[str]:
        """Keys of events the change created."""
        return [c.key for c in self.changes if c.added]

    @property
    def cancelled_keys(self) -> list[str]:
        """Keys of events the change cancelled."""
        return [
            c.key
            for c in self.changes
            if c.new_status == "cancelled" and c.old_status not in (None, "cancelled")
        ]

    def event(self, key: str) -> PlannedEvent:
        """The new version of one event."""
        for item in self.events:
            if item.key == key:
                return item
        raise KeyError(key)


# --------------------------------------------------------------------------- placement


@dataclass(frozen=True)
class _Placement:
    date: date
    flags: tuple[str, ...]
    moved_from: date | None


class _Context:
    """What every placement needs: the protocol's rules and the working-day calendar."""

    def __init__(self, protocol: Protocol, working_days: WorkingDays) -> None:
        self.protocol = protocol
        self.working_days = working_days
        self.prefer_earlier = protocol.settings.non_working_day_tie_break == "earlier"

    def works(self, day: date) -> bool:
        """True when the clinic is open on `day`."""
        return self.working_days.is_working_day(day)

    def next_working_day(self, day: date) -> date:
        """`day` itself if it is a working day, else the first working day after it."""
        for step in range(_SEARCH_LIMIT_DAYS):
            candidate = day + timedelta(days=step)
            if self.works(candidate):
                return candidate
        raise CalendarError(f"no working day in the {_SEARCH_LIMIT_DAYS} days from {day}")

    def place(
        self,
        nominal: date,
        window_start: date,
        window_end: date,
        working_day: bool,
        not_before: date | None = None,
        placement: str = "nearest",
    ) -> _Placement:
        """Put an event on its planned date, or the nearest allowed day (see module docs).

        With `placement="latest"` the event goes on the latest working day of its window
        (labs: as close to the infusion as possible, never on it).
        """
        if placement == "latest":
            chosen, flags = self._latest(nominal, window_start, window_end, working_day)
        else:
            chosen, flags = self._choose(nominal, window_start, window_end, working_day, not_before)
        if not window_start <= chosen <= window_end:
            flags.append(FLAG_OUTSIDE_WINDOW)
        return _Placement(chosen, tuple(flags), nominal if chosen != nominal else None)

    def _choose(
        self,
        nominal: date,
        window_start: date,
        window_end: date,
        working_day: bool,
        not_before: date | None,
    ) -> tuple[date, list[str]]:
        def spaced(day: date) -> bool:
            return not_before is None or day >= not_before

        def allowed(day: date) -> bool:
            return spaced(day) and (not working_day or self.works(day))

        if allowed(nominal):
            return nominal, []
        flags = []
        if working_day and not self.works(nominal):
            flags.append(FLAG_MOVED)
        if not spaced(nominal):
            flags.append(FLAG_MIN_INTERVAL)
        span = _days(min(window_start, nominal), max(window_end, nominal))
        best = self._nearest(nominal, [d for d in span if allowed(d)])
        if best is not None:
            return best, flags
        spaced_only = self._nearest(nominal, [d for d in span if spaced(d)])
        if spaced_only is not None:
            flags = [f for f in flags if f != FLAG_MOVED] + [FLAG_NO_WORKING_DAY]
            return spaced_only, flags
        assert not_before is not None
        later = self.next_working_day(not_before) if working_day else not_before
        return later, [FLAG_MIN_INTERVAL]

    def _latest(
        self, nominal: date, window_start: date, window_end: date, working_day: bool
    ) -> tuple[date, list[str]]:
        candidates = [
            d for d in _days(window_start, window_end) if not working_day or self.works(d)
        ]
        if not candidates:
            return nominal, [FLAG_NO_WORKING_DAY]
        chosen = candidates[-1]
        return chosen, [FLAG_MOVED] if chosen != nominal and not self.works(nominal) else []

    def latest_working_day(self, first: date, last: date) -> date | None:
        """The latest working day from `first` to `last`, if there is one."""
        found = [d for d in _days(first, last) if self.works(d)] if first <= last else []
        return found[-1] if found else None

    def closure_around(self, day: date) -> tuple[date, date] | None:
        """The run of non-working days containing `day`, if it is a closure (long enough)."""
        if self.works(day):
            return None
        first = last = day
        for _ in range(_SEARCH_LIMIT_DAYS):
            if self.works(first - timedelta(days=1)):
                break
            first -= timedelta(days=1)
        for _ in range(_SEARCH_LIMIT_DAYS):
            if self.works(last + timedelta(days=1)):
                break
            last += timedelta(days=1)
        if (last - first).days + 1 < self.protocol.settings.closure_min_days:
            return None
        return first, last

    def is_make_up_day(self, day: date) -> bool:
        """True for a weekend day the clinic works (调休 make-up day around a closure)."""
        return day.weekday() >= 5 and self.works(day)

    def _nearest(self, nominal: date, candidates: Sequence[date]) -> date | None:
        if not candidates:
            return None
        side = 1 if self.prefer_earlier else -1
        return min(candidates, key=lambda d: (abs((d - nominal).days), side * (d - nominal).days))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _nominal(event: PlannedEvent) -> date:
    """The date the protocol (or the nurse's last move) planned before any working-day move."""
    if FLAG_RESCHEDULED in event.flags or event.moved_from is None:
        return event.date
    return event.moved_from


def _strip(flags: Iterable[str], *also: str) -> tuple[str, ...]:
    """Flags without the placement flags (and without `also`)."""
    return tuple(f for f in flags if f not in PLACEMENT_FLAGS and f not in also)


def _add_flags(flags: Iterable[str], *new: str) -> tuple[str, ...]:
    result = list(flags)
    for flag in new:
        if flag not in result:
            result.append(flag)
    return tuple(result)


def _sort_key(event: PlannedEvent) -> tuple[date, int, str]:
    return (event.date, _KIND_ORDER.get(event.kind, len(KINDS)), event.key)


def _sorted(events: Iterable[PlannedEvent]) -> list[PlannedEvent]:
    return sorted(events, key=_sort_key)


def _window(nominal: date, window: Window) -> tuple[date, date]:
    return nominal - timedelta(days=window.before), nominal + timedelta(days=window.after)


# --------------------------------------------------------------------------- generation


def generate(
    protocol: Protocol,
    choices: Mapping[str, str],
    start: date,
    tz: ZoneInfo,
    working_days: WorkingDays,
    *,
    recurrence_date: date | None = None,
) -> list[PlannedEvent]:
    """A patient's whole planned calendar from the study start, ordered by (date, kind, key).

    `start` is the planned first infusion (a local date in `tz`); `recurrence_date` is the date
    of the local recurrence (default: `start`), which bounds the survival follow-up.
    """
    del tz  # dates are already local calendar dates; kept for a stable signature
    choices = protocol.validate_choices(choices)
    ctx = _Context(protocol, working_days)
    events, infusions, treatment_end = _chain_events(ctx, choices, start)
    events += _assessment_events(ctx, start, infusions, treatment_end)
    events = [_closure_checked(ctx, e) for e in events]
    follow_up = protocol.follow_up_phase()
    if follow_up is not None and infusions:
        last = infusions[-1]
        events += _follow_up_events(
            ctx, follow_up, last.date, last.date, recurrence_date or start, anchor=last
        )
    return _sorted(events)


def _chain_events(
    ctx: _Context, choices: Mapping[str, str], start: date
) -> tuple[list[PlannedEvent], list[PlannedEvent], date]:
    """Cycles of the phases that follow each other from the study start."""
    events: list[PlannedEvent] = []
    infusions: list[PlannedEvent] = []
    number = 0
    next_first = start
    previous: PlannedEvent | None = None
    last_nominal = start
    interval = 0
    gap = 0
    for phase in ctx.protocol.chain():
        block = phase.cycles
        assert block is not None
        first = next_first + timedelta(days=block.first_offset_days)
        number = 0 if block.numbering == "restart" else number
        for k in range(block.cycle_count(first)):
            number += 1
            nominal = first + timedelta(days=k * block.interval_days)
            not_before_start = (
                start
                if previous is None and ctx.protocol.settings.first_infusion_not_before_start
                else None
            )
            cycle = _cycle_events(
                ctx,
                phase,
                block,
                choices,
                number,
                nominal,
                previous,
                prefix=phase.code,
                earliest=not_before_start,
                min_gap=gap if k == 0 and previous is not None else None,
            )
            events += cycle
            previous = cycle[0]
            infusions.append(previous)
            last_nominal = nominal
        interval = block.interval_days
        gap = block.min_interval_days
        next_first = last_nominal + timedelta(days=interval)
    return events, infusions, last_nominal + timedelta(days=interval)


def _cycle_events(
    ctx: _Context,
    phase: Phase,
    block: CycleBlock,
    choices: Mapping[str, str],
    number: int,
    nominal: date,
    previous: PlannedEvent | None,
    *,
    prefix: str,
    earliest: date | None = None,
    anchor: PlannedEvent | None = None,
    min_gap: int | None = None,
) -> list[PlannedEvent]:
    """One cycle: the infusion first, then its labs, premedication and check-ins.

    `min_gap` is the least number of days after the previous infusion; by default this block's
    minimum, but the first cycle of a phase follows the minimum of the previous phase's cycles.
    """
    drugs: list[DrugDose] = [dd for ref in block.drugs for dd in ref.resolve(ctx.protocol, choices)]
    start, end = _window(nominal, block.infusion.window)
    if earliest is not None:
        start = max(start, earliest)
    gap = block.min_interval_days if min_gap is None else min_gap
    not_before = previous.date + timedelta(days=gap) if previous is not None else None
    spot = ctx.place(nominal, start, end, block.infusion.working_day, not_before)
    details: dict[str, Any] = {
        "working_day": block.infusion.working_day,
        "min_interval_days": gap,
        "interval_days": block.interval_days,
        "drugs": [dd.to_json() for dd in drugs],
        "notes": [note.to_json() for dd in drugs for note in dd.drug.infusion_notes],
    }
    anchor_key = previous.key if previous is not None else None
    if previous is None and anchor is not None:
        anchor_key = anchor.key
        details["offset_days"] = (nominal - anchor.date).days
    infusion = PlannedEvent(
        key=f"{prefix}.c{number}.infusion",
        kind="infusion",
        phase=phase.code,
        cycle=number,
        date=spot.date,
        window_start=start,
        window_end=end,
        title_en=f"{phase.label_en} cycle {number}: " + " + ".join(d.text_en for d in drugs),
        title_zh=f"{phase.label_zh}第{number}周期：" + " + ".join(d.text_zh for d in drugs),
        drugs=tuple(d.text_en for d in drugs),
        details=details,
        flags=spot.flags,
        moved_from=spot.moved_from,
        anchor=anchor_key,
    )
    events = [infusion]
    events += _labs_event(ctx, phase, block, number, infusion, prefix)
    events += _premedication_events(ctx, phase, drugs, number, infusion, prefix)
    events += _checkin_events(ctx, phase, block, drugs, number, infusion, prefix)
    return events


def _dependent(
    ctx: _Context,
    *,
    key: str,
    kind: str,
    phase: str,
    cycle: int | None,
    anchor: PlannedEvent,
    offset: int,
    window: Window,
    working_day: bool,
    title_en: str,
    title_zh: str,
    details: dict[str, Any],
    placement: str = "nearest",
) -> PlannedEvent:
    """An event planned `offset` days after its anchor's date."""
    nominal = anchor.date + timedelta(days=offset)
    start, end = _window(nominal, window)
    spot = ctx.place(nominal, start, end, working_day, placement=placement)
    if placement != "nearest":
        window_json = {"before": window.before, "after": window.after}
        details = {**details, "placement": placement, "window": window_json}
    return PlannedEvent(
        key=key,
        kind=kind,
        phase=phase,
        cycle=cycle,
        date=spot.date,
        window_start=start,
        window_end=end,
        title_en=title_en,
        title_zh=title_zh,
        details={"working_day": working_day, "offset_days": offset, **details},
        flags=spot.flags,
        moved_from=spot.moved_from,
        anchor=anchor.key,
    )


def _labs_event(
    ctx: _Context,
    phase: Phase,
    block: CycleBlock,
    number: int,
    infusion: PlannedEvent,
    prefix: str,
) -> list[PlannedEvent]:
    if block.labs is None:
        return []
    panels = [p for p in block.labs.panels if p.due(number)]
    rule = block.labs.rule
    fasting = Fasting.strictest(p.fasting for p in panels) or Fasting(0, 0)
    return [
        _dependent(
            ctx,
            key=f"{prefix}.c{number}.labs",
            kind="labs",
            phase=phase.code,
            cycle=number,
            anchor=infusion,
            offset=rule.offset_days,
            window=rule.window,
            working_day=rule.working_day,
            title_en=f"Blood tests before {phase.label_en.lower()} cycle {number}: "
            + ", ".join(p.label_en for p in panels),
            title_zh=f"{phase.label_zh}第{number}周期前抽血："
            + "、".join(p.label_zh for p in panels),
            details={
                "panels": [
                    {"code": p.code, "label_en": p.label_en, "label_zh": p.label_zh} for p in panels
                ],
                "fasting": fasting.to_json(),
            },
            placement=rule.placement,
        )
    ]


def _premedication_events(
    ctx: _Context,
    phase: Phase,
    drugs: Sequence[DrugDose],
    number: int,
    infusion: PlannedEvent,
    prefix: str,
) -> list[PlannedEvent]:
    events = []
    for dd in drugs:
        for premed in dd.drug.premedication:
            events.append(
                _dependent(
                    ctx,
                    key=f"{prefix}.c{number}.premedication.{premed.code}",
                    kind="premedication",
                    phase=phase.code,
                    cycle=number,
                    anchor=infusion,
                    offset=premed.offset_days,
                    window=premed.window,
                    working_day=False,
                    title_en=f"{premed.title_en} ({phase.label_en.lower()} cycle {number})",
                    title_zh=f"{premed.title_zh}（{phase.label_zh}第{number}周期）",
                    details={
                        "for_drug": dd.drug.code,
                        "premedication": premed.code,
                        "medication": premed.drug,
                        "duration_days": premed.duration_days,
                        "note_en": premed.note_en,
                        "note_zh": premed.note_zh,
                    },
                )
            )
    return events


def _checkin_events(
    ctx: _Context,
    phase: Phase,
    block: CycleBlock,
    drugs: Sequence[DrugDose],
    number: int,
    infusion: PlannedEvent,
    prefix: str,
) -> list[PlannedEvent]:
    if block.checkins is None:
        return []
    guidance = [g.to_json() for dd in drugs for g in dd.drug.checkin_guidance]
    return [
        _dependent(
            ctx,
            key=f"{prefix}.c{number}.checkin.d{day}",
            kind="checkin",
            phase=phase.code,
            cycle=number,
            anchor=infusion,
            offset=day,
            window=block.checkins.window,
            working_day=block.checkins.working_day,
            title_en=f"Symptom check-in, day {day} after {phase.label_en.lower()} cycle {number}",
            title_zh=f"{phase.label_zh}第{number}周期后第{day}天症状随访",
            details={"day_after_infusion": day, "guidance": guidance},
        )
        for day in block.checkins.days_after_infusion
    ]


def _phase_at(infusions: Sequence[PlannedEvent], day: date, default: str) -> tuple[str, str | None]:
    """Phase (and infusion key) in effect on `day`: that of the last infusion planned by then."""
    current = None
    for infusion in infusions:
        if _nominal(infusion) <= day:
            current = infusion
    if current is None:
        return default, infusions[0].key if infusions else None
    return current.phase, current.key


def _assessment_events(
    ctx: _Context, start: date, infusions: Sequence[PlannedEvent], treatment_end: date
) -> list[PlannedEvent]:
    """Scheduled tumour assessments, one visit per study week, its tests ordered by the rules.

    An assessment `until: progression` runs to the study completion date (or the end of
    treatment if later); `until: treatment_end` stops with the last planned cycle.
    """
    visits: dict[date, list[tuple[Assessment, int]]] = defaultdict(list)
    completion = ctx.protocol.study_completion
    for assessment in ctx.protocol.assessments:
        if assessment.on_demand:
            continue
        last = treatment_end
        if assessment.until == "progression" and completion is not None:
            last = max(treatment_end, completion)
        for week in assessment.weeks((last - start).days):
            visits[start + timedelta(weeks=week)].append((assessment, week))
    follow = ctx.protocol.settings.assessments_follow_treatment_delays
    follow_up = ctx.protocol.follow_up_phase()
    default_phase = ctx.protocol.chain()[0].code
    events = []
    for nominal, items in sorted(visits.items()):
        phase, infusion_key = _phase_at(infusions, nominal, default_phase)
        if follow_up is not None and nominal >= treatment_end:
            phase = follow_up.code
        days = _visit_days(ctx, nominal, [a for a, _ in items], infusions)
        for assessment, week in items:
            day, flags = days[assessment.code]
            events.append(
                _assessment_event(
                    assessment,
                    key=f"assessment.{assessment.code}.w{week}",
                    nominal=nominal,
                    placed=(day, flags),
                    phase=phase,
                    anchor=infusion_key if follow else None,
                    titles=(
                        f"{assessment.label_en} (study week {week})",
                        f"{assessment.label_zh}（研究第{week}周）",
                    ),
                    details={"study_week": week},
                )
            )
    return events


def _informed_infusion(
    ctx: _Context, nominal: date, infusions: Sequence[PlannedEvent], reach: int
) -> PlannedEvent | None:
    """The live infusion an assessment visit planned on `nominal` informs (the nearest after)."""
    rules = ctx.protocol.assessment_days
    live = [e for e in infusions if e.status != "cancelled"]
    near = [
        e
        for e in live
        if nominal - timedelta(days=rules.days_before_infusion)
        < e.date
        <= nominal + timedelta(days=reach)
    ]
    return min(near, key=lambda e: e.date) if near else None


def _visit_days(
    ctx: _Context,
    nominal: date,
    assessments: Sequence[Assessment],
    infusions: Sequence[PlannedEvent],
) -> dict[str, tuple[date, tuple[str, ...]]]:
    """The day (and placement flags) of each test of one visit.

    Test groups (protocol `assessment_days.order`) go on different working days, a later group
    on a later day. Before an infusion: the last group on the latest working day before it, the
    earlier groups on the working days before that, all within `days_before_infusion`. With no
    infusion near: the first group on (or nearest to) the planned day, the next groups on the
    following working days.
    """
    rules = ctx.protocol.assessment_days
    groups = sorted({rules.group_of(a.code) for a in assessments})
    reach = max(a.window.after for a in assessments)
    infusion = None
    if rules.days_before_infusion or rules.not_on_infusion_day:
        infusion = _informed_infusion(ctx, nominal, infusions, reach)
    group_days: dict[int, tuple[date, tuple[str, ...]]] = {}
    if infusion is not None:
        last = infusion.date - timedelta(days=1 if rules.not_on_infusion_day else 0)
        first = infusion.date - timedelta(days=max(rules.days_before_infusion, 1))
        earliest = nominal - timedelta(days=min(a.window.before for a in assessments))
        for group in reversed(groups):
            day, flags = ctx.latest_working_day(first, last), ()
            if day is None:
                day, flags = ctx.latest_working_day(earliest, last), (FLAG_IMAGING_EARLY,)
            if day is None:
                day, flags = last, (FLAG_NO_WORKING_DAY,)
            group_days[group] = (day, flags)
            last = day - timedelta(days=1)
    else:
        lead = assessments[0]
        start, end = _window(nominal, lead.window)
        spot = ctx.place(nominal, start, end, lead.working_day)
        day, flags = spot.date, spot.flags
        for group in groups:
            group_days[group] = (day, flags)
            day, flags = ctx.next_working_day(day + timedelta(days=1)), ()
    return {a.code: group_days[rules.group_of(a.code)] for a in assessments}


def _assessment_event(
    assessment: Assessment,
    *,
    key: str,
    nominal: date,
    placed: tuple[date, tuple[str, ...]],
    phase: str,
    anchor: str | None,
    titles: tuple[str, str],
    details: dict[str, Any],
    contrast: str | None = None,
) -> PlannedEvent:
    """One test of an assessment visit, on the day chosen for its group."""
    day, flags = placed
    window_start, window_end = _window(nominal, assessment.window)
    if not window_start <= day <= window_end:
        flags = (*flags, FLAG_OUTSIDE_WINDOW)
    info: dict[str, Any] = {
        "working_day": assessment.working_day,
        "assessment": assessment.code,
        **details,
    }
    if assessment.note_en:
        info |= {"note_en": assessment.note_en, "note_zh": assessment.note_zh}
    if assessment.fasting is not None:
        info["fasting"] = assessment.fasting.to_json()
    if contrast or assessment.contrast:
        info["contrast"] = contrast or assessment.contrast
    return PlannedEvent(
        key=key,
        kind=assessment.kind,
        phase=phase,
        cycle=None,
        date=day,
        window_start=window_start,
        window_end=window_end,
        title_en=titles[0],
        title_zh=titles[1],
        details=info,
        flags=tuple(flags),
        moved_from=nominal if day != nominal else None,
        anchor=anchor,
    )


def _follow_up_events(
    ctx: _Context,
    phase: Phase,
    last_dose: date,
    treatment_end: date,
    recurrence: date,
    *,
    anchor: PlannedEvent | None,
    today: date | None = None,
) -> list[PlannedEvent]:
    """Safety contacts after the last dose and periodic survival contacts to the endpoint."""
    events = []
    for rule in phase.contacts:
        planned: list[tuple[str, date, str, str, dict[str, Any]]] = []
        for day in rule.days_after_last_dose:
            planned.append(
                (
                    f"d{day}",
                    last_dose + timedelta(days=day),
                    f"{rule.label_en}, {day} days after the last dose",
                    f"{rule.label_zh}（末次用药后{day}天）",
                    {"days_after_last_dose": day},
                )
            )
        if rule.every_days and (rule.until_years_after_recurrence or rule.until_study_completion):
            years = rule.until_years_after_recurrence or 0
            endpoint = recurrence + relativedelta(years=years)
            until = endpoint
            completion = ctx.protocol.study_completion
            if rule.until_study_completion and completion is not None:
                until = max(until, completion) if years else completion
            k = 1
            while treatment_end + timedelta(days=k * rule.every_days) <= until:
                planned.append(
                    (
                        f"n{k}",
                        treatment_end + timedelta(days=k * rule.every_days),
                        f"{rule.label_en} {k}",
                        f"{rule.label_zh}（第{k}次）",
                        {"contact_number": k, "until": until.isoformat()},
                    )
                )
                k += 1
            regular = {p[1] for p in planned}
            final = rule.final_contact_at_end and years > 0
            if final and endpoint > treatment_end and endpoint not in regular:
                planned.append(
                    (
                        "end",
                        endpoint,
                        f"{rule.label_en}: status {years} years after recurrence",
                        f"{rule.label_zh}：复发后{years}年生存状态",
                        {"endpoint": True, "years_after_recurrence": years},
                    )
                )
        if today is not None:
            planned = _drop_superseded_overdue(planned, today)
        for suffix, nominal, title_en, title_zh, extra in planned:
            linked = anchor if anchor is not None and suffix != "end" else None
            events.append(
                _contact_event(
                    ctx,
                    key=f"{phase.code}.{rule.code}.{suffix}",
                    phase=phase,
                    nominal=nominal,
                    window=rule.window,
                    working_day=rule.working_day,
                    titles=(title_en, title_zh),
                    details={"contact": rule.code, **extra},
                    anchor=linked,
                    today=today,
                )
            )
    return events


def _drop_superseded_overdue(planned: list[Any], today: date) -> list[Any]:
    """Of the contacts already overdue, keep only the latest (it is planned for today)."""
    overdue = [p for p in planned if p[1] < today]
    return [p for p in planned if p[1] >= today or p is overdue[-1]]


def _contact_event(
    ctx: _Context,
    *,
    key: str,
    phase: Phase,
    nominal: date,
    window: Window,
    working_day: bool,
    titles: tuple[str, str],
    details: dict[str, Any],
    anchor: PlannedEvent | None,
    today: date | None,
) -> PlannedEvent:
    """A follow-up contact; one already due before `today` is planned for today, flagged."""
    start, end = _window(nominal, window)
    details = {"working_day": working_day, **details}
    if anchor is not None:
        details["offset_days"] = (nominal - anchor.date).days
    if today is not None and nominal < today:
        day = ctx.next_working_day(today) if working_day else today
        flags: tuple[str, ...] = (FLAG_OVERDUE,)
        if not start <= day <= end:
            flags += (FLAG_OUTSIDE_WINDOW,)
        spot = _Placement(day, flags, nominal)
    else:
        spot = ctx.place(nominal, start, end, working_day)
    return PlannedEvent(
        key=key,
        kind="followup",
        phase=phase.code,
        cycle=None,
        date=spot.date,
        window_start=start,
        window_end=end,
        title_en=titles[0],
        title_zh=titles[1],
        details=details,
        flags=spot.flags,
        moved_from=spot.moved_from,
        anchor=anchor.key if anchor is not None else None,
    )


# --------------------------------------------------------------------------- closures


def _closure_for(ctx: _Context, day: date) -> dict[str, Any] | None:
    """The closure an infusion on `day` runs into during its risk days (or its make-up day)."""
    if ctx.is_make_up_day(day):
        return {"make_up_day": day.isoformat()}
    low, high = ctx.protocol.settings.closure_risk_days
    for offset in range(low, high + 1):
        run = ctx.closure_around(day + timedelta(days=offset))
        if run is not None:
            days = (run[1] - run[0]).days + 1
            return {"from": run[0].isoformat(), "to": run[1].isoformat(), "days": days}
    return None


def _decided(event: PlannedEvent, flag: str) -> bool:
    """True when a clinician decided about `flag` for the event on its current date."""
    decision = flag_decisions(event.details).get(flag)
    return bool(decision) and decision.get("date") == event.date.isoformat()


def flag_decisions(details: Mapping[str, Any]) -> dict[str, Any]:
    """The clinicians' decisions about an event's flags (none when `decisions` is not a mapping:
    a progression review stored its choices there as a list before they moved to `options`)."""
    stored = details.get("decisions")
    return dict(stored) if isinstance(stored, Mapping) else {}


def _closure_checked(ctx: _Context, event: PlannedEvent) -> PlannedEvent:
    """An open infusion flagged `closure_in_nadir` exactly when a closure is in its risk days."""
    if event.kind != "infusion" or not event.is_open:
        return event
    flags = tuple(f for f in event.flags if f != FLAG_CLOSURE_IN_NADIR)
    details = {k: v for k, v in event.details.items() if k != "closure"}
    found = _closure_for(ctx, event.date)
    if found is not None and not _decided(event, FLAG_CLOSURE_IN_NADIR):
        flags += (FLAG_CLOSURE_IN_NADIR,)
        details["closure"] = found
    if flags == event.flags and details == event.details:
        return event
    return replace(event, flags=flags, details=details)


def _refresh_closures(ctx: _Context, work: _Working) -> None:
    for event in list(work.now.values()):
        checked = _closure_checked(ctx, event)
        if checked is not event:
            work.set(checked)


def waiting_decisions(events: Iterable[PlannedEvent]) -> list[PlannedEvent]:
    """Open events with a flag a clinician must decide about, in date order."""
    return _sorted(
        e
        for e in events
        if e.is_open and any(f in DECISION_FLAGS and not _decided(e, f) for f in e.flags)
    )


def record_decision(
    events: Sequence[PlannedEvent], key: str, flag: str, decision: str, note: str
) -> CalendarChange:
    """Record a clinician's decision about a flag of one event (e.g. holiday cover confirmed).

    The flag is removed and the decision kept in the event's details with the event's date;
    a decision to delay is a reschedule, recorded with `reschedule` instead.
    """
    work = _Working(events)
    event = work.now.get(key)
    if event is None:
        raise CalendarError(f"no event with the key {key!r} in this calendar")
    if flag not in event.flags:
        raise CalendarError(f"{key} has no {flag!r} flag to decide about")
    if not decision.strip() or not note.strip():
        raise CalendarError("a decision needs both the decision and a note saying why")
    decisions = flag_decisions(event.details)
    decisions[flag] = {"decision": decision.strip(), "date": event.date.isoformat(), "note": note}
    details = {**event.details, "decisions": decisions}
    legacy = event.details.get("decisions")
    if isinstance(legacy, list):  # a review's choices stored under the old key: kept
        details.setdefault("options", legacy)
    work.set(replace(event, flags=tuple(f for f in event.flags if f != flag), details=details))
    return work.result()


# --------------------------------------------------------------------------- changes


class _Working:
    """A mutable copy of a calendar while a change is computed; yields a CalendarChange."""

    def __init__(self, events: Iterable[PlannedEvent]) -> None:
        self.before: dict[str, PlannedEvent] = {}
        for event in events:
            if event.key in self.before:
                raise CalendarError(f"two events have the key {event.key!r}")
            self.before[event.key] = event
        self.now = dict(self.before)

    def add(self, event: PlannedEvent) -> None:
        """Add a new event (its key must be new)."""
        if event.key in self.now:
            raise CalendarError(f"an event with the key {event.key!r} already exists")
        self.now[event.key] = event

    def set(self, event: PlannedEvent) -> None:
        """Replace an event by a new version (same key)."""
        self.now[event.key] = event

    def cancel(self, key: str, flag: str) -> None:
        """Cancel an open event, with a flag saying why."""
        event = self.now[key]
        if event.is_open:
            self.now[key] = replace(event, status="cancelled", flags=_add_flags(event.flags, flag))

    def children(self) -> dict[str, list[str]]:
        """Anchor key -> keys of the events that depend on it, in date order."""
        result: dict[str, list[str]] = defaultdict(list)
        for event in _sorted(self.now.values()):
            if event.anchor:
                result[event.anchor].append(event.key)
        return result

    def result(self) -> CalendarChange:
        """The full new calendar and the list of changes."""
        changes = []
        for key, new in self.now.items():
            old = self.before.get(key)
            flags_added = tuple(f for f in new.flags if old is None or f not in old.flags)
            same_day_and_status = old is not None and (old.date, old.status) == (
                new.date,
                new.status,
            )
            if same_day_and_status and (old == new or not flags_added):
                continue
            changes.append(
                EventChange(
                    key=key,
                    old_date=old.date if old else None,
                    new_date=new.date,
                    old_status=old.status if old else None,
                    new_status=new.status,
                    left_window=not new.in_window,
                    flags_added=flags_added if old is not None else (),
                )
            )
        changes.sort(key=lambda c: (c.new_date or date.min, c.key))
        return CalendarChange(events=_sorted(self.now.values()), changes=changes)


def _movable(event: PlannedEvent, today: date) -> bool:
    """Only open events dated today or later ever move."""
    return event.is_open and event.date >= today


def _cascade(
    ctx: _Context,
    work: _Working,
    root_key: str,
    root_shift: int,
    today: date,
    cause: str = FLAG_SHIFTED,
) -> None:
    """Move every event that depends (transitively) on `root_key`, which has already moved."""
    children = work.children()
    shifts = {root_key: root_shift}
    queue = deque([root_key])
    while queue:
        parent = work.now[queue.popleft()]
        for key in children.get(parent.key, []):
            child = work.now[key]
            if not _movable(child, today):
                continue
            moved, shift = _follow(ctx, child, parent, shifts[parent.key])
            if moved.date != child.date:
                moved = replace(moved, flags=_add_flags(moved.flags, FLAG_SHIFTED, cause))
            work.set(moved)
            shifts[key] = shift
            queue.append(key)


def _follow(
    ctx: _Context, child: PlannedEvent, parent: PlannedEvent, parent_shift: int
) -> tuple[PlannedEvent, int]:
    """The child's new version after its anchor moved, and how far its planned date moved."""
    if child.details.get("sequence") == "next_working_day":
        day = ctx.next_working_day(parent.date + timedelta(days=1))
        flags = _strip(child.flags, FLAG_RESCHEDULED)
        moved = replace(child, date=day, window_start=day, window_end=day, moved_from=None)
        return replace(moved, flags=flags), (day - child.date).days
    old_nominal = _nominal(child)
    offset = child.details.get("offset_days")
    if "assessment" in child.details and offset is None:
        old_nominal = child.date  # keep the visit's test order: every test moves as far
        new_nominal = child.date + timedelta(days=parent_shift)
    elif offset is not None:
        new_nominal = parent.date + timedelta(days=int(offset))
    else:
        new_nominal = old_nominal + timedelta(days=parent_shift)
    shift = (new_nominal - old_nominal).days
    start = child.window_start + timedelta(days=shift)
    end = child.window_end + timedelta(days=shift)
    own = child.details.get("window")
    if offset is not None and isinstance(own, dict):  # a window around the anchor's new date
        start = new_nominal - timedelta(days=int(own["before"]))
        end = new_nominal + timedelta(days=int(own["after"]))
    not_before = None
    if child.kind == "infusion" and parent.kind == "infusion":
        gap = int(child.details.get("min_interval_days", 0))
        not_before = parent.date + timedelta(days=gap) if gap else None
    spot = ctx.place(
        new_nominal,
        start,
        end,
        bool(child.details.get("working_day")),
        not_before,
        placement=str(child.details.get("placement", "nearest")),
    )
    moved = replace(
        child,
        date=spot.date,
        window_start=start,
        window_end=end,
        moved_from=spot.moved_from,
        flags=_strip(child.flags, FLAG_RESCHEDULED) + spot.flags,
    )
    return moved, shift


def reschedule(
    protocol: Protocol,
    events: Sequence[PlannedEvent],
    key: str,
    new_date: date,
    reason: str | None,
    working_days: WorkingDays,
    *,
    today: date,
) -> CalendarChange:
    """Move one event and, transitively, every open future event that depends on it.

    Raises RescheduleError for an unknown key, an event that is done, missed or cancelled, a
    date outside the event's window or before `today` without a reason, or an infusion closer
    to the previous (or an unmovable next) infusion than the protocol's minimum interval.
    """
    ctx = _Context(protocol, working_days)
    work = _Working(events)
    target = work.now.get(key)
    if target is None:
        raise RescheduleError(f"no event with the key {key!r} in this calendar")
    _check_reschedule(work, target, new_date, reason, today)
    if new_date == target.date:
        return work.result()
    has_reason = bool(reason and reason.strip())
    flags = (*_strip(target.flags), FLAG_RESCHEDULED)
    if not target.window_start <= new_date <= target.window_end:
        flags += (FLAG_OUTSIDE_WINDOW,)
    if target.details.get("working_day") and not ctx.works(new_date):
        flags += (FLAG_ON_NON_WORKING_DAY,)
    details = dict(target.details)
    if has_reason:
        details["reschedule_reason"] = reason.strip() if reason else ""
    work.set(
        replace(
            target,
            date=new_date,
            moved_from=target.date,
            flags=_add_flags((), *flags),
            details=details,
        )
    )
    _cascade(ctx, work, key, (new_date - target.date).days, today)
    _refresh_closures(ctx, work)
    return work.result()


def _check_reschedule(
    work: _Working, target: PlannedEvent, new_date: date, reason: str | None, today: date
) -> None:
    if target.status == "done":
        raise RescheduleError(f"{target.key} is already done; a done event never moves")
    if not target.is_open:
        raise RescheduleError(
            f"{target.key} is {target.status}; only planned or confirmed events can be moved"
        )
    has_reason = bool(reason and reason.strip())
    if not target.window_start <= new_date <= target.window_end and not has_reason:
        raise RescheduleError(
            f"{new_date.isoformat()} is outside the window of {target.key} "
            f"({target.window_start.isoformat()} to {target.window_end.isoformat()}); "
            "give a reason to move it there"
        )
    if new_date < today and not has_reason:
        raise RescheduleError(
            f"{new_date.isoformat()} is before today ({today.isoformat()}); "
            "give a reason to record a past date"
        )
    if target.kind != "infusion":
        return
    gap = int(target.details.get("min_interval_days", 0))
    previous = _previous_given_infusion(work, target)
    if previous is not None and gap and (new_date - previous.date).days < gap:
        raise RescheduleError(
            f"{target.key} on {new_date.isoformat()} would be {(new_date - previous.date).days} "
            f"days after {previous.key} ({previous.date.isoformat()}); the protocol's minimum "
            f"is {gap} days"
        )
    for child in work.now.values():
        if child.anchor == target.key and child.kind == "infusion" and not _movable(child, today):
            if child.status in ("cancelled", "missed"):
                continue
            child_gap = int(child.details.get("min_interval_days", 0))
            if (child.date - new_date).days < child_gap:
                raise RescheduleError(
                    f"{target.key} on {new_date.isoformat()} would be closer than {child_gap} "
                    f"days to {child.key} ({child.date.isoformat()}), which can no longer move"
                )


def _previous_given_infusion(work: _Working, event: PlannedEvent) -> PlannedEvent | None:
    """The infusion before `event` in its chain, skipping cancelled and missed ones."""
    current = event
    while current.anchor:
        anchor = work.now.get(current.anchor)
        if anchor is None or anchor.kind != "infusion":
            return None
        if anchor.status not in ("cancelled", "missed"):
            return anchor
        current = anchor
    return None


# --------------------------------------------------------------------------- salvage


def start_salvage(
    protocol: Protocol,
    events: Sequence[PlannedEvent],
    choices: Mapping[str, str],
    salvage_start: date,
    working_days: WorkingDays,
    *,
    today: date,
    fractions: int | None = None,
    recurrence_date: date | None = None,
) -> CalendarChange:
    """Add the on-demand (salvage) block from `salvage_start` and apply its rule to ongoing cycles.

    Radiotherapy fractions go on consecutive working days; weekly cycles start on the first
    fraction; the ongoing cycles pause (resume after the block), continue, or stop, as the
    protocol's `ongoing_treatment` says. `fractions` overrides the protocol default.
    """
    phase = protocol.on_demand_phase()
    if phase is None:
        raise CalendarError(f"protocol {protocol.code} has no phase that starts on demand")
    choices = protocol.validate_choices(choices)
    ctx = _Context(protocol, working_days)
    work = _Working(events)
    started = [e for e in work.now.values() if e.phase == phase.code and e.status != "cancelled"]
    if started:
        first = min(e.date for e in started)
        raise CalendarError(f"{phase.label_en} is already in the calendar (from {first})")
    prefix = _free_prefix(phase.code, work.now)
    block_events = _salvage_block(ctx, phase, choices, salvage_start, prefix, fractions, work)
    for event in block_events:
        work.add(event)
    doses = [e for e in block_events if e.kind in DOSE_KINDS]
    block_end = max(e.date for e in doses)
    chain_codes = {p.code for p in protocol.chain()}
    if phase.ongoing_treatment == "pause":
        _pause_chain(ctx, work, chain_codes, salvage_start, block_end, phase, today)
    elif phase.ongoing_treatment == "stop":
        _cancel_treatment(
            work, chain_codes, salvage_start, FLAG_STOPPED_FOR_SALVAGE, kinds=CYCLE_KINDS
        )
    fractions = [e for e in block_events if e.kind == "radiotherapy"]
    if fractions and phase.radiotherapy is not None:
        _response_assessment(ctx, work, phase, prefix, fractions, salvage_start, today)
        _contrast_after_radiotherapy(ctx, work, fractions[-1].date, today)
    _replace_visits(ctx, work, salvage_start, today)
    _refresh_follow_up(ctx, work, recurrence_date, today)
    _refresh_closures(ctx, work)
    return work.result()


def _response_assessment(
    ctx: _Context,
    work: _Working,
    phase: Phase,
    prefix: str,
    fractions: Sequence[PlannedEvent],
    salvage_start: date,
    today: date,
) -> None:
    """Suspend routine imaging during radiotherapy and plan the response assessment after it."""
    rt = phase.radiotherapy
    if rt is None or rt.response is None:
        return
    response = rt.response
    nominal = fractions[-1].date + timedelta(weeks=response.weeks_after_end)
    window_end = nominal + timedelta(days=response.window.after)
    found = [ctx.protocol.assessment(code) for code in response.assessments]
    tests = [replace(a, window=response.window) for a in found if a is not None]
    infusions = _sorted(e for e in work.now.values() if e.kind == "infusion" and e.is_open)
    days = _visit_days(ctx, nominal, tests, infusions)
    response_days = {day for day, _ in days.values()}
    for event in list(work.now.values()):
        if not (event.key.startswith("assessment.") and _movable(event, today)):
            continue
        replaced = any(event.window_start <= d <= event.window_end for d in response_days)
        near = abs((event.date - nominal).days) <= RESPONSE_REPLACES_ROUTINE_DAYS
        if replaced or near or salvage_start <= event.date <= window_end:
            work.cancel(event.key, FLAG_SUSPENDED_FOR_RT)
    for test in tests:
        work.add(
            _assessment_event(
                test,
                key=f"{prefix}.response.{test.code}",
                nominal=nominal,
                placed=days[test.code],
                phase=phase.code,
                anchor=None,
                titles=(
                    f"{test.label_en} (response after {rt.label_en.lower()})",
                    f"{test.label_zh}（{rt.label_zh}后疗效评估）",
                ),
                details={"response_assessment": True, "weeks_after_end": response.weeks_after_end},
                contrast=test.contrast_after_radiotherapy,
            )
        )


def _replace_visits(ctx: _Context, work: _Working, after: date, today: date) -> None:
    """Choose again the days of routine assessment visits after `after` (infusions moved)."""
    visits: dict[int, list[PlannedEvent]] = defaultdict(list)
    for event in work.now.values():
        if event.key.startswith("assessment.") and _movable(event, today) and event.date > after:
            visits[int(event.details["study_week"])].append(event)
    infusions = _sorted(e for e in work.now.values() if e.kind == "infusion" and e.is_open)
    for tests in visits.values():
        found = [ctx.protocol.assessment(str(e.details["assessment"])) for e in tests]
        assessments = [a for a in found if a is not None]
        if len(assessments) != len(tests):
            continue
        nominal = tests[0].window_start + timedelta(days=assessments[0].window.before)
        days = _visit_days(ctx, nominal, assessments, infusions)
        for event in tests:
            day, flags = days[str(event.details["assessment"])]
            if day == event.date:
                continue
            if not event.window_start <= day <= event.window_end:
                flags = (*flags, FLAG_OUTSIDE_WINDOW)
            work.set(
                replace(
                    event,
                    date=day,
                    moved_from=nominal if day != nominal else None,
                    flags=_add_flags(_strip(event.flags) + tuple(flags), FLAG_SHIFTED),
                )
            )


def _contrast_after_radiotherapy(
    ctx: _Context, work: _Working, last_fraction: date, today: date
) -> None:
    """Imaging after re-irradiation uses the protocol's post-radiotherapy contrast."""
    for event in list(work.now.values()):
        code = event.details.get("assessment")
        assessment = ctx.protocol.assessment(code) if isinstance(code, str) else None
        if assessment is None or not assessment.contrast_after_radiotherapy:
            continue
        if _movable(event, today) and event.date > last_fraction:
            details = {**event.details, "contrast": assessment.contrast_after_radiotherapy}
            work.set(replace(event, details=details))


def _free_prefix(code: str, existing: Mapping[str, PlannedEvent]) -> str:
    """`code`, or `code2`, `code3`... when a cancelled earlier block already used the keys."""
    prefix, n = code, 1
    while any(k.startswith(prefix + ".") for k in existing):
        n += 1
        prefix = f"{code}{n}"
    return prefix


def _salvage_block(
    ctx: _Context,
    phase: Phase,
    choices: Mapping[str, str],
    salvage_start: date,
    prefix: str,
    fractions: int | None,
    work: _Working,
) -> list[PlannedEvent]:
    events: list[PlannedEvent] = []
    rt_events: list[PlannedEvent] = []
    if phase.radiotherapy is not None:
        rt_events = _fraction_events(ctx, phase, salvage_start, prefix, fractions)
        events += rt_events
    if phase.cycles is not None:
        block = phase.cycles
        anchor = rt_events[0] if rt_events else None
        base = anchor.date if anchor is not None else salvage_start
        first = base + timedelta(days=block.first_offset_days)
        number = 0
        if block.numbering == "continue":
            number = max(
                (e.cycle or 0 for e in work.now.values() if e.kind == "infusion"), default=0
            )
        previous: PlannedEvent | None = None
        for k in range(block.cycle_count(first)):
            number += 1
            nominal = first + timedelta(days=k * block.interval_days)
            ride = _riding_fraction(block, rt_events, nominal, previous)
            nominal = ride.date if ride is not None else nominal
            cycle = _cycle_events(
                ctx,
                phase,
                block,
                choices,
                number,
                nominal,
                previous,
                prefix=prefix,
                earliest=salvage_start if previous is None else None,
                anchor=anchor,
            )
            if ride is not None:
                cycle[0] = _ride_on(cycle[0], ride)
            events += cycle
            previous = cycle[0]
    if rt_events:
        events += _radiotherapy_checkins(ctx, phase, rt_events, prefix)
    return events


def _riding_fraction(
    block: CycleBlock,
    fractions: Sequence[PlannedEvent],
    nominal: date,
    previous: PlannedEvent | None,
) -> PlannedEvent | None:
    """The fraction a weekly cycle rides on: the first on or after its planned day.

    Only when the protocol says so (`on_radiotherapy`); never closer to the previous cycle
    than the minimum interval. None when no fraction is left (the cycle keeps its own day).
    """
    if not block.on_radiotherapy or not fractions:
        return None
    earliest = nominal
    if previous is not None:
        earliest = max(earliest, previous.date + timedelta(days=block.min_interval_days))
    return next((f for f in fractions if f.date >= earliest), None)


def _ride_on(infusion: PlannedEvent, fraction: PlannedEvent) -> PlannedEvent:
    """The infusion anchored to its fraction: it moves with the radiotherapy week."""
    details = {**infusion.details, "offset_days": 0, "fraction": fraction.details["fraction"]}
    return replace(infusion, anchor=fraction.key, details=details)


def _prolonged(rt: RadiotherapyBlock, events: list[PlannedEvent]) -> list[PlannedEvent]:
    """Flag the last fraction `rt_prolonged` when the course is longer than the protocol allows."""
    if not events or rt.max_overall_days is None:
        return events
    overall = (events[-1].date - events[0].date).days + 1
    if overall <= rt.max_overall_days:
        return events
    last = events[-1]
    details = {
        **last.details,
        "overall_days": overall,
        "rt_extra_days": overall - rt.max_overall_days,
        "max_overall_days": rt.max_overall_days,
    }
    return [*events[:-1], replace(last, details=details, flags=(*last.flags, FLAG_RT_PROLONGED))]


def _fraction_events(
    ctx: _Context, phase: Phase, salvage_start: date, prefix: str, fractions: int | None
) -> list[PlannedEvent]:
    rt = phase.radiotherapy
    assert rt is not None
    count = rt.fractions_default if fractions is None else fractions
    if not rt.fractions_min <= count <= rt.fractions_max:
        raise CalendarError(
            f"{count} fractions is outside the protocol's range "
            f"({rt.fractions_min}-{rt.fractions_max})"
        )
    events: list[PlannedEvent] = []
    day = ctx.next_working_day(salvage_start)
    for n in range(1, count + 1):
        if n > 1:
            day = ctx.next_working_day(events[-1].date + timedelta(days=1))
        first = n == 1
        details: dict[str, Any] = {
            "working_day": True,
            "fraction": n,
            "fractions": count,
            "dose_text": rt.dose_text,
        }
        if not first:
            details["sequence"] = "next_working_day"
        events.append(
            PlannedEvent(
                key=f"{prefix}.rt.f{n}",
                kind="radiotherapy",
                phase=phase.code,
                cycle=None,
                date=day,
                window_start=salvage_start if first else day,
                window_end=day,
                title_en=f"{rt.label_en} fraction {n} of {count}",
                title_zh=f"{rt.label_zh}第{n}次（共{count}次）",
                details=details,
                flags=(FLAG_MOVED,) if first and day != salvage_start else (),
                moved_from=salvage_start if first and day != salvage_start else None,
                anchor=None if first else events[-1].key,
            )
        )
    return _prolonged(rt, events)


def _radiotherapy_checkins(
    ctx: _Context, phase: Phase, fractions: Sequence[PlannedEvent], prefix: str
) -> list[PlannedEvent]:
    rt = phase.radiotherapy
    assert rt is not None
    first, last = fractions[0], fractions[-1]
    events = []
    week = 0
    while first.date + timedelta(days=7 * week) <= last.date:
        for day in rt.checkin_weekly_days:
            nominal = first.date + timedelta(days=7 * week + day)
            if nominal > last.date:
                continue
            anchor = [f for f in fractions if f.date <= nominal][-1]
            events.append(
                _dependent(
                    ctx,
                    key=f"{prefix}.rt.checkin.w{week + 1}d{day}",
                    kind="checkin",
                    phase=phase.code,
                    cycle=None,
                    anchor=anchor,
                    offset=(nominal - anchor.date).days,
                    window=rt.checkin_window,
                    working_day=rt.checkin_working_day,
                    title_en=f"Symptom check-in during {rt.label_en.lower()} (week {week + 1})",
                    title_zh=f"{rt.label_zh}期间症状随访（第{week + 1}周）",
                    details={"radiotherapy_week": week + 1},
                )
            )
        week += 1
    for day in rt.checkin_days_after_end:
        events.append(
            _dependent(
                ctx,
                key=f"{prefix}.rt.checkin.end_d{day}",
                kind="checkin",
                phase=phase.code,
                cycle=None,
                anchor=last,
                offset=day,
                window=rt.checkin_window,
                working_day=rt.checkin_working_day,
                title_en=f"Symptom check-in, day {day} after the last {rt.label_en.lower()} fraction",
                title_zh=f"{rt.label_zh}结束后第{day}天症状随访",
                details={"days_after_radiotherapy": day},
            )
        )
    return events


def _pause_chain(
    ctx: _Context,
    work: _Working,
    chain_codes: set[str],
    salvage_start: date,
    block_end: date,
    phase: Phase,
    today: date,
) -> None:
    """Postpone the first ongoing infusion from the salvage start (and all after it)."""
    waiting = [
        e
        for e in work.now.values()
        if e.kind == "infusion"
        and e.phase in chain_codes
        and _movable(e, today)
        and e.date >= salvage_start
    ]
    if not waiting:
        return
    first = min(waiting, key=_sort_key)
    resume = block_end + timedelta(days=phase.resume_days_after_end)
    if first.date >= resume:
        return
    old_nominal = _nominal(first)
    shift = (resume - old_nominal).days
    start = first.window_start + timedelta(days=shift)
    end = first.window_end + timedelta(days=shift)
    previous = _previous_given_infusion(work, first)
    gap = int(first.details.get("min_interval_days", 0))
    not_before = previous.date + timedelta(days=gap) if previous is not None and gap else None
    spot = ctx.place(resume, start, end, bool(first.details.get("working_day")), not_before)
    work.set(
        replace(
            first,
            date=spot.date,
            window_start=start,
            window_end=end,
            moved_from=spot.moved_from,
            flags=_add_flags(
                _strip(first.flags, FLAG_RESCHEDULED) + spot.flags, FLAG_SHIFTED, FLAG_PAUSED
            ),
        )
    )
    _cascade(ctx, work, first.key, shift, today, cause=FLAG_PAUSED)


def _given_doses(work: _Working, before: date | None = None) -> list[PlannedEvent]:
    """Dose events given or still to be given (not cancelled or missed), optionally before a date."""
    return [
        e
        for e in work.now.values()
        if e.kind in DOSE_KINDS
        and e.status not in ("cancelled", "missed")
        and (before is None or e.status == "done" or e.date < before)
    ]


def _cancel_treatment(
    work: _Working,
    phase_codes: set[str],
    on: date,
    flag: str,
    *,
    kinds: Iterable[str] = KINDS,
    keep: Iterable[str] = (),
) -> None:
    """Cancel open events of `kinds` from `on`, keeping check-ins after doses already given.

    Assessments whose code is in `keep` stay (imaging until progression, not until treatment).
    """
    given = {e.key for e in _given_doses(work, before=on)}
    kinds = set(kinds)
    kept = set(keep)
    for event in list(work.now.values()):
        if event.phase not in phase_codes or not event.is_open or event.date < on:
            continue
        if event.kind not in kinds or event.details.get("assessment") in kept:
            continue
        if event.kind == "checkin" and event.anchor in given:
            continue
        work.cancel(event.key, flag)


def _study_start(work: _Working, protocol: Protocol) -> date:
    """The planned first infusion (used when the recurrence date is not known)."""
    chain = {p.code for p in protocol.chain()}
    first = [_nominal(e) for e in work.now.values() if e.kind == "infusion" and e.phase in chain]
    return min(first) if first else min(e.date for e in work.now.values())


def _refresh_follow_up(ctx: _Context, work: _Working, recurrence: date | None, today: date) -> None:
    """Re-plan the after-treatment contacts when the last planned dose has changed."""
    phase = ctx.protocol.follow_up_phase()
    doses = _given_doses(work)
    if phase is None or not doses:
        return
    last = max(doses, key=_sort_key)
    current = [e for e in work.now.values() if e.phase == phase.code and e.is_open]
    if current and all(e.anchor in (last.key, None) for e in current):
        return
    wanted = _follow_up_events(
        ctx,
        phase,
        last.date,
        last.date,
        recurrence or _study_start(work, ctx.protocol),
        anchor=last,
        today=today,
    )
    _merge_follow_up(work, phase, wanted, today, FLAG_SUPERSEDED)


def _merge_follow_up(
    work: _Working, phase: Phase, wanted: Sequence[PlannedEvent], today: date, flag: str
) -> None:
    """Make the open follow-up contacts match `wanted` (same keys move, extra ones cancel)."""
    wanted_keys = {e.key for e in wanted}
    for event in wanted:
        existing = work.now.get(event.key)
        if existing is None:
            work.add(event)
        elif _movable(existing, today):
            status = existing.status if existing.date == event.date else "planned"
            work.set(replace(event, status=status, flags=_add_flags(event.flags)))
    for event in list(work.now.values()):
        if (
            event.phase == phase.code
            and event.key not in wanted_keys
            and _movable(event, today)
            and event.kind == "followup"
        ):
            work.cancel(event.key, flag)


# --------------------------------------------------------------------------- status changes


def record_progression(
    protocol: Protocol,
    events: Sequence[PlannedEvent],
    on: date,
    *,
    today: date,
    working_days: WorkingDays | None = None,
) -> CalendarChange:
    """Record progression on `on`: flag the open treatment events from then and add a review task.

    Nothing moves or is cancelled: the investigator decides next (start_salvage or
    stop_treatment). The review is planned `progression_review_days` after `on`.
    """
    if on > today:
        raise CalendarError(f"progression cannot be recorded for a future date ({on})")
    work = _Working(events)
    treatment = {p.code for p in protocol.chain()}
    salvage = protocol.on_demand_phase()
    if salvage is not None:
        treatment.add(salvage.code)
    for event in list(work.now.values()):
        if event.phase in treatment and event.is_open and event.date >= on:
            work.set(replace(event, flags=_add_flags(event.flags, FLAG_PROGRESSION)))
    settings = protocol.settings
    nominal = on + timedelta(days=settings.progression_review_days)
    end = nominal + timedelta(days=settings.progression_review_window_days)
    day, flags = nominal, ()
    if working_days is not None:
        spot = _Context(protocol, working_days).place(nominal, on, end, True)
        day, flags = spot.date, spot.flags
    number = 1 + sum(1 for k in work.now if k.startswith("review.progression"))
    infusions = _sorted(e for e in work.now.values() if e.kind == "infusion")
    phase, _ = _phase_at(
        [e for e in infusions if e.status != "cancelled"], on, protocol.chain()[0].code
    )
    work.add(
        PlannedEvent(
            key=f"review.progression{number}",
            kind="review",
            phase=phase,
            cycle=None,
            date=day,
            window_start=on,
            window_end=end,
            title_en="Progression recorded: decide on salvage treatment or stopping treatment",
            title_zh="已记录疾病进展：决定挽救治疗或停止治疗",
            details={
                "working_day": working_days is not None,
                "progression_date": on.isoformat(),
                "options": ["start_salvage", "stop_treatment", "continue"],
            },
            flags=flags,
            moved_from=nominal if day != nominal else None,
        )
    )
    return work.result()


def stop_treatment(
    protocol: Protocol,
    events: Sequence[PlannedEvent],
    on: date,
    working_days: WorkingDays,
    *,
    today: date,
    recurrence_date: date | None = None,
) -> CalendarChange:
    """Stop all treatment from `on` and plan the after-treatment contacts.

    Open treatment events dated `on` or later are cancelled, except symptom check-ins after a
    dose already given and, unless progression was recorded, imaging that runs until
    progression (progression-free survival). Safety contacts follow the last dose given; survival contacts run every
    n days from `on` until the protocol's years after `recurrence_date` (default: study start).
    """
    ctx = _Context(protocol, working_days)
    work = _Working(events)
    treatment = {p.code for p in protocol.chain()}
    salvage = protocol.on_demand_phase()
    if salvage is not None:
        treatment.add(salvage.code)
    given = _given_doses(work, before=on)
    progressed = any(k.startswith("review.progression") for k in work.now)
    keep = () if progressed else _imaging_until_progression(protocol)
    _cancel_treatment(work, treatment, on, FLAG_TREATMENT_STOPPED, keep=keep)
    if progressed:
        for event in list(work.now.values()):
            if event.key.startswith("assessment.") and event.is_open and event.date >= on:
                work.cancel(event.key, FLAG_PROGRESSION_ENDS_IMAGING)
    phase = protocol.follow_up_phase()
    if phase is not None:
        last_dose = max((e.date for e in given), default=on)
        wanted = _follow_up_events(
            ctx,
            phase,
            min(last_dose, on),
            on,
            recurrence_date or _study_start(work, protocol),
            anchor=None,
            today=today,
        )
        _merge_follow_up(work, phase, wanted, today, FLAG_TREATMENT_STOPPED)
    return work.result()


def _imaging_until_progression(protocol: Protocol) -> tuple[str, ...]:
    """Codes of the assessments that run until progression, whatever happens to treatment."""
    return tuple(a.code for a in protocol.assessments if a.until == "progression")


def mark_not_tracked(events: Sequence[PlannedEvent], before: date) -> list[PlannedEvent]:
    """A patient who started before enrolment in Cadence: open events before `before` are
    marked not tracked (never overdue, never reminded)."""
    return [
        replace(e, status="not_tracked", flags=_add_flags(e.flags, FLAG_BEFORE_CADENCE))
        if e.is_open and e.date < before
        else e
        for e in events
    ]


def off_study(events: Sequence[PlannedEvent], on: date) -> CalendarChange:
    """The patient leaves the study on `on`: every open event after that date is cancelled."""
    work = _Working(events)
    for event in list(work.now.values()):
        if event.is_open and event.date > on:
            work.cancel(event.key, FLAG_OFF_STUDY)
    return work.result()
