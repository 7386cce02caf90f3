"""Reminder planning rules (pure domain): offsets, quiet hours, merging, budget, duplicates, zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import reminders as rd
from app.domain.reminders import (
    EventMove,
    ExistingMessage,
    PlannedMessage,
    ReminderConfigError,
    ReminderEvent,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
PROTOCOL = Path(__file__).resolve().parents[2] / "app" / "protocols" / "nct07016737.yaml"

RULES = {
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "daily_budget": 3,
    "rules": [
        {
            "kind": "infusion",
            "template": "treatment",
            "announce_moves": True,
            "send": [{"days_before": 2, "at": "18:00"}, {"days_before": 0, "at": "07:30"}],
        },
        {
            "kind": "premedication",
            "codes": ["dexamethasone_3_days"],
            "template": "premedication",
            "send": [{"days_before": 0, "at": "08:00"}, {"days_before": 0, "at": "20:00"}],
        },
        {
            "kind": "labs",
            "template": "labs",
            "announce_moves": True,
            "send": [{"days_before": 1, "at": "18:00"}],
        },
        {
            "kind": "imaging",
            "template": "imaging",
            "send": [{"days_before": 2, "at": "18:00"}],
            "preparation": {"ct": {"en": "Fast for 4 hours.", "zh": "检查前4小时禁食。"}},
        },
    ],
}


def policy(**changes: object) -> rd.ReminderPolicy:
    raw = {**RULES, **changes}
    return rd.parse_reminder_policy(raw)


def event(key: str, kind: str, day: date, **extra: object) -> ReminderEvent:
    return ReminderEvent(key=key, kind=kind, date=day, title_en=key, title_zh=key, **extra)


def at(day: date, hh: int, mm: int = 0, tz: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=tz)


def render_items(message: PlannedMessage, variant: int) -> str:
    """A renderer that shows what a message covers (distinct for distinct content)."""
    text = ";".join(f"{i.kind}@{i.event_date}:{i.days_before}" for i in message.items)
    return text + (f"#{variant}" if variant else "")


INFUSION_DAY = date(2026, 3, 5)  # a Thursday
NOW = at(date(2026, 3, 1), 9)


# -- offsets and local times -------------------------------------------------------------------


def test_infusion_reminders_two_days_before_and_on_the_morning() -> None:
    items = rd.reminder_items(
        policy(), [event("c1.infusion", "infusion", INFUSION_DAY)], SHANGHAI, NOW
    )

    assert [i.send_at for i in items] == [at(date(2026, 3, 3), 18), at(INFUSION_DAY, 8)]
    assert [i.days_before for i in items] == [2, 0]
    assert all(i.send_at.tzinfo == SHANGHAI for i in items)


def test_the_morning_reminder_at_0730_is_moved_out_of_quiet_hours_not_dropped() -> None:
    items = rd.reminder_items(
        policy(), [event("c1.infusion", "infusion", INFUSION_DAY)], SHANGHAI, NOW
    )

    morning = items[-1]
    assert morning.rule_id == "infusion:0d@07:30"
    assert morning.send_at == at(INFUSION_DAY, 8, 0)


def test_premedication_only_for_the_listed_code_the_day_before_at_8_and_20() -> None:
    premed_day = INFUSION_DAY - timedelta(days=1)
    events = [
        event("c1.premed.dex", "premedication", premed_day, code="dexamethasone_3_days"),
        event("c1.premed.other", "premedication", premed_day, code="something_else"),
    ]

    items = rd.reminder_items(policy(), events, SHANGHAI, NOW)

    assert [(i.event_key, i.send_at) for i in items] == [
        ("c1.premed.dex", at(premed_day, 8)),
        ("c1.premed.dex", at(premed_day, 20)),
    ]


def test_event_code_is_read_from_the_calendar_details() -> None:
    class Row:
        key, kind, date, status = "p", "premedication", INFUSION_DAY, "planned"
        title_en, title_zh = "t", "t"
        details = {"premedication": "dexamethasone_3_days"}

    assert ReminderEvent.of(Row()).code == "dexamethasone_3_days"


def test_no_reminders_for_cancelled_done_or_past_events_or_times_already_past() -> None:
    events = [
        event("cancelled", "infusion", INFUSION_DAY, status="cancelled"),
        event("done", "infusion", INFUSION_DAY, status="done"),
        event("past", "infusion", date(2026, 2, 20)),
        event("today", "infusion", date(2026, 3, 1)),
    ]

    items = rd.reminder_items(policy(), events, SHANGHAI, NOW)

    # "today" at 09:00: its 07:30 (08:00) reminder has passed, the 2-days-before one too.
    assert items == []


def test_kinds_without_a_rule_get_no_reminder() -> None:
    events = [event("x", "checkin", INFUSION_DAY), event("y", "radiotherapy", INFUSION_DAY)]

    assert rd.reminder_items(policy(), events, SHANGHAI, NOW) == []


def test_preparation_text_is_attached_by_event_code() -> None:
    ct = event("ct.w6", "imaging", INFUSION_DAY, code="ct")
    us = event("us.w12", "imaging", INFUSION_DAY, code="ultrasound")

    items = rd.reminder_items(policy(), [ct, us], SHANGHAI, NOW)

    by_key = {i.event_key: i for i in items}
    assert by_key["ct.w6"].preparation == rd.LocalText("Fast for 4 hours.", "检查前4小时禁食。")
    assert by_key["us.w12"].preparation is None


# -- quiet hours -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "direction", "expected"),
    [
        (at(date(2026, 3, 3), 22), "later", at(date(2026, 3, 4), 8)),
        (at(date(2026, 3, 3), 6), "later", at(date(2026, 3, 3), 8)),
        (at(date(2026, 3, 3), 21), "later", at(date(2026, 3, 4), 8)),
        (at(date(2026, 3, 3), 8), "later", at(date(2026, 3, 3), 8)),
        (at(date(2026, 3, 3), 20, 59), "later", at(date(2026, 3, 3), 20, 59)),
        (at(date(2026, 3, 3), 6), "earlier", at(date(2026, 3, 2), 20, 30)),
        (at(date(2026, 3, 3), 23), "earlier", at(date(2026, 3, 3), 20, 30)),
    ],
)
def test_quiet_hours_move_a_message_to_the_nearest_allowed_time(
    wanted: datetime, direction: str, expected: datetime
) -> None:
    assert rd.move_out_of_quiet_hours(wanted, policy(), direction) == expected  # type: ignore[arg-type]


def test_quiet_hours_that_do_not_wrap_midnight() -> None:
    lunch = policy(quiet_hours={"start": "12:00", "end": "14:00"})

    assert rd.move_out_of_quiet_hours(at(date(2026, 3, 3), 13), lunch) == at(date(2026, 3, 3), 14)
    assert rd.move_out_of_quiet_hours(at(date(2026, 3, 3), 23), lunch) == at(date(2026, 3, 3), 23)


def test_a_late_evening_reminder_on_the_event_day_moves_earlier_not_past_the_event() -> None:
    late = policy(
        rules=[{"kind": "labs", "template": "labs", "send": [{"days_before": 0, "at": "22:00"}]}]
    )

    [item] = rd.reminder_items(late, [event("labs", "labs", INFUSION_DAY)], SHANGHAI, NOW)

    assert item.send_at == at(INFUSION_DAY, 20, 30)


# -- merging -----------------------------------------------------------------------------------


def test_reminders_in_the_same_half_day_become_one_message() -> None:
    events = [
        event("c1.infusion", "infusion", INFUSION_DAY),
        event("c1.labs", "labs", INFUSION_DAY - timedelta(days=1)),
        event("ct.w6", "imaging", INFUSION_DAY, code="ct"),
    ]
    items = rd.reminder_items(policy(), events, SHANGHAI, NOW)

    messages = rd.merge_half_days(items, policy())

    evening = [m for m in messages if m.send_at == at(date(2026, 3, 3), 18)]
    assert len(evening) == 1
    assert sorted(evening[0].event_keys) == ["c1.infusion", "c1.labs", "ct.w6"]
    assert "merged" in evening[0].notes
    assert len(messages) == 2  # the evening one and the morning of the infusion


def test_morning_and_evening_are_not_merged() -> None:
    premed_day = INFUSION_DAY - timedelta(days=1)
    items = rd.reminder_items(
        policy(),
        [event("dex", "premedication", premed_day, code="dexamethasone_3_days")],
        SHANGHAI,
        NOW,
    )

    messages = rd.merge_half_days(items, policy())

    assert [m.send_at for m in messages] == [at(premed_day, 8), at(premed_day, 20)]


def test_merging_can_be_switched_off() -> None:
    events = [
        event("c1.infusion", "infusion", INFUSION_DAY),
        event("c1.labs", "labs", INFUSION_DAY - timedelta(days=1)),
    ]
    p = policy(merge="none")

    messages = rd.merge_half_days(rd.reminder_items(p, events, SHANGHAI, NOW), p)

    assert len(messages) == 3


def test_merging_switched_off_leaves_one_plain_reminder_per_item() -> None:
    events = [
        event("c1.infusion", "infusion", INFUSION_DAY),
        event("c1.labs", "labs", INFUSION_DAY - timedelta(days=1)),
    ]
    p = policy(merge="none")

    messages = rd.merge_half_days(rd.reminder_items(p, events, SHANGHAI, NOW), p)

    # labs the day before at 18:00 (the earlier event first), infusion 2 days before at 18:00,
    # infusion 07:30 -> 08:00
    assert [(m.kind, m.send_at, m.event_keys, m.notes) for m in messages] == [
        ("reminder", at(date(2026, 3, 3), 18), ["c1.labs"], ()),
        ("reminder", at(date(2026, 3, 3), 18), ["c1.infusion"], ()),
        ("reminder", at(INFUSION_DAY, 8), ["c1.infusion"], ()),
    ]
    assert all(len(m.items) == 1 for m in messages)


def test_only_a_half_day_with_two_or_more_reminders_is_noted_as_merged() -> None:
    events = [
        event("c1.infusion", "infusion", INFUSION_DAY),
        event("c1.labs", "labs", INFUSION_DAY - timedelta(days=1)),
    ]

    messages = rd.merge_half_days(rd.reminder_items(policy(), events, SHANGHAI, NOW), policy())

    assert [(m.send_at, m.event_keys, m.notes) for m in messages] == [
        (at(date(2026, 3, 3), 18), ["c1.labs", "c1.infusion"], ("merged",)),
        (at(INFUSION_DAY, 8), ["c1.infusion"], ()),
    ]


# -- daily budget ------------------------------------------------------------------------------


def _single(key: str, when: datetime, event_day: date) -> PlannedMessage:
    item = rd.ReminderItem(
        event_key=key,
        kind="labs",
        event_date=event_day,
        template="labs",
        rule_id="labs:x",
        days_before=(event_day - when.date()).days,
        send_at=when,
    )
    return PlannedMessage("reminder", when, (item,))


def test_budget_counts_existing_messages_and_merges_the_extra_ones() -> None:
    day = date(2026, 3, 3)
    messages = [
        _single("a", at(day, 9), date(2026, 3, 6)),
        _single("b", at(day, 15), date(2026, 3, 6)),
    ]
    existing = [ExistingMessage(at(day, 8), "check-in"), ExistingMessage(at(day, 10), "moved")]

    kept = rd.apply_daily_budget(messages, existing, policy(), SHANGHAI)

    assert len(kept) == 1
    assert kept[0].send_at == at(day, 9)
    assert kept[0].event_keys == ["a", "b"]
    assert "merged_for_budget" in kept[0].notes


def test_the_budget_counts_days_in_the_patients_time_zone() -> None:
    # 01:00-03:00 on 3 March in Kiritimati (UTC+14) is still 2 March in UTC and in Shanghai,
    # and so is 09:00 in UTC: the next morning is 4 March's, not 3 March's
    kiritimati = ZoneInfo("Pacific/Kiritimati")
    day = date(2026, 3, 3)
    existing = [ExistingMessage(at(day, h, tz=kiritimati), f"m{h}") for h in (1, 2, 3)]
    message = _single("a", at(day, 9, tz=kiritimati), date(2026, 3, 6))

    [kept] = rd.apply_daily_budget([message], existing, policy(), kiritimati)

    assert kept.send_at == at(date(2026, 3, 4), 8, tz=kiritimati)
    assert "deferred_for_budget" in kept.notes


def test_a_full_day_defers_a_reminder_to_the_next_morning_while_before_the_event() -> None:
    day = date(2026, 3, 3)
    existing = [ExistingMessage(at(day, h), f"m{h}") for h in (8, 9, 10)]

    [kept] = rd.apply_daily_budget(
        [_single("a", at(day, 18), date(2026, 3, 6))], existing, policy(), SHANGHAI
    )

    assert kept.send_at == at(date(2026, 3, 4), 8)
    assert "deferred_for_budget" in kept.notes


def test_a_full_day_defers_a_reminder_to_the_morning_of_the_event_itself() -> None:
    event_day = date(2026, 3, 4)
    day_before = event_day - timedelta(days=1)
    existing = [ExistingMessage(at(day_before, h), f"m{h}") for h in (8, 9, 10)]

    [kept] = rd.apply_daily_budget(
        [_single("a", at(day_before, 18), event_day)], existing, policy(), SHANGHAI
    )

    assert kept.send_at == at(event_day, 8)
    assert kept.notes == ("deferred_for_budget",)


def test_a_dose_reminder_is_not_deferred_past_its_event_day() -> None:
    # the evening reminder of an 08:00 dose the next morning: the message is still worth
    # sending then (it expires at the end of the dose day), but deferring it to 08:00 would be
    # the next day, after the event's day: it is kept over budget instead
    day = date(2026, 3, 3)
    item = rd.ReminderItem(
        event_key="dex",
        kind="premedication",
        event_date=day,
        template="premedication",
        rule_id="premedication:x",
        days_before=0,
        send_at=at(day, 18),
        dose_at=at(day + timedelta(days=1), 8),
    )
    existing = [ExistingMessage(at(day, h), f"m{h}") for h in (8, 9, 10)]

    [kept] = rd.apply_daily_budget(
        [PlannedMessage("reminder", at(day, 18), (item,))], existing, policy(), SHANGHAI
    )

    assert (kept.send_at, kept.notes) == (at(day, 18), ("over_budget",))


def test_a_reminder_is_never_dropped_even_over_budget_on_the_event_day() -> None:
    day = date(2026, 3, 3)
    existing = [ExistingMessage(at(day, h), f"m{h}") for h in (8, 9, 10)]

    [kept] = rd.apply_daily_budget([_single("a", at(day, 18), day)], existing, policy(), SHANGHAI)

    assert kept.send_at == at(day, 18)
    assert "over_budget" in kept.notes


def test_a_budget_of_one_merges_morning_and_evening() -> None:
    premed_day = INFUSION_DAY - timedelta(days=1)
    p = policy(daily_budget=1)
    items = rd.reminder_items(
        p, [event("dex", "premedication", premed_day, code="dexamethasone_3_days")], SHANGHAI, NOW
    )

    kept = rd.apply_daily_budget(rd.merge_half_days(items, p), [], p, SHANGHAI)

    assert len(kept) == 1 and kept[0].send_at == at(premed_day, 8)
    assert len(kept[0].items) == 2


# -- no identical body within 24 hours ---------------------------------------------------------


def test_an_identical_body_within_24_hours_gets_a_variant() -> None:
    def constant(message: PlannedMessage, variant: int) -> str:
        return "Take your medicine" + (f" ({message.send_at:%H:%M})" if variant else "")

    premed_day = INFUSION_DAY - timedelta(days=1)
    messages = rd.plan_messages(
        policy(),
        [event("dex", "premedication", premed_day, code="dexamethasone_3_days")],
        SHANGHAI,
        NOW,
        [],
        constant,
    )

    assert [m.body for m in messages] == ["Take your medicine", "Take your medicine (20:00)"]
    assert messages[1].variant == 1 and "body_variant" in messages[1].notes
    assert messages[0].dedupe_key != messages[1].dedupe_key


def test_a_body_sent_yesterday_evening_is_not_repeated_this_morning() -> None:
    events = [event("c1.infusion", "infusion", INFUSION_DAY)]
    morning_body = "infusion@2026-03-05:0"
    existing = [ExistingMessage(at(INFUSION_DAY - timedelta(days=1), 19), morning_body)]

    messages = rd.plan_messages(policy(), events, SHANGHAI, NOW, existing, render_items)

    morning = messages[-1]
    assert morning.body == morning_body + "#1"


def test_when_no_variant_helps_the_message_is_shifted_then_kept_with_a_note() -> None:
    def stubborn(message: PlannedMessage, variant: int) -> str:
        return "same"

    day = date(2026, 3, 10)
    existing = [ExistingMessage(at(date(2026, 3, 3), 17), "same")]
    shifted = rd.avoid_duplicate_bodies(
        [_single("a", at(date(2026, 3, 3), 18), day)], existing, policy(), stubborn
    )
    assert shifted[0].send_at == at(date(2026, 3, 4), 17, 1)
    assert "shifted_duplicate" in shifted[0].notes

    stuck = rd.avoid_duplicate_bodies(
        [_single("b", at(date(2026, 3, 3), 18), date(2026, 3, 3))], existing, policy(), stubborn
    )
    assert stuck[0].send_at == at(date(2026, 3, 3), 18)
    assert "duplicate_body" in stuck[0].notes


def _by_variant(message: PlannedMessage, variant: int) -> str:
    """Body 'a', 'a!', 'a!!', ...: each variant differs, and names the message's event."""
    return message.event_keys[0] + "!" * variant


