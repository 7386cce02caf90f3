"""The calendar engine: generation, working days, reschedule, salvage, progression, stop."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise, product
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app.domain import calendar as cal
from app.domain.calendar import (
    KINDS,
    PHASES,
    CalendarError,
    PlannedEvent,
    RescheduleError,
)
from app.domain.protocol import Protocol, Window, default_protocol_path, load_protocol
from app.domain.working_days import ChinaWorkingDays, WeekendsOnly, working_days_for

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINI = Path(__file__).parent / "data" / "mini_protocol.yaml"
PD1 = ("sintilimab", "camrelizumab")
CHEMO = ("paclitaxel", "docetaxel", "irinotecan")
CHEMO_DOSE = {
    "paclitaxel": "paclitaxel 175 mg/m2",
    "docetaxel": "docetaxel 75 mg/m2",
    "irinotecan": "irinotecan 270 mg/m2",
}
START = date(2026, 3, 2)  # a Monday


@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return load_protocol(default_protocol_path())


@pytest.fixture(scope="module")
def china() -> ChinaWorkingDays:
    return ChinaWorkingDays()


def _generate(
    protocol: Protocol,
    start: date = START,
    working_days=None,
    pd1: str = "sintilimab",
    chemo: str = "docetaxel",
    **kwargs,
) -> list[PlannedEvent]:
    return cal.generate(
        protocol,
        {"pd1": pd1, "chemo": chemo},
        start,
        SHANGHAI,
        working_days or ChinaWorkingDays(),
        **kwargs,
    )


def _by_key(events: list[PlannedEvent]) -> dict[str, PlannedEvent]:
    return {e.key: e for e in events}


def _infusions(events: list[PlannedEvent], phases=("induction", "maintenance")):
    return [e for e in events if e.kind == "infusion" and e.phase in phases]


def _nominal(event: PlannedEvent) -> date:
    return event.moved_from or event.date


def _with_phase(protocol: Protocol, code: str, **changes) -> Protocol:
    phases = dict(protocol.phases)
    phases[code] = replace(phases[code], **changes)
    return replace(protocol, phases=phases)


def _with_cycles(protocol: Protocol, code: str, **changes) -> Protocol:
    block = replace(protocol.phases[code].cycles, **changes)
    return _with_phase(protocol, code, cycles=block)


# --------------------------------------------------------------------------- generate


@pytest.mark.parametrize(("pd1", "chemo"), list(product(PD1, CHEMO)))
def test_two_year_calendar_for_each_combination(protocol: Protocol, pd1: str, chemo: str) -> None:
    events = _generate(protocol, pd1=pd1, chemo=chemo)
    infusions = _infusions(events)
    assert [e.cycle for e in infusions] == list(range(1, 40))  # 4 induction + 35 maintenance
    assert [e.phase for e in infusions] == ["induction"] * 4 + ["maintenance"] * 35
    for n, infusion in enumerate(infusions):
        assert _nominal(infusion) == START + timedelta(days=21 * n)
        assert infusion.window_start <= infusion.date <= infusion.window_end
        assert (infusion.moved_from is not None) == ("moved_non_working_day" in infusion.flags)
    gaps = [(b.date - a.date).days for a, b in pairwise(infusions)]
    assert min(gaps) >= 18
    # maintenance lasts 2 years from its first dose
    first_maintenance = _nominal(infusions[4])
    assert _nominal(infusions[-1]) < first_maintenance + timedelta(days=730)
    assert _nominal(infusions[-1]) + timedelta(days=21) >= first_maintenance + timedelta(days=730)
    dose = f"{pd1} 200 mg"
    assert all(e.drugs == (dose, CHEMO_DOSE[chemo]) for e in infusions[:4])
    assert all(e.drugs == (dose,) for e in infusions[4:])
    assert infusions[0].title_en == f"Induction cycle 1: {dose} + {CHEMO_DOSE[chemo]}"
    assert infusions[4].title_zh.startswith("维持治疗第5周期：")


@pytest.mark.parametrize("chemo", CHEMO)
def test_premedication_follows_the_chemo(protocol: Protocol, chemo: str) -> None:
    events = _generate(protocol, chemo=chemo)
    by_key = _by_key(events)
    premeds = [e for e in events if e.kind == "premedication"]
    expected = {"docetaxel": (-1, 3), "paclitaxel": (0, 1), "irinotecan": None}[chemo]
    if expected is None:
        assert premeds == []
        return
    offset, duration = expected
    assert [e.cycle for e in premeds] == [1, 2, 3, 4]  # chemo only in induction
    for premed in premeds:
        infusion = by_key[premed.anchor]
        assert premed.date == infusion.date + timedelta(days=offset)
        assert premed.details["duration_days"] == duration
        assert premed.details["for_drug"] == chemo


def test_labs_before_every_cycle_thyroid_every_second(protocol: Protocol) -> None:
    events = _generate(protocol)
    by_key = _by_key(events)
    labs = [e for e in events if e.kind == "labs"]
    assert [e.cycle for e in labs] == list(range(1, 40))
    for lab in labs:
        panels = [p["code"] for p in lab.details["panels"]]
        assert panels[:3] == ["blood_count", "liver_function", "renal_function"]
        assert ("thyroid_function" in panels) == (lab.cycle % 2 == 1)
        infusion = by_key[lab.anchor]
        assert infusion.date - timedelta(days=3) <= lab.date < infusion.date
        if "no_working_day_in_window" not in lab.flags:  # e.g. right after the May Day closure
            assert ChinaWorkingDays().is_working_day(lab.date)


def test_checkins_days_3_7_14_after_each_infusion(protocol: Protocol) -> None:
    events = _generate(protocol, chemo="irinotecan", pd1="camrelizumab")
    by_key = _by_key(events)
    checkins = [e for e in events if e.kind == "checkin"]
    assert len(checkins) == 39 * 3
    for checkin in checkins:
        infusion = by_key[checkin.anchor]
        day = checkin.details["day_after_infusion"]
        assert day in (3, 7, 14)
        assert checkin.date == infusion.date + timedelta(days=day)
        codes = [g["code"] for g in checkin.details["guidance"]]
        assert "rccep_skin_nodules" in codes  # camrelizumab, every cycle
        assert ("loperamide" in codes) == (checkin.phase == "induction")  # irinotecan cycles


def test_imaging_cadence(protocol: Protocol) -> None:
    events = _generate(protocol)
    ct = [e for e in events if e.details.get("assessment") == "ct"]
    weeks = [e.details["study_week"] for e in ct]
    # every 12 weeks after week 48, past the end of treatment, to the study completion date
    completion = date(2029, 9, 1)
    assert weeks[:13] == [6, 12, 18, 24, 30, 36, 42, 48, 60, 72, 84, 96, 108]
    assert weeks[13:] == list(range(120, (completion - START).days // 7 + 1, 12))
    for scan in ct:
        nominal = START + timedelta(weeks=scan.details["study_week"])
        assert scan.window_start == nominal - timedelta(days=7)
        assert scan.window_end == nominal + timedelta(days=7)
        assert scan.kind == "imaging"
        assert scan.anchor is None  # fixed to the study start (setting)
    gastroscopy = [e for e in events if e.details.get("assessment") == "gastroscopy"]
    assert [e.kind for e in gastroscopy] == ["endoscopy"] * 8
    assert [e.details["study_week"] for e in gastroscopy] == [12, 36, 60, 84, 108, 132, 156, 180]
    assert not [e for e in events if e.details.get("assessment") == "pet_ct"]  # on demand


def test_natural_end_safety_follow_up(protocol: Protocol) -> None:
    events = _generate(protocol, recurrence_date=date(2026, 2, 1))
    last = _infusions(events)[-1]
    follow = [e for e in events if e.phase == "follow_up"]
    contacts = [e for e in follow if e.kind == "followup"]
    safety = [e for e in contacts if e.details["contact"] == "safety"]
    assert [e.key for e in safety] == ["follow_up.safety.d30", "follow_up.safety.d90"]
    assert [_nominal(e) - last.date for e in safety] == [timedelta(30), timedelta(90)]
    assert all(e.anchor == last.key for e in contacts)
    # 2 years after recurrence is before the end of maintenance, but overall survival needs
    # contacts every 60 days until the study completion date (2029-09-01)
    survival = [e for e in contacts if e.details["contact"] == "survival"]
    assert [_nominal(e) for e in survival] == [
        last.date + timedelta(60 * k) for k in range(1, len(survival) + 1)
    ]
    assert _nominal(survival[-1]) <= date(2029, 9, 1) < _nominal(survival[-1]) + timedelta(60)


def test_order_keys_kinds_and_json(protocol: Protocol) -> None:
    events = _generate(protocol)
    order = [(e.date, KINDS.index(e.kind), e.key) for e in events]
    assert order == sorted(order)
    assert len({e.key for e in events}) == len(events)
    assert {e.phase for e in events} <= set(PHASES)
    data = json.loads(json.dumps([e.to_json() for e in events], ensure_ascii=False))
    first = data[0]
    assert set(first) >= {
        "date",
        "kind",
        "phase",
        "cycle",
        "window_start",
        "window_end",
        "moved_from",
        "flags",
        "drugs",
        "title_en",
        "title_zh",
        "key",
        "status",
        "details",
    }
    assert [PlannedEvent.from_json(item) for item in data] == events


def test_generate_is_deterministic(protocol: Protocol) -> None:
    assert _generate(protocol) == _generate(protocol)


def test_unknown_choice_is_refused(protocol: Protocol) -> None:
    with pytest.raises(ValueError, match="expected one of paclitaxel, docetaxel, irinotecan"):
        _generate(protocol, chemo="cisplatin")


# --------------------------------------------------------------------------- working days


def test_china_calendar_make_up_days_and_holidays() -> None:
    china = working_days_for("CN")
    assert china.is_working_day(date(2026, 2, 14))  # Saturday, make-up working day
    assert china.is_working_day(date(2026, 2, 28))  # Saturday, make-up working day
    assert not any(china.is_working_day(date(2026, 2, d)) for d in range(16, 21))
    assert not any(china.is_working_day(date(2026, 10, d)) for d in range(1, 8))
    assert china.is_working_day(date(2026, 10, 10))  # Saturday, make-up working day
    assert not china.is_working_day(date(2027, 10, 1))  # later years load on demand
    assert WeekendsOnly().is_working_day(date(2026, 10, 1))


def test_spring_festival_moves_to_make_up_saturday(protocol: Protocol) -> None:
    events = _generate(protocol, start=date(2026, 1, 27))
    c2 = _by_key(events)["induction.c2.infusion"]
    assert c2.moved_from == date(2026, 2, 17)  # inside the Spring Festival holiday
    assert c2.date == date(2026, 2, 14)  # the nearest working day: the make-up Saturday
    # the make-up Saturday before the closure, and Feb 15-23 in its nadir days: flagged
    assert c2.flags == ("moved_non_working_day", "closure_in_nadir")
    assert c2.details["closure"] == {"make_up_day": "2026-02-14"}


def test_national_day_moves_to_nearest_working_day(protocol: Protocol) -> None:
    events = _generate(protocol, start=date(2026, 9, 10))
    c2 = _by_key(events)["induction.c2.infusion"]
    assert c2.moved_from == date(2026, 10, 1)
    assert c2.date == date(2026, 9, 30)


def test_a_move_never_breaks_the_minimum_interval(protocol: Protocol) -> None:
    stricter = _with_cycles(protocol, "induction", min_interval_days=19)
    events = _generate(stricter, start=date(2026, 1, 27))
    c2 = _by_key(events)["induction.c2.infusion"]
    # Feb 14 would be only 18 days after cycle 1: the next working day in the window wins
    assert c2.date == date(2026, 2, 24)
    assert c2.moved_from == date(2026, 2, 17)


def test_no_working_day_in_window_is_flagged(protocol: Protocol) -> None:
    tight = _with_cycles(
        protocol,
        "induction",
        infusion=replace(protocol.phases["induction"].cycles.infusion, window=Window(0, 2)),
    )
    events = _generate(tight, start=date(2026, 9, 14))
    c2 = _by_key(events)["induction.c2.infusion"]
    assert c2.date == date(2026, 10, 5)  # Oct 5-7 are all holidays: it stays
    assert c2.moved_from is None
    assert "no_working_day_in_window" in c2.flags


def test_first_infusion_never_before_the_start(protocol: Protocol) -> None:
    events = _generate(protocol, start=date(2026, 3, 7))  # a Saturday
    c1 = _by_key(events)["induction.c1.infusion"]
    assert c1.date == date(2026, 3, 9)  # Monday, not the nearer-by-tie Friday before
    assert c1.window_start == date(2026, 3, 7)


# --------------------------------------------------------------------------- reschedule


def test_seven_day_delay_of_cycle_2_shifts_dependents_and_later_cycles(
    protocol: Protocol,
) -> None:
    weekdays = WeekendsOnly()
    events = _generate(protocol, working_days=weekdays)
    before = _by_key(events)
    c2 = before["induction.c2.infusion"]
    change = cal.reschedule(
        protocol, events, c2.key, c2.date + timedelta(7), None, weekdays, today=START
    )
    after = _by_key(change.events)
    assert set(after) == set(before)
    moved = {k for k in before if after[k].date != before[k].date}
    expected = {
        k
        for k, e in before.items()
        if e.phase in ("induction", "maintenance", "follow_up")
        and e.kind != "imaging"
        and e.kind != "endoscopy"
        and (e.cycle or 99) >= 2
    }
    assert moved == expected
    for key in moved:
        assert after[key].date - before[key].date == timedelta(7), key
    assert after[c2.key].flags == ("rescheduled",)
    assert after[c2.key].moved_from == c2.date
    assert after["induction.c2.labs"].flags[-1] == "shifted"
    assert change.moved_count == len(moved)
    assert change.left_window_keys == []
    assert {c.key for c in change.changes} == moved


def test_delayed_cycle_is_readjusted_for_holidays(protocol: Protocol, china) -> None:
    events = _generate(protocol, start=date(2026, 8, 20), working_days=china)
    before = _by_key(events)
    c3 = before["induction.c3.infusion"]
    assert (c3.moved_from, c3.date) == (date(2026, 10, 1), date(2026, 9, 30))  # National Day
    change = cal.reschedule(
        protocol,
        events,
        "induction.c2.infusion",
        date(2026, 9, 17),  # a 7-day delay
        None,
        china,
        today=date(2026, 9, 1),
    )
    c3 = change.event("induction.c3.infusion")
    assert (c3.date, c3.moved_from) == (date(2026, 10, 8), None)  # Oct 1 + 7 is a working day
    assert "moved_non_working_day" not in c3.flags
    labs = change.event("induction.c3.labs")
    # Oct 5-7 are National Day holidays: no working day 1-3 days before, flagged for the nurse
    assert (labs.date, labs.window_start, labs.window_end) == (
        date(2026, 10, 7),
        date(2026, 10, 5),
        date(2026, 10, 7),
    )
    assert "no_working_day_in_window" in labs.flags
    checkin = change.event("induction.c3.checkin.d3")
    assert checkin.date == date(2026, 10, 11)


def test_imaging_follows_delays_when_the_setting_says_so(protocol: Protocol) -> None:
    follow = replace(
        protocol, settings=replace(protocol.settings, assessments_follow_treatment_delays=True)
    )
    weekdays = WeekendsOnly()
    events = _generate(follow, working_days=weekdays)
    ct6 = _by_key(events)["assessment.ct.w6"]
    assert ct6.anchor == "induction.c3.infusion"
    c2 = _by_key(events)["induction.c2.infusion"]
    change = cal.reschedule(
        follow, events, c2.key, c2.date + timedelta(7), None, weekdays, today=START
    )
    assert change.event("assessment.ct.w6").date == ct6.date + timedelta(7)
    # with the default setting the same delay leaves the scan alone
    fixed = _generate(protocol, working_days=weekdays)
    same = cal.reschedule(
        protocol, fixed, c2.key, c2.date + timedelta(7), None, weekdays, today=START
    )
    assert same.event("assessment.ct.w6").date == ct6.date


def test_done_and_past_events_never_move(protocol: Protocol) -> None:
    weekdays = WeekendsOnly()
    events = _generate(protocol, working_days=weekdays)
    by_key = _by_key(events)
    c2 = by_key["induction.c2.infusion"]
    done_key = "induction.c2.premedication.dexamethasone_3_days"
    events = [replace(e, status="done") if e.key == done_key else e for e in events]
    today = c2.date + timedelta(1)  # the labs (before today) are in the past
    change = cal.reschedule(
        protocol,
        events,
        c2.key,
        c2.date + timedelta(7),
        "patient had a fever",
        weekdays,
        today=today,
    )
    after = _by_key(change.events)
    assert after[done_key].date == by_key[done_key].date
    assert after["induction.c2.labs"].date == by_key["induction.c2.labs"].date
    assert after["induction.c2.checkin.d3"].date == by_key["induction.c2.checkin.d3"].date + (
        timedelta(7)
    )


def test_a_done_event_cannot_be_moved(protocol: Protocol) -> None:
    events = [
        replace(e, status="done") if e.key == "induction.c1.infusion" else e
        for e in _generate(protocol)
    ]
    with pytest.raises(RescheduleError) as err:
        cal.reschedule(
            protocol,
            events,
            "induction.c1.infusion",
            date(2026, 3, 4),
            "x",
            ChinaWorkingDays(),
            today=START,
        )
    assert str(err.value) == "induction.c1.infusion is already done; a done event never moves"


def test_outside_window_needs_a_reason(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    c3 = _by_key(events)["induction.c3.infusion"]  # 2026-04-13, window 04-10..04-20
    late = date(2026, 4, 24)
    with pytest.raises(RescheduleError) as err:
        cal.reschedule(protocol, events, c3.key, late, "  ", china, today=START)
    assert str(err.value) == (
        "2026-04-24 is outside the window of induction.c3.infusion (2026-04-10 to 2026-04-20); "
        "give a reason to move it there"
    )
    change = cal.reschedule(protocol, events, c3.key, late, "neutropenia", china, today=START)
    moved = change.event(c3.key)
    assert moved.date == late
    assert "outside_window" in moved.flags
    assert moved.details["reschedule_reason"] == "neutropenia"
    assert c3.key in change.left_window_keys


def test_minimum_interval_is_enforced_on_reschedule(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    c2 = _by_key(events)["induction.c2.infusion"]
    c1 = _by_key(events)["induction.c1.infusion"]
    with pytest.raises(RescheduleError, match="the protocol's minimum is 18 days"):
        cal.reschedule(
            protocol, events, c2.key, c1.date + timedelta(15), "early", china, today=START
        )


def test_reschedule_errors_and_no_op(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    with pytest.raises(RescheduleError, match="no event with the key 'nope'"):
        cal.reschedule(protocol, events, "nope", START, None, china, today=START)
    c2 = _by_key(events)["induction.c2.infusion"]
    same = cal.reschedule(protocol, events, c2.key, c2.date, None, china, today=START)
    assert same.changes == [] and same.events == events
    with pytest.raises(RescheduleError, match="is before today"):
        cal.reschedule(protocol, events, c2.key, c2.date - timedelta(1), None, china, today=c2.date)
    cancelled = [replace(e, status="cancelled") if e.key == c2.key else e for e in events]
    with pytest.raises(RescheduleError, match="is cancelled"):
        cal.reschedule(protocol, cancelled, c2.key, c2.date, None, china, today=START)


def test_a_reschedule_names_what_is_unusual_about_the_new_date(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    c2 = _by_key(events)["induction.c2.infusion"]
    # 21 days after Monday 2 March; window 3 days early to 7 days late
    assert (c2.date, c2.window_start, c2.window_end) == (
        date(2026, 3, 23),
        date(2026, 3, 20),
        date(2026, 3, 30),
    )

    def moved(day: date, reason: str | None) -> PlannedEvent:
        change = cal.reschedule(protocol, events, c2.key, day, reason, china, today=START)
        event = change.event(c2.key)
        assert (event.date, event.moved_from) == (day, date(2026, 3, 23))
        return event

    first_day = moved(date(2026, 3, 20), "  ")  # Friday, the window's first day
    assert first_day.flags == ("rescheduled",)
    assert "reschedule_reason" not in first_day.details  # a blank reason is no reason
    saturday = moved(date(2026, 3, 28), " clinic opens for the trial ")
    assert saturday.flags == ("rescheduled", "on_non_working_day")
    assert saturday.details["reschedule_reason"] == "clinic opens for the trial"
    late = moved(date(2026, 4, 1), "neutropenia")  # Wednesday, 2 days after the window
    assert late.flags == ("rescheduled", "outside_window")
    holiday = moved(date(2026, 4, 6), "neutropenia")  # Qingming Monday: closed, outside
    assert holiday.flags == ("rescheduled", "outside_window", "on_non_working_day")


def test_every_refusal_of_a_reschedule_says_why(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)  # c1 Mar 2, c2 Mar 23, c3 Apr 13
    c2 = "induction.c2.infusion"

    def refusal(evts, key, day, reason, today) -> str:
        with pytest.raises(RescheduleError) as err:
            cal.reschedule(protocol, evts, key, day, reason, china, today=today)
        return str(err.value)

    assert refusal(events, c2, date(2026, 3, 19), None, date(2026, 3, 19)) == (
        "2026-03-19 is outside the window of induction.c2.infusion (2026-03-20 to 2026-03-30); "
        "give a reason to move it there"
    )
    assert refusal(events, c2, date(2026, 3, 20), None, date(2026, 3, 21)) == (
        "2026-03-20 is before today (2026-03-21); give a reason to record a past date"
    )
    assert refusal(events, c2, date(2026, 3, 17), "early", START) == (
        "induction.c2.infusion on 2026-03-17 would be 15 days after induction.c1.infusion "
        "(2026-03-02); the protocol's minimum is 18 days"
    )
    for status in ("cancelled", "missed"):
        gone = [replace(e, status=status) if e.key == c2 else e for e in events]
        assert refusal(gone, c2, date(2026, 3, 24), None, START) == (
            f"induction.c2.infusion is {status}; only planned or confirmed events can be moved"
        )
    # the window's first and last days and today itself need no reason
    for day in (date(2026, 3, 20), date(2026, 3, 30)):
        cal.reschedule(protocol, events, c2, day, None, china, today=date(2026, 3, 20))


def test_an_infusion_already_past_holds_the_one_before_it(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    c2, c3 = "induction.c2.infusion", "induction.c3.infusion"
    today = date(2026, 4, 14)  # c3 was due yesterday (Apr 13) and can no longer move
    with pytest.raises(RescheduleError) as err:
        cal.reschedule(protocol, events, c2, date(2026, 3, 27), "given late", china, today=today)
    assert str(err.value) == (
        "induction.c2.infusion on 2026-03-27 would be closer than 18 days to "
        "induction.c3.infusion (2026-04-13), which can no longer move"
    )
    # 18 days before it is allowed, and nothing already past moves
    change = cal.reschedule(
        protocol, events, c2, date(2026, 3, 26), "given late", china, today=today
    )
    assert change.event(c2).date == date(2026, 3, 26)
    assert change.event(c3).date == date(2026, 4, 13)
    assert [c.key for c in change.changes] == [c2]
    # a missed or cancelled next infusion holds nothing
    for status in ("missed", "cancelled"):
        gone = [replace(e, status=status) if e.key == c3 else e for e in events]
        change = cal.reschedule(protocol, gone, c2, date(2026, 3, 27), "late", china, today=today)
        assert change.event(c2).date == date(2026, 3, 27)


def test_the_minimum_interval_skips_infusions_not_given(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    c2, c3 = "induction.c2.infusion", "induction.c3.infusion"
    early = date(2026, 4, 8)  # 16 days after c2 (Mar 23), 37 after c1 (Mar 2)
    with pytest.raises(RescheduleError, match=r"16 days after induction\.c2\.infusion"):
        cal.reschedule(protocol, events, c3, early, "scan slot", china, today=START)
    for status in ("missed", "cancelled"):
        gone = [replace(e, status=status) if e.key == c2 else e for e in events]
        change = cal.reschedule(protocol, gone, c3, early, "scan slot", china, today=START)
        assert change.event(c3).date == early


def test_a_weekly_salvage_infusion_is_spaced_from_infusions_not_fractions(
    protocol: Protocol, china
) -> None:
    _, salvage = _salvage(protocol, china)
    c1 = salvage.event("salvage.c1.infusion")
    # cycle 1 rides on the first fraction, Monday 21 September
    assert (c1.date, c1.anchor) == (SALVAGE_START, "salvage.rt.f1")
    change = cal.reschedule(
        protocol, salvage.events, c1.key, date(2026, 9, 22), None, china, today=date(2026, 9, 1)
    )
    assert change.event(c1.key).date == date(2026, 9, 22)


def test_a_nurses_date_is_where_a_later_delay_moves_from(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    c2, c3 = "induction.c2.infusion", "induction.c3.infusion"
    # c3 planned Monday 13 April; the nurse puts it on Wednesday 15 April
    nurse = cal.reschedule(protocol, events, c3, date(2026, 4, 15), None, china, today=START)
    # then cycle 2 is delayed a week (Mar 23 -> Mar 30): c3 follows from the nurse's date
    change = cal.reschedule(protocol, nurse.events, c2, date(2026, 3, 30), None, china, today=START)
    moved = change.event(c3)
    assert (moved.date, moved.moved_from) == (date(2026, 4, 22), None)
    # and May Day (May 1-5) is now in days 9-13 after it
    assert moved.flags == ("shifted", "closure_in_nadir")
    assert moved.details["closure"] == {"from": "2026-05-01", "to": "2026-05-05", "days": 5}
    assert (moved.window_start, moved.window_end) == (date(2026, 4, 17), date(2026, 4, 27))


def test_an_event_due_today_still_moves_with_its_anchor(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    labs = _by_key(events)["induction.c2.labs"]
    assert labs.date == date(2026, 3, 20)  # Friday before the Monday 23 March infusion
    change = cal.reschedule(
        protocol,
        events,
        "induction.c2.infusion",
        date(2026, 3, 25),
        None,
        china,
        today=date(2026, 3, 20),
    )
    moved = change.event(labs.key)
    # labs the day before the Wednesday infusion, inside its new window (Mar 22-24)
    assert (moved.date, moved.window_start, moved.window_end) == (
        date(2026, 3, 24),
        date(2026, 3, 22),
        date(2026, 3, 24),
    )
    assert moved.flags == ("shifted",)


def test_a_following_infusion_keeps_the_minimum_interval(protocol: Protocol, china) -> None:
    events = _generate(protocol, start=date(2026, 9, 14), working_days=china)
    c2, c3 = "induction.c2.infusion", "induction.c3.infusion"
    # c2 is due Monday 5 October (National Day): Thursday 8 October is nearer than 30 September
    assert (_by_key(events)[c2].date, _by_key(events)[c3].date) == (
        date(2026, 10, 8),
        date(2026, 10, 26),
    )
    # five days later, Tuesday 13 October: c3 is due 18 days after it, Saturday 31 October;
    # Friday 30 October is nearer but 17 days after c2, so Monday 2 November
    change = cal.reschedule(
        protocol, events, c2, date(2026, 10, 13), "infection", china, today=date(2026, 10, 1)
    )
    moved = change.event(c3)
    assert (moved.date, moved.moved_from) == (date(2026, 11, 2), date(2026, 10, 31))
    assert moved.flags == ("moved_non_working_day", "shifted")


def test_labs_a_nurse_moved_stay_before_a_delayed_infusion(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    labs = "induction.c2.labs"  # Friday 20 March, before the Monday 23 March infusion
    # the nurse books them on Saturday 21 March (inside their window, Mar 20-22)
    nurse = cal.reschedule(protocol, events, labs, date(2026, 3, 21), None, china, today=START)
    assert nurse.event(labs).flags == ("rescheduled", "on_non_working_day")
    # the infusion then moves to Wednesday 25 March: the labs' window is again the 3 days
    # before it (Mar 22-24), so they go on Tuesday 24 March, never on the infusion day
    change = cal.reschedule(
        protocol, nurse.events, "induction.c2.infusion", date(2026, 3, 25), None, china, today=START
    )
    moved = change.event(labs)
    assert (moved.date, moved.window_start, moved.window_end) == (
        date(2026, 3, 24),
        date(2026, 3, 22),
        date(2026, 3, 24),
    )
    assert moved.flags == ("shifted",)


def test_labs_keep_their_own_window_on_both_sides_when_they_follow(
    protocol: Protocol, china
) -> None:
    block = protocol.phases["induction"].cycles
    rule = replace(block.labs.rule, offset_days=-2, window=Window(1, 1))
    wider = _with_cycles(protocol, "induction", labs=replace(block.labs, rule=rule))
    events = _generate(wider, working_days=china)
    labs = _by_key(events)["induction.c2.labs"]
    # planned Saturday 21 March (2 days before Monday 23 March), window Mar 20-22: Friday
    assert (labs.date, labs.moved_from, labs.window_start, labs.window_end) == (
        date(2026, 3, 20),
        date(2026, 3, 21),
        date(2026, 3, 20),
        date(2026, 3, 22),
    )
    change = cal.reschedule(
        wider, events, "induction.c2.infusion", date(2026, 3, 25), None, china, today=START
    )
    moved = change.event(labs.key)
    # planned Monday 23 March, window Mar 22-24: the latest working day is Tuesday 24 March
    assert (moved.date, moved.moved_from, moved.window_start, moved.window_end) == (
        date(2026, 3, 24),
        date(2026, 3, 23),
        date(2026, 3, 22),
        date(2026, 3, 24),
    )
    assert moved.flags == ("shifted",)  # Monday was a working day: not "moved" off it


def test_a_progression_change_lists_each_flagged_event(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    on = date(2026, 7, 4)  # Saturday; the review, due Saturday 11 July, is held Friday 10 July
    change = cal.record_progression(protocol, events, on, today=on, working_days=china)
    flagged = {e.key for e in events if e.date >= on and e.phase != "follow_up"}
    assert len(flagged) > 20
    assert {c.key for c in change.changes} == flagged | {"review.progression1"}
    for c in change.changes:
        if c.key in flagged:
            assert (c.old_date == c.new_date, c.old_status, c.new_status, c.flags_added) == (
                True,
                "planned",
                "planned",
                ("progression_recorded",),
            ), c.key
            assert not c.left_window and not c.added and not c.moved
    review = next(c for c in change.changes if c.key == "review.progression1")
    # an added event lists no flags as added, even the one saying it was moved
    assert (review.old_date, review.new_date, review.old_status, review.flags_added) == (
        None,
        date(2026, 7, 10),
        None,
        (),
    )
    assert change.event(review.key).flags == ("moved_non_working_day",)
    # in date order (then key): the review comes among the events of its week
    ordered = [(c.new_date, c.key) for c in change.changes]
    assert ordered == sorted(ordered)
    assert ordered[-1][1] != review.key and ordered[-1][0] > date(2027, 1, 1)


def test_a_working_copy_refuses_a_second_event_with_a_key(protocol: Protocol) -> None:
    events = _generate(protocol)
    work = cal._Working(events)
    c1 = _by_key(events)["induction.c1.infusion"]
    with pytest.raises(CalendarError) as err:
        work.add(replace(c1, date=date(2026, 3, 9)))
    assert str(err.value) == "an event with the key 'induction.c1.infusion' already exists"


# --------------------------------------------------------------------------- salvage


SALVAGE_START = date(2026, 9, 21)


def _salvage(protocol: Protocol, china, **kwargs):
    events = _generate(protocol, working_days=china, chemo="paclitaxel")
    change = cal.start_salvage(
        protocol,
        events,
        {"pd1": "sintilimab", "chemo": "paclitaxel"},
        SALVAGE_START,
        china,
        today=date(2026, 9, 1),
        **kwargs,
    )
    return events, change


def test_radiotherapy_fractions_only_on_working_days(protocol: Protocol, china) -> None:
    _, change = _salvage(protocol, china)
    fractions = [e for e in change.events if e.kind == "radiotherapy"]
    days = [e.date for e in fractions]
    assert len(days) == 28
    assert [e.details["fraction"] for e in fractions] == list(range(1, 29))
    assert all(china.is_working_day(d) for d in days)
    assert days[0] == SALVAGE_START
    assert date(2026, 10, 10) in days  # make-up Saturday
    assert not [d for d in days if date(2026, 10, 1) <= d <= date(2026, 10, 7)]
    # one fraction every working day, none skipped
    span = [days[0] + timedelta(i) for i in range((days[-1] - days[0]).days + 1)]
    assert days == [d for d in span if china.is_working_day(d)]


def test_a_moved_fraction_pushes_the_next_ones_one_working_day_each(
    protocol: Protocol, china
) -> None:
    _, salvage = _salvage(protocol, china)

    def days(change, first: int, last: int) -> list[date]:
        return [change.event(f"salvage.rt.f{n}").date for n in range(first, last + 1)]

    # from Monday 21 September: Mid-Autumn (Sep 25-27) and National Day (Oct 1-7) closed,
    # Saturday 10 October a make-up working day
    assert days(salvage, 1, 10) == [
        date(2026, 9, 21),
        date(2026, 9, 22),
        date(2026, 9, 23),
        date(2026, 9, 24),
        date(2026, 9, 28),
        date(2026, 9, 29),
        date(2026, 9, 30),
        date(2026, 10, 8),
        date(2026, 10, 9),
        date(2026, 10, 10),
    ]
    today = date(2026, 9, 1)
    change = cal.reschedule(
        protocol,
        salvage.events,
        "salvage.rt.f3",
        date(2026, 9, 24),
        "machine service",
        china,
        today=today,
    )
    assert days(change, 1, 11) == [
        date(2026, 9, 21),
        date(2026, 9, 22),
        date(2026, 9, 24),
        date(2026, 9, 28),
        date(2026, 9, 29),
        date(2026, 9, 30),
        date(2026, 10, 8),
        date(2026, 10, 9),
        date(2026, 10, 10),
        date(2026, 10, 12),
        date(2026, 10, 13),
    ]
    f4 = change.event("salvage.rt.f4")
    assert (f4.window_start, f4.window_end, f4.moved_from, f4.flags) == (
        date(2026, 9, 28),
        date(2026, 9, 28),
        None,
        ("shifted",),
    )
    # the fraction before the nurse's one moves up to Wednesday 23 September: the nurse's
    # Thursday is now simply the next working day, the sequence's own date again
    again = cal.reschedule(
        protocol,
        change.events,
        "salvage.rt.f2",
        date(2026, 9, 23),
        "machine service",
        china,
        today=today,
    )
    f3 = again.event("salvage.rt.f3")
    assert (f3.date, f3.moved_from, f3.flags) == (date(2026, 9, 24), None, ())
    # the weekly chemotherapy riding on the first fraction moves with it, to the same day
    first = cal.reschedule(
        protocol,
        salvage.events,
        "salvage.rt.f1",
        date(2026, 9, 22),
        "machine service",
        china,
        today=today,
    )
    assert days(first, 1, 3) == [date(2026, 9, 22), date(2026, 9, 23), date(2026, 9, 24)]
    assert first.event("salvage.c1.infusion").date == date(2026, 9, 22)


def test_weekly_chemotherapy_block(protocol: Protocol, china) -> None:
    _, change = _salvage(protocol, china)
    salvage = [e for e in change.events if e.phase == "salvage"]
    infusions = [e for e in salvage if e.kind == "infusion"]
    assert [e.cycle for e in infusions] == [1, 2, 3, 4, 5]
    assert all(e.drugs == ("paclitaxel 50 mg/m2", "carboplatin AUC 2") for e in infusions)
    # on radiotherapy days: Oct 5 (National Day) moves to the next fraction, Oct 8; Oct 12
    # would be 4 days later, under the 5-day minimum: Oct 13
    assert [e.date for e in infusions] == [
        date(2026, 9, 21),
        date(2026, 9, 28),
        date(2026, 10, 8),
        date(2026, 10, 13),
        date(2026, 10, 19),
    ]
    fractions = {e.key: e.date for e in change.events if e.kind == "radiotherapy"}
    assert all(fractions[e.anchor] == e.date for e in infusions)  # they move with the RT
    assert min((b.date - a.date).days for a, b in pairwise(infusions)) >= 5
    assert [e.cycle for e in salvage if e.kind == "labs"] == [1, 2, 3, 4, 5]
    premeds = [e for e in salvage if e.kind == "premedication"]
    assert [e.details["for_drug"] for e in premeds] == ["paclitaxel"] * 5
    assert set(change.added_keys) == {e.key for e in salvage}


def test_checkins_twice_weekly_during_radiotherapy(protocol: Protocol, china) -> None:
    _, change = _salvage(protocol, china)
    fractions = [e for e in change.events if e.kind == "radiotherapy"]
    checkins = [e for e in change.events if e.phase == "salvage" and e.kind == "checkin"]
    during = [e for e in checkins if "radiotherapy_week" in e.details]
    after = [e for e in checkins if "days_after_radiotherapy" in e.details]
    last = fractions[-1].date
    assert all(SALVAGE_START < e.date <= last for e in during)
    per_week: dict[int, int] = {}
    for e in during:
        per_week[e.details["radiotherapy_week"]] = (
            per_week.get(e.details["radiotherapy_week"], 0) + 1
        )
    full_weeks = [w for w in per_week if SALVAGE_START + timedelta(7 * w) <= last]
    assert all(per_week[w] == 2 for w in full_weeks)
    assert [e.date - last for e in after] == [timedelta(7), timedelta(14)]


def test_maintenance_pauses_during_salvage(protocol: Protocol, china) -> None:
    events, change = _salvage(protocol, china)
    before = _by_key(events)
    after = _by_key(change.events)
    block_end = max(
        e.date for e in change.events if e.phase == "salvage" and e.kind in cal.DOSE_KINDS
    )
    resume = block_end + timedelta(14)
    maintenance = [e for e in _infusions(change.events) if e.phase == "maintenance"]
    assert len(maintenance) == 35  # postponed, not dropped
    assert not [e for e in maintenance if SALVAGE_START <= e.date < resume]
    first_paused = next(e for e in maintenance if e.date >= resume)
    assert "paused_for_salvage" in first_paused.flags
    assert first_paused.date - resume <= timedelta(7)
    shift = _nominal(first_paused) - _nominal(before[first_paused.key])
    for e in maintenance:
        if before[e.key].date >= SALVAGE_START:
            assert _nominal(e) - _nominal(before[e.key]) == shift
        else:
            assert e == before[e.key]
    assert after["assessment.ct.w36"].date == before["assessment.ct.w36"].date
    gaps = [(b.date - a.date).days for a, b in pairwise(maintenance)]
    assert min(gaps) >= 18


def test_infusions_paused_for_salvage_say_so_down_the_chain(protocol: Protocol, china) -> None:
    _, change = _salvage(protocol, china)
    # the last fraction is on 4 November: maintenance resumes 14 days later, Wednesday
    # 18 November, with cycle 11 (planned Monday 28 September); the next ones follow 51 days on
    expected = {
        "maintenance.c11.infusion": date(2026, 11, 18),
        "maintenance.c12.infusion": date(2026, 12, 9),
        "maintenance.c12.checkin.d3": date(2026, 12, 12),
    }
    for key, day in expected.items():
        event = change.event(key)
        assert (event.date, event.flags) == (day, ("shifted", "paused_for_salvage")), key


def test_maintenance_continue_rule(protocol: Protocol, china) -> None:
    rule = _with_phase(protocol, "salvage", ongoing_treatment="continue")
    events, change = _salvage(rule, china)
    before = _by_key(events)
    for e in _infusions(change.events):
        assert e == before[e.key]


def test_maintenance_stop_rule(protocol: Protocol, china) -> None:
    rule = _with_phase(protocol, "salvage", ongoing_treatment="stop")
    _, change = _salvage(rule, china)
    after = _by_key(change.events)
    stopped = [e for e in change.events if e.phase == "maintenance" and e.date >= SALVAGE_START]
    treatment = [e for e in stopped if e.kind in ("infusion", "labs", "premedication")]
    assert treatment and all(e.status == "cancelled" for e in treatment)
    assert all("stopped_for_salvage" in e.flags for e in treatment)
    routine = [e for e in change.events if e.key.startswith("assessment.")]
    later = [e for e in routine if e.date > date(2027, 1, 1)]
    assert later and all(e.status == "planned" for e in later)  # assessments continue
    last_dose = max(
        e.date for e in change.events if e.phase == "salvage" and e.kind in cal.DOSE_KINDS
    )
    safety = after["follow_up.safety.d30"]
    assert safety.status == "planned"
    assert _nominal(safety) == last_dose + timedelta(30)


def test_fraction_count_override_and_limits(protocol: Protocol, china) -> None:
    _, change = _salvage(protocol, china, fractions=25)
    assert len([e for e in change.events if e.kind == "radiotherapy"]) == 25
    with pytest.raises(
        CalendarError, match=r"30 fractions is outside the protocol's range \(25-28\)"
    ):
        _salvage(protocol, china, fractions=30)


def test_salvage_cannot_start_twice(protocol: Protocol, china) -> None:
    _, change = _salvage(protocol, china)
    with pytest.raises(CalendarError, match="already in the calendar"):
        cal.start_salvage(
            protocol,
            change.events,
            {"pd1": "sintilimab", "chemo": "paclitaxel"},
            date(2027, 1, 4),
            china,
            today=date(2026, 12, 1),
        )


def test_salvage_on_a_holiday_starts_the_next_working_day(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    change = cal.start_salvage(
        protocol,
        events,
        {"pd1": "sintilimab", "chemo": "docetaxel"},
        date(2026, 10, 3),
        china,
        today=date(2026, 9, 1),
    )
    f1 = change.event("salvage.rt.f1")
    assert f1.date == date(2026, 10, 8)
    assert f1.moved_from == date(2026, 10, 3)
    assert f1.window_start <= f1.date <= f1.window_end


# --------------------------------------------------------------------------- progression, stop


def test_record_progression_flags_and_adds_a_review(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    on = date(2026, 6, 1)
    change = cal.record_progression(protocol, events, on, today=on)
    assert change.moved_count == 0
    assert change.added_keys == ["review.progression1"]
    review = change.event("review.progression1")
    assert (review.kind, review.date, review.phase) == ("review", date(2026, 6, 8), "maintenance")
    before = _by_key(events)
    for e in change.events:
        if e.key in before:
            assert e.date == before[e.key].date and e.status == before[e.key].status
            flagged = "progression_recorded" in e.flags
            assert flagged == (e.date >= on and e.phase != "follow_up"), e.key
    with pytest.raises(CalendarError, match="future date"):
        cal.record_progression(protocol, events, on, today=on - timedelta(1))


def test_stop_treatment(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    c9 = _by_key(events)["maintenance.c9.infusion"]
    events = [replace(e, status="done") if e.date <= c9.date else e for e in events]
    on = c9.date + timedelta(5)
    recurrence = date(2026, 2, 1)
    change = cal.stop_treatment(protocol, events, on, china, today=on, recurrence_date=recurrence)
    after = _by_key(change.events)
    assert set(after) >= {e.key for e in events}  # nothing removed
    for e in events:
        new = after[e.key]
        if e.status == "done":
            assert new == e
        elif e.phase != "follow_up" and e.date >= on:
            keep = e.kind == "checkin" and e.anchor == c9.key
            keep = keep or e.kind in ("imaging", "endoscopy")  # until progression
            assert new.status == ("planned" if keep else "cancelled"), e.key
    safety = [after["follow_up.safety.d30"], after["follow_up.safety.d90"]]
    assert [_nominal(e) for e in safety] == [c9.date + timedelta(30), c9.date + timedelta(90)]
    survival = sorted(
        (e for e in change.events if e.key.startswith("follow_up.survival.")), key=lambda e: e.date
    )
    endpoint = date(2028, 2, 1)
    completion = date(2029, 9, 1)  # the registry's study completion date
    regular = [e for e in survival if e.key != "follow_up.survival.end" and e.is_open]
    assert [_nominal(e) for e in regular] == [
        on + timedelta(60 * k) for k in range(1, len(regular) + 1)
    ]
    assert _nominal(regular[-1]) <= completion < _nominal(regular[-1]) + timedelta(60)
    assert _nominal(after["follow_up.survival.end"]) == endpoint
    # imaging continues every 12 weeks after the stop (progression-free survival)
    ct = [e for e in change.events if e.details.get("assessment") == "ct" and e.date >= on]
    assert ct and all(e.status == "planned" for e in ct)
    assert all(china.is_working_day(e.date) for e in survival)


def test_overdue_follow_up_is_planned_today(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    on = date(2026, 6, 1)  # the last dose was cycle 5 on 2026-05-25
    change = cal.stop_treatment(protocol, events, on, china, today=date(2026, 7, 20))
    d30, d90 = change.event("follow_up.safety.d30"), change.event("follow_up.safety.d90")
    assert (d30.date, d30.moved_from) == (date(2026, 7, 20), date(2026, 6, 24))
    assert d30.flags == ("overdue", "outside_window")
    assert (d90.date, d90.flags) == (date(2026, 8, 24), ("moved_non_working_day",))
    # much later: one contact today replaces the overdue ones of the same kind
    later = cal.stop_treatment(protocol, events, on, china, today=date(2026, 10, 12))
    after = _by_key(later.events)
    assert after["follow_up.safety.d30"].status == "cancelled"
    assert after["follow_up.safety.d30"].flags[-1] == cal.FLAG_TREATMENT_STOPPED  # says why
    assert after["follow_up.safety.d90"].date == date(2026, 10, 12)
    survival = [e for e in later.events if e.key.startswith("follow_up.survival.n")]
    assert [e.key for e in survival if e.date == date(2026, 10, 12)] == ["follow_up.survival.n2"]
    assert after["follow_up.survival.n1"].status == "cancelled"


def test_off_study_cancels_everything_after(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    on = date(2026, 5, 1)
    change = cal.off_study(events, on)
    for old, new in zip(events, change.events, strict=True):
        assert old.key == new.key
        expected = "cancelled" if old.date > on else "planned"
        assert new.status == expected
        assert new.date == old.date
    assert len(change.cancelled_keys) == len([e for e in events if e.date > on])


# --------------------------------------------------------------------------- second protocol


def test_second_protocol_generates_its_own_calendar() -> None:
    mini = load_protocol(MINI)
    weekdays = working_days_for(mini.working_days_country)
    events = cal.generate(mini, {"regimen": "b"}, START, ZoneInfo("Europe/Paris"), weekdays)
    by_key = _by_key(events)
    infusions = [e for e in events if e.kind == "infusion"]
    assert [e.key for e in infusions] == [
        "induction.c1.infusion",
        "induction.c2.infusion",
        "induction.c3.infusion",
        "maintenance.c1.infusion",  # numbering restarts
        "maintenance.c2.infusion",
        "maintenance.c3.infusion",
        "maintenance.c4.infusion",  # 3 months of 28-day cycles
    ]
    assert [_nominal(e) - START for e in infusions] == [
        timedelta(d) for d in (0, 14, 28, 42, 70, 98, 126)
    ]
    assert all(e.date.weekday() < 5 for e in infusions)
    assert infusions[0].drugs == ("betaplatin 5 mg/kg", "gammacel 1 g")
    assert infusions[3].drugs == ("gammacel 1 g",)
    premed = by_key["induction.c2.premedication.hydration"]
    assert premed.date == infusions[1].date - timedelta(2)
    lipids = [e.cycle for e in events if e.kind == "labs" and "lipids" in str(e.details)]
    assert lipids == [1]
    assert [e.key for e in events if e.kind == "imaging"] == [
        "assessment.mri.w8",
        "assessment.mri.w16",
    ]
    assert by_key["assessment.mri.w8"].anchor == "maintenance.c1.infusion"  # follows delays
    calls = [e for e in events if e.kind == "followup"]
    assert [e.key for e in calls] == ["follow_up.call.n1", "follow_up.call.n2"]
    # Saturday 2027-01-02: Friday is nearer than Monday
    assert by_key["follow_up.call.n2"].date == date(2027, 1, 1)


def test_second_protocol_salvage_stops_maintenance() -> None:
    mini = load_protocol(MINI)
    weekdays = WeekendsOnly()
    events = cal.generate(mini, {"regimen": "a"}, START, ZoneInfo("Europe/Paris"), weekdays)
    change = cal.start_salvage(
        mini, events, {"regimen": "a"}, date(2026, 4, 4), weekdays, today=date(2026, 4, 1)
    )
    after = _by_key(change.events)
    fractions = [e for e in change.events if e.kind == "radiotherapy"]
    assert len(fractions) == 10 and fractions[0].date == date(2026, 4, 6)
    c1 = after["salvage.c1.infusion"]
    assert c1.date == date(2026, 4, 7)  # first_offset_days: 1
    assert c1.drugs == ("betaplatin 2 mg/kg",)
    assert after["salvage.c1.premedication.hydration"].date == date(2026, 4, 5)
    assert all(after[f"maintenance.c{n}.infusion"].status == "cancelled" for n in range(1, 5))
    assert after["assessment.mri.w8"].status == "planned"
    calls = sorted(
        (e for e in change.events if e.key.startswith("follow_up.call")), key=lambda e: e.date
    )
    assert [e.status for e in calls] == ["planned", "planned", "planned"]
    assert _nominal(calls[0]) == fractions[-1].date + timedelta(90)


@pytest.mark.parametrize(("tie_break", "expected"), [("earlier", 30), ("later", 38)])
def test_tie_break_between_equally_near_working_days(
    protocol: Protocol, china, tie_break: str, expected: int
) -> None:
    setting = replace(
        protocol, settings=replace(protocol.settings, non_working_day_tie_break=tie_break)
    )
    ctx = cal._Context(setting, china)
    # National Day week: Sep 30 and Oct 8 are 4 days away from Oct 4
    spot = ctx.place(date(2026, 10, 4), date(2026, 9, 27), date(2026, 10, 11), True)
    assert spot.moved_from == date(2026, 10, 4)
    assert spot.date == date(2026, 9, 1) + timedelta(expected - 1)


class _ClosedClinic:
    """A clinic that never opens (a misconfigured calendar)."""

    def is_working_day(self, day: date) -> bool:
        return False


def test_the_next_and_latest_working_days(protocol: Protocol, china) -> None:
    ctx = cal._Context(protocol, china)
    # National Day 2026: Thursday 1 to Wednesday 7 October closed
    assert ctx.next_working_day(date(2026, 10, 1)) == date(2026, 10, 8)
    assert ctx.next_working_day(date(2026, 9, 30)) == date(2026, 9, 30)
    assert ctx.latest_working_day(date(2026, 9, 28), date(2026, 10, 7)) == date(2026, 9, 30)
    assert ctx.latest_working_day(date(2026, 10, 8), date(2026, 10, 8)) == date(2026, 10, 8)
    assert ctx.latest_working_day(date(2026, 10, 1), date(2026, 10, 7)) is None
    assert ctx.latest_working_day(date(2026, 10, 9), date(2026, 10, 8)) is None
    closed = cal._Context(protocol, _ClosedClinic())
    with pytest.raises(CalendarError) as err:
        closed.next_working_day(date(2026, 3, 2))
    assert str(err.value) == "no working day in the 60 days from 2026-03-02"


@pytest.mark.parametrize(("tie_break", "chosen"), [("earlier", 30), ("later", 38)])
def test_a_tie_may_land_on_either_end_of_the_window(
    protocol: Protocol, china, tie_break: str, chosen: int
) -> None:
    setting = replace(
        protocol, settings=replace(protocol.settings, non_working_day_tie_break=tie_break)
    )
    ctx = cal._Context(setting, china)
    # Sunday 4 October; the window's ends, Sep 30 and Oct 8, are its only working days
    spot = ctx.place(date(2026, 10, 4), date(2026, 9, 30), date(2026, 10, 8), True)
    assert spot == cal._Placement(
        date(2026, 9, 1) + timedelta(chosen - 1), ("moved_non_working_day",), date(2026, 10, 4)
    )


def test_placement_against_the_minimum_interval(protocol: Protocol, china) -> None:
    ctx = cal._Context(protocol, china)
    monday, tuesday = date(2026, 3, 2), date(2026, 3, 3)
    window = (date(2026, 2, 27), date(2026, 3, 5))
    # the first day the interval allows is allowed
    assert ctx.place(monday, *window, True, not_before=monday) == cal._Placement(monday, (), None)
    # a working day too close: the nearest spaced one, flagged for the interval only
    assert ctx.place(monday, *window, True, not_before=tuesday) == cal._Placement(
        tuesday, ("min_interval_enforced",), monday
    )
    # spaced beyond the window: the first working day from the limit (Saturday 7 -> Monday 9),
    # or the limit itself when any day will do
    saturday = date(2026, 3, 7)
    assert ctx.place(monday, *window, True, not_before=saturday) == cal._Placement(
        date(2026, 3, 9), ("min_interval_enforced", "outside_window"), monday
    )
    assert ctx.place(monday, *window, False, not_before=saturday) == cal._Placement(
        saturday, ("min_interval_enforced", "outside_window"), monday
    )


def test_a_window_without_a_working_day_keeps_the_planned_day(protocol: Protocol, china) -> None:
    ctx = cal._Context(protocol, china)
    # Monday 5 October, window Oct 5-7: all National Day holidays
    spot = ctx.place(date(2026, 10, 5), date(2026, 10, 5), date(2026, 10, 7), True)
    assert spot == cal._Placement(date(2026, 10, 5), ("no_working_day_in_window",), None)


def test_a_progression_review_is_a_whole_task_on_a_working_day(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    on = date(2026, 7, 4)  # a Saturday: the review is due 7 days later, Saturday 11 July
    change = cal.record_progression(protocol, events, on, today=on, working_days=china)
    review = change.event("review.progression1")
    assert (review.kind, review.phase, review.cycle, review.status) == (
        "review",
        "maintenance",
        None,
        "planned",
    )
    # held on the nearest working day inside its 7-day window: Friday 10 July
    assert (review.date, review.moved_from, review.flags) == (
        date(2026, 7, 10),
        date(2026, 7, 11),
        ("moved_non_working_day",),
    )
    assert (review.window_start, review.window_end) == (on, date(2026, 7, 18))
    assert review.title_en == (
        "Progression recorded: decide on salvage treatment or stopping treatment"
    )
    assert review.title_zh == "已记录疾病进展：决定挽救治疗或停止治疗"
    assert review.details == {
        "working_day": True,
        "progression_date": "2026-07-04",
        "options": ["start_salvage", "stop_treatment", "continue"],
    }
    # a second progression is a second review; without a working-day calendar nothing moves
    again = cal.record_progression(
        protocol, change.events, date(2026, 7, 6), today=date(2026, 7, 6)
    )
    second = again.event("review.progression2")
    assert again.added_keys == ["review.progression2"]
    assert (second.date, second.moved_from, second.flags) == (date(2026, 7, 13), None, ())
    assert second.details["working_day"] is False


def test_stopping_after_progression_ends_imaging_from_that_day(protocol: Protocol, china) -> None:
    events = _generate(protocol, working_days=china)
    progression = cal.record_progression(
        protocol, events, date(2026, 6, 1), today=date(2026, 6, 1), working_days=china
    )
    scans = sorted(
        (e for e in progression.events if e.key.startswith("assessment.") and e.is_open),
        key=lambda e: e.date,
    )
    on = next(e.date for e in scans if e.date > date(2026, 6, 1))  # a scan is due that day
    change = cal.stop_treatment(protocol, progression.events, on, china, today=on)
    after = _by_key(change.events)
    for scan in scans:
        new = after[scan.key]
        if scan.date >= on:  # a treatment phase's scan stops with it, a later one with progression
            ended = {cal.FLAG_TREATMENT_STOPPED, cal.FLAG_PROGRESSION_ENDS_IMAGING} & set(new.flags)
            assert new.status == "cancelled" and ended, scan.key
        else:
            assert new == scan
    assert any(
        cal.FLAG_PROGRESSION_ENDS_IMAGING in after[s.key].flags for s in scans if s.date >= on
    )
    stopped = [e for e in change.events if cal.FLAG_TREATMENT_STOPPED in e.flags]
    assert stopped and all(e.status == "cancelled" and e.date >= on for e in stopped)
    assert any(e.kind == "infusion" for e in stopped)


def test_progression_and_stop_during_salvage_reach_the_salvage_events(
    protocol: Protocol, china
) -> None:
    _, salvage = _salvage(protocol, china)
    on = date(2026, 10, 12)  # Monday, fraction 11 (fraction 10 was on the make-up Saturday)
    progressed = cal.record_progression(protocol, salvage.events, on, today=on)
    f10, f11, f28 = (progressed.event(f"salvage.rt.f{n}") for n in (10, 11, 28))
    assert (f10.date, f11.date, f28.date) == (date(2026, 10, 10), on, date(2026, 11, 4))
    assert cal.FLAG_PROGRESSION not in f10.flags
    assert cal.FLAG_PROGRESSION in f11.flags and cal.FLAG_PROGRESSION in f28.flags
    # the weekly chemotherapy of 8 October is the last infusion planned by then
    assert progressed.event("review.progression1").phase == "salvage"
    stopped = cal.stop_treatment(protocol, progressed.events, on, china, today=on)
    for n in (11, 28):
        fraction = stopped.event(f"salvage.rt.f{n}")
        assert fraction.status == "cancelled" and cal.FLAG_TREATMENT_STOPPED in fraction.flags
    assert stopped.event("salvage.rt.f10").status == "planned"


def test_a_progression_review_takes_the_phase_of_the_last_infusion_given(
    protocol: Protocol, china
) -> None:
    events = _generate(protocol, working_days=china)
    # before the first infusion (Monday 2 March): the first phase of the chain
    early = cal.record_progression(protocol, events, date(2026, 2, 27), today=date(2026, 2, 27))
    assert early.event("review.progression1").phase == "induction"
    # treatment stopped on 1 April after induction cycles 1 and 2; progression found in June:
    # the cancelled cycles (induction 3-4, maintenance from 25 May) do not count
    stop = date(2026, 4, 1)
    stopped = cal.stop_treatment(protocol, events, stop, china, today=stop).events
    assert _by_key(stopped)["maintenance.c5.infusion"].status == "cancelled"
    late = cal.record_progression(protocol, stopped, date(2026, 6, 1), today=date(2026, 6, 1))
    assert late.event("review.progression1").phase == "induction"


def test_stopping_after_progression_ends_the_scans_of_that_very_day(
    protocol: Protocol, china
) -> None:
    events = _generate(protocol, working_days=china)
    # the last cycle, maintenance 39, is on 8 May 2028: the week-120 visit (2028-06-19, a
    # Monday, 840 days after the start) comes after treatment, in the follow-up phase
    ct = _by_key(events)["assessment.ct.w120"]
    assert (ct.date, ct.phase) == (date(2028, 6, 19), "follow_up")
    found = date(2028, 6, 1)
    progressed = cal.record_progression(protocol, events, found, today=found).events
    on = date(2028, 6, 19)
    change = cal.stop_treatment(protocol, progressed, on, china, today=on)
    for key in ("assessment.ct.w120", "assessment.ultrasound.w120", "assessment.ct.w132"):
        scan = change.event(key)
        assert scan.status == "cancelled", key
        assert cal.FLAG_PROGRESSION_ENDS_IMAGING in scan.flags, key


def test_a_stop_before_any_dose_counts_the_safety_contacts_from_the_stop(
    protocol: Protocol, china
) -> None:
    events = _generate(protocol, working_days=china)
    on = START  # the day of the first infusion, which is not given
    change = cal.stop_treatment(protocol, events, on, china, today=on)
    assert change.event("induction.c1.infusion").status == "cancelled"
    d30, d90 = change.event("follow_up.safety.d30"), change.event("follow_up.safety.d90")
    assert (_nominal(d30), d30.date) == (date(2026, 4, 1), date(2026, 4, 1))
    # 31 May 2026 is a Sunday: the nearest working day is Monday 1 June
    assert (_nominal(d90), d90.date) == (date(2026, 5, 31), date(2026, 6, 1))


def test_an_event_stored_before_its_optional_fields_existed_loads_with_defaults() -> None:
    stored = {
        "key": "induction.c1.infusion",
        "kind": "infusion",
        "phase": "induction",
        "cycle": 1,
        "date": "2026-03-02",
        "window_start": "2026-03-02",
        "window_end": "2026-03-04",
        "title_en": "Infusion",
        "title_zh": "输液",
    }
    event = PlannedEvent.from_json(stored)
    assert (event.drugs, event.details, event.flags, event.status) == ((), {}, (), "planned")
    assert PlannedEvent.from_json({**stored, "status": "done"}).status == "done"
