"""Properties of the calendar engine, checked on many random calendars (hypothesis)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from app.domain import calendar as cal
from app.domain.calendar import PlannedEvent, RescheduleError
from app.domain.protocol import default_protocol_path, load_protocol
from app.domain.working_days import ChinaWorkingDays

PROTOCOL = load_protocol(default_protocol_path())
CHINA = ChinaWorkingDays()
TZ = ZoneInfo("Asia/Shanghai")
FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _protocol_min_intervals() -> dict[str, int]:
    """min_interval_days per treatment phase, read from the protocol FILE (not from events)."""
    raw = yaml.safe_load(default_protocol_path().read_text("utf-8"))
    phases = raw["phases"].items()
    return {name: p["cycles"]["min_interval_days"] for name, p in phases if "cycles" in p}


MIN_INTERVAL = _protocol_min_intervals()

starts = st.dates(date(2026, 1, 1), date(2027, 12, 31))
arms = st.fixed_dictionaries(
    {
        "pd1": st.sampled_from(["sintilimab", "camrelizumab"]),
        "chemo": st.sampled_from(["paclitaxel", "docetaxel", "irinotecan"]),
    }
)
delays = st.lists(st.tuples(st.integers(1, 39), st.integers(-6, 16)), min_size=0, max_size=3)
salvage_offsets = st.one_of(st.none(), st.integers(30, 700))


def _previous_live_infusion(events: list[PlannedEvent], target: PlannedEvent) -> PlannedEvent:
    """The infusion given before ``target`` in its chain (cycle order, cancelled/missed skipped)."""
    chain = next(c for c in _chains(events) if target in c)
    return chain[chain.index(target) - 1]


def _reschedule_or_justify(
    events: list[PlannedEvent], target: PlannedEvent, days: int, today: date
) -> list[PlannedEvent] | None:
    """Move ``target`` by ``days`` (with a reason); a refusal must be the protocol's minimum gap.

    With a reason, only the minimum interval can refuse a move to a future date: a later date
    never can, an earlier one only when it comes closer than the protocol file's minimum.
    """
    new_date = target.date + timedelta(days=days)
    try:
        change = cal.reschedule(
            PROTOCOL, events, target.key, new_date, "property test", CHINA, today=today
        )
    except RescheduleError as refused:
        assert days < 0, f"a later date was refused: {refused}"
        previous = _previous_live_infusion(events, target)
        assert (new_date - previous.date).days < MIN_INTERVAL[target.phase], refused
        return None
    return change.events


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
        moved = _reschedule_or_justify(events, target, days, today=start)
        if moved is None:
            continue
        assert {e.key for e in moved} == keys
        events = moved
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
            assert gap >= MIN_INTERVAL[current.phase], (previous.key, current.key, gap)


def test_the_minimum_intervals_are_the_protocol_files() -> None:
    # ASSUMPTIONS A7 and A15 in app/protocols/nct07016737.yaml, written out by hand.
    assert MIN_INTERVAL == {"induction": 18, "maintenance": 18, "salvage": 5}


def test_most_reschedules_with_a_reason_succeed() -> None:
    """Over 200 seeded moves of -6..+16 days, at least 80% go through (later ones always)."""
    rnd = random.Random(20260304)
    outcomes: list[bool] = []
    for _ in range(200):
        start = date(2026, 1, 1) + timedelta(days=rnd.randrange(730))
        choices = {
            "pd1": rnd.choice(["sintilimab", "camrelizumab"]),
            "chemo": rnd.choice(["paclitaxel", "docetaxel", "irinotecan"]),
        }
        events = cal.generate(PROTOCOL, choices, start, TZ, CHINA)
        cycle, days = rnd.randint(2, 39), rnd.randint(-6, 16)
        target = next(
            e for e in events if e.kind == "infusion" and e.cycle == cycle and e.phase != "salvage"
        )
        moved = _reschedule_or_justify(events, target, days, today=start)
        if moved is not None:
            assert next(e for e in moved if e.key == target.key).date == (
                target.date + timedelta(days=days)
            )
        outcomes.append(moved is not None)
    assert sum(outcomes) >= 160, f"only {sum(outcomes)} of 200 reschedules succeeded"


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
    except RescheduleError as refused:
        # with a reason, only an infusion's spacing can refuse a move (done ones are not picked)
        assert target.kind == "infusion", refused
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


# --------------------------------------------------------------------------- clinical order


COMPLETION = date(2029, 9, 1)  # registry: study completion date


@FAST
@given(starts, arms, delays, salvage_offsets)
def test_labs_strictly_before_their_infusion_on_a_working_day(
    start: date,
    choices: dict[str, str],
    delay_list: list[tuple[int, int]],
    salvage_offset: int | None,
) -> None:
    events = _scenario(start, choices, delay_list, salvage_offset)
    by_key = {e.key: e for e in events}
    for labs in (e for e in events if e.kind == "labs" and e.is_open and e.date >= start):
        infusion = by_key[labs.anchor]
        assert infusion.date - timedelta(days=3) <= labs.date < infusion.date, labs.key
        if "no_working_day_in_window" not in labs.flags and "rescheduled" not in labs.flags:
            assert CHINA.is_working_day(labs.date), labs.key


@FAST
@given(starts, arms, salvage_offsets)
def test_no_imaging_on_infusion_days_and_barium_after_ct_and_endoscopy(
    start: date, choices: dict[str, str], salvage_offset: int | None
) -> None:
    events = _scenario(start, choices, [], salvage_offset)
    live = [e for e in events if e.is_open]
    infusion_days = {e.date for e in live if e.kind == "infusion"}
    scans = [e for e in live if e.kind in ("imaging", "endoscopy")]
    assert not [e.key for e in scans if e.date in infusion_days]
    barium = [e for e in scans if e.details.get("assessment") == "barium_swallow"]
    for study in barium:
        same_visit = [
            e
            for e in scans
            if e.details.get("assessment") in ("ct", "gastroscopy")
            and e.details.get("study_week") == study.details.get("study_week")
            and e.key.split(".")[0] == study.key.split(".")[0]
        ]
        assert all(e.date < study.date for e in same_visit), study.key
        # the barium study is alone on its day (a routine scan near the salvage response
        # assessment is replaced by it: docs/protocol-assumptions.md A31)
        assert not [e.key for e in scans if e.date == study.date and e.key != study.key]


# Found by the property above (2026-12-07) before A31: routine scans on the response barium day.
@pytest.mark.parametrize(
    ("start", "chemo", "salvage_day"),
    [(date(2026, 8, 2), "paclitaxel", 486), (date(2026, 6, 27), "paclitaxel", 187)],
)
def test_a_salvage_response_barium_swallow_is_alone_on_its_day(
    start: date, chemo: str, salvage_day: int
) -> None:
    choices = {"pd1": "sintilimab", "chemo": chemo}
    events = cal.generate(PROTOCOL, choices, start, TZ, CHINA)
    events = cal.start_salvage(
        PROTOCOL, events, choices, start + timedelta(days=salvage_day), CHINA, today=start
    ).events
    scans = [e for e in events if e.is_open and e.kind in ("imaging", "endoscopy")]
    barium = next(e for e in scans if e.key == "salvage.response.barium_swallow")
    assert [e.key for e in scans if e.date == barium.date] == [barium.key]


@FAST
@given(starts, arms, st.integers(1, 700))
def test_imaging_every_12_weeks_after_an_early_stop_until_completion(
    start: date, choices: dict[str, str], stop_offset: int
) -> None:
    events = cal.generate(PROTOCOL, choices, start, TZ, CHINA)
    on = start + timedelta(days=stop_offset)
    change = cal.stop_treatment(PROTOCOL, events, on, CHINA, today=on)
    weeks = [
        e.details["study_week"]
        for e in change.events
        if e.details.get("assessment") == "barium_swallow" and e.is_open and e.date >= on
    ]
    last_week = (COMPLETION - start).days // 7
    after_stop = [
        w for w in range(12, last_week + 1, 12) if start + timedelta(weeks=w) > on + timedelta(7)
    ]
    if after_stop:
        assert [w for w in weeks if w <= last_week][-len(after_stop) :] == after_stop


@FAST
@example(date(2026, 1, 1), {"pd1": "sintilimab", "chemo": "paclitaxel"}, 1)  # before dose 1
@given(starts, arms, st.one_of(st.none(), st.integers(1, 700)))
def test_survival_contacts_reach_the_completion_date(
    start: date, choices: dict[str, str], stop_offset: int | None
) -> None:
    events = cal.generate(PROTOCOL, choices, start, TZ, CHINA, recurrence_date=start)
    if stop_offset is not None:
        on = start + timedelta(days=stop_offset)
        events = cal.stop_treatment(PROTOCOL, events, on, CHINA, today=on).events
    survival = [e for e in events if e.details.get("contact") == "survival" and e.is_open]
    if stop_offset is None:  # (stopped before the first dose: no infusion is left open)
        last_dose = max(e.date for e in events if e.kind == "infusion" and e.is_open)
        if last_dose + timedelta(60) > COMPLETION:
            return  # treatment runs to the completion date: no survival contact is needed
    endpoint = date(start.year + 2, start.month, start.day)  # 2 years after the recurrence
    assert survival
    last = max(cal._nominal(e) for e in survival)
    assert last <= max(COMPLETION, endpoint) < last + timedelta(days=60)