def test_the_same_body_exactly_one_window_earlier_is_no_duplicate() -> None:
    day = date(2026, 3, 3)
    existing = [ExistingMessage(at(day - timedelta(days=1), 18), "a")]

    [placed] = rd.avoid_duplicate_bodies(
        [_single("a", at(day, 18), date(2026, 3, 10))], existing, policy(), _by_variant
    )

    assert (placed.send_at, placed.body, placed.variant, placed.notes) == (at(day, 18), "a", 0, ())


def test_the_fourth_variant_is_the_last_one_tried() -> None:
    day = date(2026, 3, 3)
    message = _single("a", at(day, 18), date(2026, 3, 10))
    three_taken = [ExistingMessage(at(day, 17), body) for body in ("a", "a!", "a!!")]

    [placed] = rd.avoid_duplicate_bodies([message], three_taken, policy(), _by_variant)

    assert (placed.send_at, placed.body, placed.variant, placed.notes) == (
        at(day, 18),
        "a!!!",
        3,
        ("body_variant",),
    )
    four_taken = [*three_taken, ExistingMessage(at(day, 17), "a!!!")]
    [shifted] = rd.avoid_duplicate_bodies([message], four_taken, policy(), _by_variant)
    # every variant is taken: a day after the clash plus one minute, in its first variant
    assert (shifted.send_at, shifted.body, shifted.variant, shifted.notes) == (
        at(day + timedelta(days=1), 17, 1),
        "a",
        0,
        ("shifted_duplicate",),
    )


