"""Clinical rules of the calendar (issue 11): test order, follow-up to the study's end, closures.

Expected dates are worked out by hand from the protocol file and the 2026-2027 China holiday
calendar (Spring Festival 2026-02-15..23 with make-up Saturdays 02-14 and 02-28; National Day
2026-10-01..07 with make-up Saturday 10-10; National Day 2027-10-01..07).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain import calendar as cal
from app.domain.calendar import PlannedEvent
from app.domain.protocol import default_protocol_path, load_protocol
from app.domain.working_days import ChinaWorkingDays

PROTOCOL = load_protocol(default_protocol_path())
CHINA = ChinaWorkingDays()
TZ = ZoneInfo("Asia/Shanghai")
COMPLETION = date(2029, 9, 1)  # registry: study completion date
ARMS = [
    {"pd1": pd1, "chemo": chemo}
    for pd1 in ("sintilimab", "camrelizumab")
    for chemo in ("paclitaxel", "docetaxel", "irinotecan")
]


def _generate(start: date, chemo: str = "docetaxel", **kwargs) -> list[PlannedEvent]:
    choices = {"pd1": "sintilimab", "chemo": chemo}
    return cal.generate(PROTOCOL, choices, start, TZ, CHINA, **kwargs)


def _by_key(events: list[PlannedEvent]) -> dict[str, PlannedEvent]:
    return {e.key: e for e in events}


# --------------------------------------------------------------------------- 1. sequencing


def test_labs_for_a_monday_infusion_go_on_the_friday_before() -> None:
    events = _by_key(_generate(date(2026, 3, 9)))  # Monday
    assert events["induction.c1.infusion"].date == date(2026, 3, 9)
    labs = events["induction.c1.labs"]
    assert labs.date == date(2026, 3, 6)  # Friday: the latest working day strictly before
    assert (labs.window_start, labs.window_end) == (date(2026, 3, 6), date(2026, 3, 8))
    assert (labs.moved_from, labs.flags) == (date(2026, 3, 8), ("moved_non_working_day",))


def test_labs_use_a_make_up_saturday_when_the_clinic_works() -> None:
    events = _by_key(_generate(date(2026, 3, 2)))  # Monday after the Feb 28 make-up Saturday
    assert events["induction.c1.labs"].date == date(2026, 2, 28)


def test_labs_after_a_closure_are_flagged_not_put_on_the_infusion_day() -> None:
    events = _by_key(_generate(date(2026, 4, 15)))
    # c2 nominal 2026-05-06 (Wed), the day after the May Day closure (May 1-5)
    assert events["induction.c2.infusion"].date == date(2026, 5, 6)
    labs = events["induction.c2.labs"]
    assert labs.date < date(2026, 5, 6)
    assert "no_working_day_in_window" in labs.flags
    assert labs in cal.waiting_decisions(events.values())


def test_week_12_visit_orders_the_tests_before_the_infusion() -> None:
    events = _by_key(_generate(date(2026, 3, 2)))
    infusion = events["induction.c4.infusion"]
    assert events["maintenance.c5.infusion"].date == date(2026, 5, 25)  # = study week 12
    ct = events["assessment.ct.w12"]
    ultrasound = events["assessment.ultrasound.w12"]
    gastroscopy = events["assessment.gastroscopy.w12"]
    barium = events["assessment.barium_swallow.w12"]
    # CT, ultrasound and endoscopy on Thursday; barium on Friday; the infusion on Monday
    assert ct.date == ultrasound.date == gastroscopy.date == date(2026, 5, 21)
    assert barium.date == date(2026, 5, 22)
    assert events["maintenance.c5.labs"].date == date(2026, 5, 22)
    assert infusion.date < ct.date
    assert barium.details["contrast"] == "barium"
    assert barium.to_json()["contrast"] == "barium"
    assert ct.to_json()["fasting"] == {"food_hours": 4, "water_hours": 0}
    assert barium.to_json()["fasting"] == {"food_hours": 6, "water_hours": 6}
    assert gastroscopy.to_json()["fasting"] == {"food_hours": 8, "water_hours": 2}
    assert "contrast" not in gastroscopy.to_json()  # endoscopy, not imaging


def test_lab_fasting_comes_from_the_panels() -> None:
    events = _by_key(_generate(date(2026, 3, 9)))
    # liver and renal function are drawn fasting (8 h, water allowed)
    assert events["induction.c1.labs"].to_json()["fasting"] == {"food_hours": 8, "water_hours": 0}


SALVAGE_START = date(2026, 9, 21)


def _salvage(start: date = date(2026, 3, 2), fractions: int | None = None) -> cal.CalendarChange:
    events = _generate(start, chemo="paclitaxel")
    return cal.start_salvage(
        PROTOCOL,
        events,
        {"pd1": "sintilimab", "chemo": "paclitaxel"},
        SALVAGE_START,
        CHINA,
        today=date(2026, 9, 1),
        fractions=fractions,
    )


def test_holiday_gaps_that_stretch_radiotherapy_are_flagged_rt_prolonged() -> None:
    change = _salvage()
    fractions = [e for e in change.events if e.kind == "radiotherapy"]
    # Sep 25 (Mid-Autumn) and Oct 1-7 (National Day) closed: 28 fractions end on Nov 4,
    # 45 days from Sep 21 inclusive, 7 more than 5.5 weeks (38 days)
    assert fractions[-1].date == date(2026, 11, 4)
    assert fractions[-1].flags == ("rt_prolonged",)
    assert fractions[-1].details["rt_extra_days"] == 7
    assert all("rt_prolonged" not in f.flags for f in fractions[:-1])
    assert fractions[-1] in cal.waiting_decisions(change.events)


def test_radiotherapy_without_holidays_is_not_flagged() -> None:
    events = _generate(date(2026, 3, 2), chemo="paclitaxel")
    change = cal.start_salvage(
        PROTOCOL,
        events,
        {"pd1": "sintilimab", "chemo": "paclitaxel"},
        date(2026, 6, 22),  # Monday after the Dragon Boat Festival; no closure to Aug
        CHINA,
        today=date(2026, 6, 1),
    )
    fractions = [e for e in change.events if e.kind == "radiotherapy"]
    assert (fractions[0].date, fractions[-1].date) == (date(2026, 6, 22), date(2026, 7, 29))
    assert not any("rt_prolonged" in f.flags for f in fractions)


def test_imaging_is_suspended_during_radiotherapy_and_the_response_comes_after() -> None:
    change = _salvage()
    after = _by_key(change.events)
    last_fraction = date(2026, 11, 4)
    response = [e for e in change.events if ".response." in e.key]
    assert {e.details["assessment"] for e in response} == {
        "ct",
        "ultrasound",
        "gastroscopy",
        "barium_swallow",
    }
    for event in response:
        weeks = (event.date - last_fraction).days / 7
        assert 4 <= weeks <= 8
    barium = after["salvage.response.barium_swallow"]
    assert barium.details["contrast"] == "water_soluble"  # after re-irradiation
    assert max(e.date for e in response if e.key != barium.key) < barium.date
    suspended = [e for e in change.events if "suspended_for_radiotherapy" in e.flags]
    assert suspended and all(e.status == "cancelled" for e in suspended)
    assert all(e.date >= SALVAGE_START for e in suspended)
    later = [
        e for e in change.events if e.key.startswith("assessment.barium") and e.date > barium.date
    ]
    assert later and all(e.details["contrast"] == "water_soluble" for e in later if e.is_open)


# --------------------------------------------------------------------------- 2. follow-up


def test_survival_contacts_reach_the_study_completion_date() -> None:
    events = _generate(date(2026, 3, 2), recurrence_date=date(2026, 1, 10))
    survival = [e for e in events if e.details.get("contact") == "survival"]
    numbered = [e for e in survival if "contact_number" in e.details]
    last = max(cal._nominal(e) for e in numbered)
    assert last <= COMPLETION < last + timedelta(days=60)
    # and the primary-endpoint contact 2 years after the recurrence is not planned (before the
    # end of treatment), the periodic ones are
    assert numbered


def test_early_stop_keeps_imaging_until_progression() -> None:
    events = _generate(date(2026, 3, 2))
    on = date(2026, 7, 1)
    change = cal.stop_treatment(PROTOCOL, events, on, CHINA, today=on)
    ct = [e for e in change.events if e.details.get("assessment") == "ct" and e.date >= on]
    weeks = [e.details["study_week"] for e in ct if e.is_open]
    assert weeks[0] == 18 and weeks[-1] * 7 <= (COMPLETION - date(2026, 3, 2)).days
    after_48 = [w for w in weeks if w > 48]
    assert after_48 == list(range(60, weeks[-1] + 1, 12))


def test_stop_after_progression_ends_imaging() -> None:
    events = _generate(date(2026, 3, 2))
    on = date(2026, 7, 1)
    progressed = cal.record_progression(PROTOCOL, events, on, today=on).events
    change = cal.stop_treatment(PROTOCOL, progressed, on, CHINA, today=on)
    ct = [e for e in change.events if e.details.get("assessment") == "ct" and e.date >= on]
    assert ct and all(e.status == "cancelled" for e in ct)
    # the treatment's scans stop with it; those after the end of treatment with the progression
    for scan in ct:
        ended_by = (
            "imaging_ended_at_progression" if scan.phase == "follow_up" else "treatment_stopped"
        )
        other = {"imaging_ended_at_progression", "treatment_stopped"} - {ended_by}
        assert ended_by in scan.flags and not other & set(scan.flags), scan.key
    assert {scan.phase for scan in ct} == {"maintenance", "follow_up"}


# --------------------------------------------------------------------------- 3. closures


def test_national_day_2026_in_the_nadir_is_flagged() -> None:
    events = _by_key(_generate(date(2026, 8, 20)))
    c3 = events["induction.c3.infusion"]
    assert c3.date == date(2026, 9, 30)
    assert "closure_in_nadir" in c3.flags
    assert c3.details["closure"] == {"from": "2026-10-01", "to": "2026-10-07", "days": 7}
    c2 = events["induction.c2.infusion"]  # Sep 10: days 1-10 have no closure of 4+ days
    assert "closure_in_nadir" not in c2.flags


def test_national_day_2027_in_the_nadir_is_flagged() -> None:
    events = _by_key(_generate(date(2027, 8, 12)))  # Thursday; c3 on 2027-09-23
    c3 = events["induction.c3.infusion"]
    assert c3.date == date(2027, 9, 23)
    assert "closure_in_nadir" in c3.flags  # Oct 1.. is day 8
    assert c3.details["closure"]["from"] == "2027-10-01"


def test_rescheduled_infusion_on_a_make_up_saturday_is_flagged() -> None:
    events = _generate(date(2026, 1, 5))
    c2 = _by_key(events)["induction.c2.infusion"]  # Jan 26
    change = cal.reschedule(
        PROTOCOL,
        events,
        c2.key,
        date(2026, 2, 28),
        "patient request",
        CHINA,
        today=date(2026, 1, 5),
    )
    moved = change.event(c2.key)
    assert "closure_in_nadir" in moved.flags
    assert moved.details["closure"] == {"make_up_day": "2026-02-28"}


def test_a_decision_clears_the_flag_and_is_kept() -> None:
    events = _generate(date(2026, 8, 20))
    key = "induction.c3.infusion"
    assert key in [e.key for e in cal.waiting_decisions(events)]
    change = cal.record_decision(
        events, key, "closure_in_nadir", "holiday_cover_confirmed", "on-call oncologist covers"
    )
    decided = change.event(key)
    assert "closure_in_nadir" not in decided.flags
    assert change.changes == []  # same day, same status, no new flag: nothing to announce
    assert decided.details["decisions"]["closure_in_nadir"]["decision"] == (
        "holiday_cover_confirmed"
    )
    assert key not in [e.key for e in cal.waiting_decisions(change.events)]
    with pytest.raises(cal.CalendarError, match="no 'closure_in_nadir' flag"):
        cal.record_decision(change.events, key, "closure_in_nadir", "x", "y")
    with pytest.raises(cal.CalendarError, match="needs both"):
        cal.record_decision(events, key, "closure_in_nadir", "delay", " ")


@pytest.mark.parametrize("arm", ARMS, ids=lambda a: f"{a['pd1']}-{a['chemo']}")
@pytest.mark.parametrize("start", [date(2026, 1, 27), date(2026, 8, 20), date(2027, 1, 11)])
def test_every_arm_keeps_the_clinical_order(arm: dict[str, str], start: date) -> None:
    """Spring Festival 2026 / National Day 2026 / Spring Festival 2027 (Feb 5-10 in the holidays
    library) fall in the nadir of cycle 2 or 3."""
    events = cal.generate(PROTOCOL, arm, start, TZ, CHINA)
    _assert_clinical_order(events)
    assert any("closure_in_nadir" in e.flags for e in events if e.cycle in (1, 2, 3))


def _assert_clinical_order(events: list[PlannedEvent]) -> None:
    """Labs strictly before their infusion; no imaging on infusion days; barium last."""
    live = [e for e in events if e.is_open]
    by_key = {e.key: e for e in events}
    infusion_days = {e.date for e in live if e.kind == "infusion"}
    for labs in (e for e in live if e.kind == "labs"):
        infusion = by_key[labs.anchor]
        assert infusion.date - timedelta(days=3) <= labs.date < infusion.date, labs.key
        if "no_working_day_in_window" not in labs.flags:
            assert CHINA.is_working_day(labs.date), labs.key
    scans = [e for e in live if e.kind in ("imaging", "endoscopy")]
    assert not [e.key for e in scans if e.date in infusion_days]
    barium_days = {e.date for e in scans if e.details.get("assessment") == "barium_swallow"}
    for scan in scans:
        if scan.details.get("assessment") in ("ct", "gastroscopy"):
            assert scan.date not in barium_days, scan.key
    visits: dict[str, list[PlannedEvent]] = {}
    for scan in scans:
        visit = str(scan.details.get("study_week", "response"))
        visits.setdefault(visit, []).append(scan)
    for tests in visits.values():
        barium = [t for t in tests if t.details.get("assessment") == "barium_swallow"]
        others = [t for t in tests if t.details.get("assessment") in ("ct", "gastroscopy")]
        if barium and others:
            assert max(o.date for o in others) < barium[0].date


def test_the_response_assessment_replaces_a_routine_scan_days_from_it() -> None:
    # Found by the property test: salvage from 2027-04-03 puts the response assessment on
    # Thu 8 / Fri 9 July 2027 and the routine week-42 CT on Fri 9 July, the barium day.
    start = date(2026, 9, 26)
    choices = {"pd1": "sintilimab", "chemo": "paclitaxel"}
    events = cal.generate(PROTOCOL, choices, start, TZ, CHINA)
    events = cal.start_salvage(
        PROTOCOL, events, choices, start + timedelta(days=189), CHINA, today=start
    ).events
    live = {e.key: e for e in events if e.is_open}

    assert live["salvage.response.ct"].date == date(2027, 7, 8)
    assert live["salvage.response.barium_swallow"].date == date(2027, 7, 9)
    assert "assessment.ct.w42" not in live
    replaced = next(e for e in events if e.key == "assessment.ct.w42")
    assert replaced.status == "cancelled" and cal.FLAG_SUSPENDED_FOR_RT in replaced.flags
    assert live["assessment.ct.w48"].date == date(2027, 8, 19)  # routine scans go on after it


def test_a_decision_is_stored_whole_and_a_bad_one_named() -> None:
    events = _generate(date(2026, 8, 20))
    key = "induction.c3.infusion"
    event = next(e for e in events if e.key == key)
    change = cal.record_decision(
        events, key, "closure_in_nadir", " holiday_cover_confirmed ", "on-call oncologist covers"
    )
    assert change.event(key).details["decisions"] == {
        "closure_in_nadir": {
            "decision": "holiday_cover_confirmed",
            "date": event.date.isoformat(),
            "note": "on-call oncologist covers",
        }
    }
    with pytest.raises(cal.CalendarError) as missing:
        cal.record_decision(events, "induction.c99.infusion", "closure_in_nadir", "x", "y")
    assert str(missing.value) == "no event with the key 'induction.c99.infusion' in this calendar"
    with pytest.raises(cal.CalendarError) as empty:
        cal.record_decision(events, key, "closure_in_nadir", " ", "why")
    assert str(empty.value) == "a decision needs both the decision and a note saying why"


def test_a_second_decision_on_an_event_keeps_the_first() -> None:
    events = _generate(date(2026, 8, 20))
    key = "induction.c3.infusion"
    first = cal.record_decision(events, key, "closure_in_nadir", "covered", "on call")
    decided = first.event(key)
    other = replace(decided, flags=(*decided.flags, "second_flag"))
    events = [other if e.key == key else e for e in first.events]
    second = cal.record_decision(events, key, "second_flag", "accepted", "reviewed")
    assert set(second.event(key).details["decisions"]) == {"closure_in_nadir", "second_flag"}


def test_off_study_keeps_the_events_of_its_own_day_and_flags_the_cancelled() -> None:
    events = _generate(date(2026, 8, 20))
    on = events[len(events) // 2].date  # a day with an event
    change = cal.off_study(events, on)
    after = {e.key: e for e in change.events}
    for old in events:
        new = after[old.key]
        if old.date > on:
            assert (new.status, cal.FLAG_OFF_STUDY in new.flags) == ("cancelled", True)
        else:
            assert (new.status, new.flags) == (old.status, old.flags)
    assert any(e.date == on for e in events)


def test_events_before_cadence_are_not_tracked_and_flagged() -> None:
    events = _generate(date(2026, 8, 20))
    before = events[10].date
    marked = cal.mark_not_tracked(events, before)
    for old, new in zip(events, marked, strict=True):
        if old.date < before:
            assert new.status == "not_tracked"
            assert new.flags == (*old.flags, cal.FLAG_BEFORE_CADENCE)
        else:
            assert new == old
    assert any(e.date < before for e in events) and any(e.date == before for e in events)


def test_a_decision_holds_when_the_event_comes_back_to_its_date() -> None:
    events = _generate(date(2026, 4, 15))
    # c2 on Wed 2026-05-06: its labs window May 3-5 lies in the May Day closure (May 1-5)
    labs_key = "induction.c2.labs"
    labs = _by_key(events)[labs_key]
    assert (labs.date, labs.flags) == (date(2026, 5, 5), ("no_working_day_in_window",))
    decided = cal.record_decision(
        events, labs_key, "no_working_day_in_window", "draw_on_infusion_morning", "fast lab"
    ).events
    assert labs_key not in [e.key for e in cal.waiting_decisions(decided)]
    today = date(2026, 4, 20)
    later = cal.reschedule(
        PROTOCOL, decided, "induction.c2.infusion", date(2026, 5, 7), None, CHINA, today=today
    )
    # labs on Wed May 6, a working day: nothing to decide
    assert (later.event(labs_key).date, later.event(labs_key).flags) == (
        date(2026, 5, 6),
        ("shifted",),
    )
    back = cal.reschedule(
        PROTOCOL, later.events, "induction.c2.infusion", date(2026, 5, 6), None, CHINA, today=today
    )
    labs = back.event(labs_key)
    # back on May 5 with the placement's flag raised again: the decision taken for May 5 holds
    assert (labs.date, labs.flags) == (date(2026, 5, 5), ("shifted", "no_working_day_in_window"))
    assert labs.details["decisions"]["no_working_day_in_window"]["date"] == "2026-05-05"
    assert labs_key not in [e.key for e in cal.waiting_decisions(back.events)]
    # a decision taken for another date does not
    moved = replace(
        labs,
        details={
            **labs.details,
            "decisions": {
                "no_working_day_in_window": {"decision": "x", "date": "2026-05-04", "note": "y"}
            },
        },
    )
    assert [e.key for e in cal.waiting_decisions([moved])] == [labs_key]


def _infusion_on(day: date) -> PlannedEvent:
    """Cycle 1 of a calendar starting on `day` (a working day: the infusion stays there)."""
    event = _by_key(_generate(day))["induction.c1.infusion"]
    assert (event.date, event.moved_from) == (day, None)
    return event


def test_a_closure_counts_from_day_1_to_day_10_after_the_infusion() -> None:
    # May Day 2026: Fri 1 to Tue 5 May closed (5 days)
    day_10 = _infusion_on(date(2026, 4, 21))  # Tuesday: 1 May is day 10
    assert "closure_in_nadir" in day_10.flags
    assert day_10.details["closure"] == {"from": "2026-05-01", "to": "2026-05-05", "days": 5}
    day_11 = _infusion_on(date(2026, 4, 20))  # Monday: 1 May is day 11
    assert "closure_in_nadir" not in day_11.flags and "closure" not in day_11.details


def test_a_closure_is_four_days_or_more() -> None:
    # May Day 2027: Sat 1 to Tue 4 May closed, 4 days; Tuesday 27 April: 1 May is day 4
    four = _infusion_on(date(2027, 4, 27))
    assert four.details["closure"] == {"from": "2027-05-01", "to": "2027-05-04", "days": 4}
    assert "closure_in_nadir" in four.flags
    # Qingming 2026: Sat 4 to Mon 6 April, 3 days, in days 5-7 after Monday 30 March
    three = _infusion_on(date(2026, 3, 30))
    assert "closure_in_nadir" not in three.flags and "closure" not in three.details


def _rescheduled_c3(day: date) -> PlannedEvent:
    """Cycle 3 of the 2026-08-20 calendar (Wed 30 September) moved to `day` with a reason."""
    events = _generate(date(2026, 8, 20))
    change = cal.reschedule(
        PROTOCOL, events, "induction.c3.infusion", day, "ward opens", CHINA, today=date(2026, 9, 1)
    )
    return change.event("induction.c3.infusion")


def test_an_infusion_inside_a_closure_finds_the_whole_closure() -> None:
    # National Day 2026: Thu 1 to Wed 7 October closed; the infusion on Saturday 3 October
    inside = _rescheduled_c3(date(2026, 10, 3))
    assert inside.flags == ("rescheduled", "on_non_working_day", "closure_in_nadir")
    assert inside.details["closure"] == {"from": "2026-10-01", "to": "2026-10-07", "days": 7}
    # on its last day, the closure is behind it: days 1-10 (Oct 8-17) are open but weekends
    last_day = _rescheduled_c3(date(2026, 10, 7))
    assert last_day.flags == ("rescheduled", "on_non_working_day")
    assert "closure" not in last_day.details


def test_moving_out_of_the_nadir_clears_the_flag_and_its_closure() -> None:
    events = _generate(date(2026, 8, 20))
    c3 = _by_key(events)["induction.c3.infusion"]
    assert c3.flags == ("moved_non_working_day", "closure_in_nadir")
    # Thursday 8 October (its window: 28 September to 8 October): days 1-10 have no closure
    later = _rescheduled_c3(date(2026, 10, 8))
    assert later.flags == ("rescheduled",)
    assert "closure" not in later.details
    # Tuesday 29 September: the same closure, the flag stays (after the new ones)
    earlier = _rescheduled_c3(date(2026, 9, 29))
    assert earlier.flags == ("rescheduled", "closure_in_nadir")
    assert earlier.details["closure"] == {"from": "2026-10-01", "to": "2026-10-07", "days": 7}


def test_a_decided_closure_is_not_raised_again_when_the_calendar_is_checked() -> None:
    events = _generate(date(2026, 8, 20))
    key = "induction.c3.infusion"
    decided = cal.record_decision(events, key, "closure_in_nadir", "covered", "on call").events
    # any later change checks every infusion again: here a check-in of cycle 2 moves a day
    change = cal.reschedule(
        PROTOCOL,
        decided,
        "induction.c2.checkin.d3",
        date(2026, 9, 14),
        None,
        CHINA,
        today=date(2026, 9, 1),
    )
    c3 = change.event(key)
    assert (c3.date, c3.flags) == (date(2026, 9, 30), ("moved_non_working_day",))
    assert "closure" not in c3.details  # the closure is behind a flag only
    assert c3.details["decisions"]["closure_in_nadir"]["date"] == "2026-09-30"
    assert [c.key for c in change.changes] == ["induction.c2.checkin.d3"]


def test_a_flag_of_a_progression_review_can_be_decided_new_and_as_stored_before() -> None:
    # A review's choices live under "options"; reviews stored before kept them as a list under
    # "decisions", the key of the clinicians' decisions about flags: read as no decision yet,
    # and a decision about one of its flags is recorded (it raised ValueError) keeping the list.
    events = _generate(date(2026, 8, 20))
    change = cal.record_progression(PROTOCOL, events, date(2027, 1, 4), today=date(2027, 1, 4))
    review = next(e for e in change.events if e.key.startswith("review.progression"))
    assert review.details["options"] == ["start_salvage", "stop_treatment", "continue"]
    assert "decisions" not in review.details
    choices = ["start_salvage", "stop_treatment", "continue"]
    legacy_details = {k: v for k, v in review.details.items() if k != "options"}
    legacy = replace(
        review, flags=("moved_non_working_day",), details={**legacy_details, "decisions": choices}
    )
    assert cal.flag_decisions(legacy.details) == {}
    stored = [legacy if e.key == review.key else e for e in change.events]
    decided = cal.record_decision(
        stored, review.key, "moved_non_working_day", "accepted", "clinic open that day"
    ).event(review.key)
    assert decided.flags == ()
    assert decided.details["options"] == choices
    assert decided.details["decisions"] == {
        "moved_non_working_day": {
            "decision": "accepted",
            "date": review.date.isoformat(),
            "note": "clinic open that day",
        }
    }
