"""Properties of the calendar engine, checked on many random calendars (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.domain import calendar as cal
from app.domain.calendar import PlannedEvent, RescheduleError
from app.domain.protocol import default_protocol_path, load_protocol
from app.domain.working_days import ChinaWorkingDays

PROTOCOL = load_protocol(default_protocol_path())
CHINA = ChinaWorkingDays()
TZ = ZoneInfo("Asia/Shanghai")
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

starts = st.dates(date(2026, 1, 1), date(2027, 12, 31))
arms = st.fixed_dictionaries(
    {
        "pd1": st.sampled_from(["sintilimab", "camrelizumab"]),
        "chemo": st.sampled_from(["paclitaxel", "docetaxel", "irinotecan"]),
    }
)
delays = st.lists(st.tuples(st.integers(1, 39), st.integers(-6, 16)), min_size=0, max_size=3)
salvage_offsets = st.one_of(st.none(), st.integers(30, 700))


def _scenario(
    start: date,
    choices: dict[str, str],
    delay_list: list[tuple[int, int]],
    salvage_offset: int | None,
) -> list[PlannedEvent]:
    """Generate, apply some delays (with a reason) and maybe salvage; as a nurse would."""
    events = cal.generate(PROTOCOL, choices, start, TZ, CHINA)
    keys = {e.key for e in events}
    for cycle, days in delay_list:
        target = next(
            e for e in events if e.kind == "infusion" and e.cycle == cycle and e.phase != "salvage"
        )
        try:
            change = cal.reschedule(
                PROTOCOL,
                events,
                target.key,
                target.date + timedelta(days=days),
                "property test",
                CHINA,
                today=start,
            )
        except RescheduleError:
            continue
        assert {e.key for e in change.events} == keys
        events = change.events
    if salvage_offset is not None:
        events = cal.start_salvage(
            PROTOCOL, events, choices, start + timedelta(days=salvage_offset), CHINA, today=start
        ).events
    return events


def _chains(events: list[PlannedEvent]) -> list[list[PlannedEvent]]:
    """Infusions given one after the other: induction + maintenance, and salvage."""
    live = [e for e in events if e.kind == "infusion" and e.status != "cancelled"]
    main = sorted((e for e in live if e.phase != "salvage"), key=lambda e: e.cycle or 0)
    salvage = sorted((e for e in live if e.phase == "salvage"), key=lambda e: e.cycle or 0)
    return [main, salvage]


@FAST
@given(starts, arms, delays, salvage_offsets)
def test_infusion_spacing_never_below_the_protocol_minimum(
    start: date,
    choices: dict[str, str],
    delay_list: list[tuple[int, int]],
    salvage_offset: int | None,
) -> None:
    events = _scenario(start, choices, delay_list, salvage_offset)
    for chain in _chains(events):
        for previous, current in pairwise(chain):
            gap = (current.date - previous.date).days
            assert gap >= current.details["min_interval_days"], (previous.key, current.key, gap)


@FAST
@given(starts, arms, delays, salvage_offsets)
def test_no_event_outside_its_window_unless_flagged(
    start: date,
    choices: dict[str, str],
    delay_list: list[tuple[int, int]],
    salvage_offset: int | None,
) -> None:
    events = _scenario(start, choices, delay_list, salvage_offset)
    for event in events:
        assert event.in_window or "outside_window" in event.flags, event
        if event.details.get("working_day") and not CHINA.is_working_day(event.date):
            assert {"no_working_day_in_window", "on_non_working_day"} & set(event.flags), event


@FAST
@given(
    starts,
    arms,
    st.integers(0, 500),
    st.integers(-10, 25),
    st.randoms(use_true_random=False),
)
def test_rescheduling_never_moves_done_or_past_events(
    start: date, choices: dict[str, str], today_offset: int, delta: int, rnd
) -> None:
    today = start + timedelta(days=today_offset)
    events = [
        replace(e, status=rnd.choice(["done", "missed", "planned"]))
        if e.date < today
        else replace(e, status="done")
        if rnd.random() < 0.05
        else e
        for e in cal.generate(PROTOCOL, choices, start, TZ, CHINA)
    ]
    candidates = [e for e in events if e.is_open]
    assume(candidates)
    target = rnd.choice(candidates)
    try:
        change = cal.reschedule(
            PROTOCOL,
            events,
            target.key,
            target.date + timedelta(days=delta),
            "property test",
            CHINA,
            today=today,
        )
    except RescheduleError:
        return
    after = {e.key: e for e in change.events}
    for event in events:
        if event.key == target.key:
            continue
        if event.status in ("done", "missed", "cancelled") or event.date < today:
            assert after[event.key] == event


@FAST
@given(starts, arms, st.one_of(st.none(), st.dates(date(2025, 6, 1), date(2027, 12, 31))))
def test_generate_twice_gives_identical_results(
    start: date, choices: dict[str, str], recurrence: date | None
) -> None:
    first = cal.generate(
        PROTOCOL, choices, start, TZ, ChinaWorkingDays(), recurrence_date=recurrence
    )
    second = cal.generate(PROTOCOL, choices, start, TZ, CHINA, recurrence_date=recurrence)
    assert first == second
    assert [e.to_json() for e in first] == [e.to_json() for e in second]