def test_a_message_is_shifted_at_most_three_times() -> None:
    def stubborn(message: PlannedMessage, variant: int) -> str:
        return "same"

    day = date(2026, 3, 3)
    message = _single("a", at(day, 18), date(2026, 3, 20))
    # the same body at 17:00 on three days: shifted to 17:01 the next day, three times
    three_days = [ExistingMessage(at(day + timedelta(days=n), 17), "same") for n in range(3)]
    [placed] = rd.avoid_duplicate_bodies([message], three_days, policy(), stubborn)
    assert placed.send_at == at(day + timedelta(days=3), 17, 1)
    assert placed.notes == ("shifted_duplicate",)

    # four days: a fourth shift would be needed; the message keeps its time with a note
    four_days = [*three_days, ExistingMessage(at(day + timedelta(days=3), 17), "same")]
    [kept] = rd.avoid_duplicate_bodies([message], four_days, policy(), stubborn)
    assert (kept.send_at, kept.body, kept.notes) == (at(day, 18), "same", ("duplicate_body",))


def test_a_shift_into_the_quiet_hours_waits_for_the_morning() -> None:
    def stubborn(message: PlannedMessage, variant: int) -> str:
        return "same"

    day = date(2026, 3, 3)
    existing = [ExistingMessage(at(day, 22), "same")]  # a message sent at 22:00 (not a reminder)

    [placed] = rd.avoid_duplicate_bodies(
        [_single("a", at(day, 20), date(2026, 3, 10))], existing, policy(), stubborn
    )

    # 22:01 the next day is in the quiet hours (21:00-08:00 in Shanghai): 08:00 the day after
    assert placed.send_at == at(day + timedelta(days=2), 8)
    assert placed.send_at.tzinfo == SHANGHAI


def test_a_shift_to_the_very_end_of_the_event_day_is_too_late() -> None:
    def stubborn(message: PlannedMessage, variant: int) -> str:
        return "same"

    no_quiet_hours = policy(quiet_hours={"start": "08:00", "end": "08:00"})
    event_day = date(2026, 3, 5)
    # the clash at 23:59 the day before: the shift lands on midnight after the event day
    existing = [ExistingMessage(at(event_day - timedelta(days=1), 23, 59), "same")]
    message = _single("a", at(event_day - timedelta(days=1), 12), event_day)
    assert message.expires_at == at(event_day + timedelta(days=1), 0)

    [kept] = rd.avoid_duplicate_bodies([message], existing, no_quiet_hours, stubborn)

    assert (kept.send_at, kept.notes) == (message.send_at, ("duplicate_body",))


def test_a_duplicate_kept_after_every_try_has_its_first_variants_body() -> None:
    day = date(2026, 3, 3)
    every_variant = [ExistingMessage(at(day, 17), body) for body in ("a", "a!", "a!!", "a!!!")]

    [kept] = rd.avoid_duplicate_bodies(
        [_single("a", at(day, 18), day)], every_variant, policy(), _by_variant
    )

    # the shift would pass the end of the event day: kept at 18:00 with the plain body
    assert (kept.send_at, kept.body, kept.variant, kept.notes) == (
        at(day, 18),
        "a",
        0,
        ("duplicate_body",),
    )


# -- time zones --------------------------------------------------------------------------------


def test_send_times_are_local_to_the_patient() -> None:
    events = [event("c1.infusion", "infusion", INFUSION_DAY)]

    shanghai = rd.reminder_items(policy(), events, SHANGHAI, NOW)
    new_york = rd.reminder_items(policy(), events, NEW_YORK, NOW)

    assert shanghai[0].send_at.astimezone(UTC) == datetime(2026, 3, 3, 10, tzinfo=UTC)
    assert new_york[0].send_at.astimezone(UTC) == datetime(2026, 3, 3, 23, tzinfo=UTC)
    assert new_york[0].send_at.hour == 18


def test_daylight_saving_days_keep_the_local_wall_time() -> None:
    # Europe/London moves to summer time on 2026-03-29 (01:00 -> 02:00).
    before, after = date(2026, 3, 27), date(2026, 3, 31)
    events = [event("a", "labs", before), event("b", "labs", after)]

    items = rd.reminder_items(policy(), events, LONDON, at(date(2026, 3, 20), 9, tz=LONDON))

    assert [i.send_at.hour for i in items] == [18, 18]
    assert [i.send_at.utcoffset() for i in items] == [timedelta(0), timedelta(hours=1)]


def test_a_wall_time_skipped_by_daylight_saving_moves_forward() -> None:
    skipped = rd.local_datetime(date(2026, 3, 29), time(1, 30), LONDON)

    assert (skipped.hour, skipped.minute) == (2, 30)


def test_half_days_follow_the_local_clock() -> None:
    assert rd.half_day(at(date(2026, 3, 3), 11, 59)) == (date(2026, 3, 3), 0)
    assert rd.half_day(at(date(2026, 3, 3), 12, 0)) == (date(2026, 3, 3), 1)


# -- keys, moves -------------------------------------------------------------------------------


def test_natural_keys_are_stable_and_change_with_the_event_date() -> None:
    first = rd.plan_messages(
        policy(), [event("c1", "infusion", INFUSION_DAY)], SHANGHAI, NOW, [], render_items
    )
    again = rd.plan_messages(
        policy(), [event("c1", "infusion", INFUSION_DAY)], SHANGHAI, NOW, [], render_items
    )
    moved = rd.plan_messages(
        policy(),
        [event("c1", "infusion", INFUSION_DAY + timedelta(days=2))],
        SHANGHAI,
        NOW,
        [],
        render_items,
    )

    assert [m.dedupe_key for m in first] == [m.dedupe_key for m in again]
    assert not {m.dedupe_key for m in first} & {m.dedupe_key for m in moved}
    assert all(m.dedupe_key.startswith("rem:2026-03-0") for m in first)


def test_moved_items_only_for_announced_live_events_on_a_new_date() -> None:
    new_day = INFUSION_DAY + timedelta(days=2)
    events = [
        event("c1.infusion", "infusion", new_day),
        event("c1.checkin", "checkin", new_day + timedelta(days=3)),
        event("c2.infusion", "infusion", INFUSION_DAY),
        event("c3.infusion", "infusion", new_day, status="cancelled"),
    ]
    moves = [
        EventMove("c1.infusion", INFUSION_DAY, new_day),
        EventMove("c1.checkin", INFUSION_DAY, new_day + timedelta(days=3)),
        EventMove("c2.infusion", INFUSION_DAY, INFUSION_DAY),
        EventMove("c3.infusion", INFUSION_DAY, new_day),
    ]

    items = rd.moved_items(policy(), moves, events, SHANGHAI, NOW)

    assert [(i.event_key, i.moved_from, i.event_date) for i in items] == [
        ("c1.infusion", INFUSION_DAY, new_day)
    ]


def test_the_moved_notice_waits_for_the_end_of_quiet_hours() -> None:
    items = rd.moved_items(
        policy(),
        [EventMove("c1", INFUSION_DAY, INFUSION_DAY + timedelta(days=1))],
        [event("c1", "infusion", INFUSION_DAY + timedelta(days=1))],
        SHANGHAI,
        at(date(2026, 3, 1), 22),
    )

    notice = rd.moved_notice(policy(), items, SHANGHAI, at(date(2026, 3, 1), 22), render_items)

    assert notice is not None
    assert notice.send_at == at(date(2026, 3, 2), 8)
    assert notice.kind == "moved" and notice.dedupe_key.startswith("moved:")


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"daily_budget": 0}, "daily_budget"),
        ({"quiet_hours": {"start": "9pm", "end": "08:00"}}, "quiet_hours.start"),
        ({"detail": "everything"}, "reminders.detail"),
        ({"merge": "day"}, "reminders.merge"),
        ({"rules": [{"kind": "labs", "template": "labs"}]}, "rules[0]"),
        (
            {
                "rules": [
                    {"kind": "labs", "template": "t", "send": [{"at": "18:00", "if_quiet": "x"}]}
                ]
            },
            "send[0].if_quiet",
        ),
        (
            {
                "rules": [
                    {"kind": "labs", "template": "t", "send": [{"days_before": -1, "at": "1:00"}]}
                ]
            },
            "days_before",
        ),
    ],
)
def test_configuration_errors_say_where(change: dict, where: str) -> None:
    with pytest.raises(ReminderConfigError, match=where.replace("[", r"\[").replace("]", r"\]")):
        policy(**change)


def test_yaml_times_written_without_quotes_are_understood() -> None:
    # YAML 1.1 reads 18:00 unquoted as the sexagesimal number 1080.
    assert rd.parse_clock(yaml.safe_load("at: 18:00")["at"], "x") == time(18, 0)


def test_the_protocol_file_reminder_section_is_valid() -> None:
    raw = yaml.safe_load(PROTOCOL.read_text(encoding="utf-8"))

    parsed = rd.parse_reminder_policy(raw.get("reminders"))

    kinds = {rule.kind for rule in parsed.rules}
    assert {"infusion", "premedication", "labs", "imaging"} <= kinds
    assert parsed.detail == "generic"
    assert parsed.daily_budget >= 1


# -- properties --------------------------------------------------------------------------------

event_days = st.dates(min_value=date(2026, 3, 2), max_value=date(2026, 3, 20))
kinds = st.sampled_from(["infusion", "labs", "imaging", "premedication"])


@st.composite
def calendars(draw: st.DrawFn) -> list[ReminderEvent]:
    count = draw(st.integers(min_value=1, max_value=12))
    return [
        event(f"e{i}", draw(kinds), draw(event_days), code="dexamethasone_3_days")
        for i in range(count)
    ]


# RULES above, written out by hand: (days before the event, local time). The infusion's 07:30
# falls in quiet hours (21:00-08:00) and is sent at 08:00; a course-less premedication is one day.
SENDS_BY_HAND = {
    "infusion": [(2, time(18)), (0, time(8))],
    "premedication": [(0, time(8)), (0, time(20))],
    "labs": [(1, time(18))],
    "imaging": [(2, time(18))],
}


def _sends_by_hand(
    events: list[ReminderEvent], tz: ZoneInfo, now: datetime
) -> list[tuple[str, datetime]]:
    """Every (event, send time) the rules call for that is not yet past at ``now``."""
    sends = [
        (e.key, datetime.combine(e.date - timedelta(days=days), at_time, tzinfo=tz))
        for e in events
        for days, at_time in SENDS_BY_HAND[e.kind]
    ]
    return sorted((key, send_at) for key, send_at in sends if send_at >= now)


@settings(max_examples=150, deadline=None)
@given(
    calendars(),
    st.sampled_from([SHANGHAI, LONDON, NEW_YORK]),
    st.integers(min_value=1, max_value=3),
)
def test_planned_messages_respect_every_rule(
    events: list[ReminderEvent], tz: ZoneInfo, budget: int
) -> None:
    p = policy(daily_budget=budget)
    now = datetime(2026, 3, 1, 1, tzinfo=UTC)
    messages = rd.plan_messages(p, events, tz, now, [], render_items)

    planned_items = sorted((i.event_key, i.send_at) for m in messages for i in m.items)
    assert planned_items == _sends_by_hand(events, tz, now)  # nothing dropped, nothing invented
    per_day: dict[date, list[PlannedMessage]] = {}
    for m in messages:
        local = m.send_at.astimezone(tz)
        assert not rd.in_quiet_hours(local, p.quiet_start, p.quiet_end)
        assert m.send_at >= now
        per_day.setdefault(local.date(), []).append(m)
    for day_messages in per_day.values():
        if len(day_messages) > budget:
            assert any("over_budget" in m.notes for m in day_messages)
    for a in messages:
        for b in messages:
            if a is not b and a.body == b.body:
                assert abs(a.send_at - b.send_at) >= p.duplicate_window
    assert len({m.dedupe_key for m in messages}) == len(messages)


# -- issue 11: timed doses, every course day, one clear message a day ------------------------


def _protocol_policy() -> rd.ReminderPolicy:
    raw = yaml.safe_load(PROTOCOL.read_text(encoding="utf-8"))
    return rd.parse_reminder_policy(raw["reminders"])


def test_docetaxel_dexamethasone_is_reminded_on_each_of_the_three_days() -> None:
    premed_day = INFUSION_DAY - timedelta(days=1)  # Wed Mar 4: the course is Mar 4, 5 and 6
    dex = event(
        "c1.dex",
        "premedication",
        premed_day,
        code="dexamethasone_3_days",
        details={"duration_days": 3},
    )

    items = rd.reminder_items(_protocol_policy(), [dex], SHANGHAI, NOW)

    doses = [(i.dose_at, i.send_at) for i in items]
    # each dose 2 h before; the 08:00 dose's 06:00 is in the quiet hours: 20:30 the evening before
    assert doses == [
        (at(date(2026, 3, 4), 8), at(date(2026, 3, 3), 20, 30)),
        (at(date(2026, 3, 4), 20), at(date(2026, 3, 4), 18)),
        (at(date(2026, 3, 5), 8), at(date(2026, 3, 4), 20, 30)),
        (at(date(2026, 3, 5), 20), at(date(2026, 3, 5), 18)),
        (at(date(2026, 3, 6), 8), at(date(2026, 3, 5), 20, 30)),
        (at(date(2026, 3, 6), 20), at(date(2026, 3, 6), 18)),
    ]
    assert len({i.ident for i in items}) == 6
    assert all(i.send_at < i.dose_at for i in items)


def test_paclitaxel_20_00_dose_is_reminded_two_hours_before() -> None:
    premed = event("c1.ptx", "premedication", INFUSION_DAY, code="paclitaxel_premedication")

    [item] = rd.reminder_items(_protocol_policy(), [premed], SHANGHAI, NOW)

    assert item.dose_at == at(INFUSION_DAY - timedelta(days=1), 20)
    assert item.send_at == at(INFUSION_DAY - timedelta(days=1), 18)


def test_a_send_needs_either_at_or_dose_at() -> None:
    bad = {"kind": "premedication", "template": "premedication", "send": [{"days_before": 0}]}
    with pytest.raises(ReminderConfigError, match="either at or dose_at"):
        rd.parse_reminder_policy({"rules": [bad]})


def test_one_day_summary_has_each_visit_once_and_the_strictest_fasting() -> None:
    visit_day = date(2026, 3, 20)
    events = [
        event("ct", "imaging", visit_day, code="ct", details={"fasting": {"food_hours": 4}}),
        event("us", "imaging", visit_day, code="ultrasound"),
        event(
            "gastro",
            "endoscopy",
            visit_day,
            code="gastroscopy",
            details={"fasting": {"food_hours": 8, "water_hours": 2}},
        ),
        event("labs", "labs", visit_day, details={"fasting": {"food_hours": 0, "water_hours": 0}}),
    ]
    items = rd.reminder_items(_protocol_policy(), events, SHANGHAI, NOW)

    [summary] = rd.day_summaries(items)

    assert [i.template for i in summary.clauses()] == ["endoscopy", "imaging", "labs"]
    assert summary.fasting == rd.Fasting(8, 2)
    assert summary.arrive_at == time(7, 30)  # the blood test is the first appointment
    assert [p.en for p in summary.preparations] == [
        "Come with a companion.",
        "Bring your previous images.",
    ]


def test_blood_tests_without_fasting_say_so() -> None:
    labs = event("labs", "labs", date(2026, 3, 20), details={"fasting": {"food_hours": 0}})
    [summary] = rd.day_summaries(rd.reminder_items(_protocol_policy(), [labs], SHANGHAI, NOW))
    assert summary.fasting == rd.Fasting(0, 0)
