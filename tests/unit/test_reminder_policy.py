"""The reminders: section of a protocol file, read exactly (written against surviving mutants).

Every expected value here is written by hand from the rules in app/domain/reminders.py's
docstrings and the protocol-file format: defaults, limits, error messages that name the field.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from app.domain import reminders as rd
from app.domain.protocol import Fasting
from app.domain.reminders import (
    EventMove,
    LocalText,
    ReminderConfigError,
    ReminderEvent,
    ReminderItem,
    SendTime,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULE = {"kind": "labs", "template": "labs", "send": [{"days_before": 1, "at": "18:00"}]}


def refused(raw: object, **kwargs: object) -> str:
    """The error message parse_reminder_policy gives for ``raw``."""
    with pytest.raises(ReminderConfigError) as error:
        rd.parse_reminder_policy(raw, **kwargs)  # type: ignore[arg-type]
    return str(error.value)


def one_rule(**changes: object) -> dict[str, object]:
    return {"rules": [{**RULE, **changes}]}


def only_send(send: object) -> SendTime:
    return rd.parse_reminder_policy(one_rule(send=[send])).rules[0].sends[0]


# -- policy-level settings ---------------------------------------------------------------------


def test_an_empty_section_gives_the_documented_defaults() -> None:
    for raw in (None, {}):
        policy = rd.parse_reminder_policy(raw)

        assert policy.rules == ()
        assert (policy.quiet_start, policy.quiet_end) == (time(21, 0), time(8, 0))
        assert policy.daily_budget == 3
        assert policy.duplicate_window == timedelta(hours=24)
        assert policy.merge_half_days is True
        assert policy.detail == "generic"


def test_every_setting_is_read() -> None:
    policy = rd.parse_reminder_policy(
        {
            "quiet_hours": {"start": "22:30", "end": "07:15"},
            "daily_budget": 1,
            "duplicate_window_hours": 1.5,
            "merge": "none",
            "detail": "titles",
        }
    )

    assert (policy.quiet_start, policy.quiet_end) == (time(22, 30), time(7, 15))
    assert policy.daily_budget == 1
    assert policy.duplicate_window == timedelta(minutes=90)
    assert policy.merge_half_days is False
    assert policy.detail == "titles"


def test_overrides_win_but_a_missing_override_keeps_the_file() -> None:
    raw = {"daily_budget": 2, "quiet_hours": {"start": "20:00", "end": "09:00"}}

    policy = rd.parse_reminder_policy(raw, overrides={"daily_budget": 5, "quiet_hours": None})

    assert policy.daily_budget == 5
    assert (policy.quiet_start, policy.quiet_end) == (time(20, 0), time(9, 0))


def test_a_zero_duplicate_window_is_allowed() -> None:
    assert rd.parse_reminder_policy({"duplicate_window_hours": 0}).duplicate_window == timedelta(0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"quiet_hours": "21:00-08:00"},
            "reminders.quiet_hours must be a mapping with start and end",
        ),
        ({"detail": "everything"}, "reminders.detail must be one of generic, titles"),
        ({"daily_budget": 0}, "reminders.daily_budget must be a whole number >= 1"),
        ({"daily_budget": True}, "reminders.daily_budget must be a whole number >= 1"),
        ({"daily_budget": "3"}, "reminders.daily_budget must be a whole number >= 1"),
        ({"daily_budget": 2.5}, "reminders.daily_budget must be a whole number >= 1"),
        (
            {"duplicate_window_hours": -1},
            "reminders.duplicate_window_hours must be a number >= 0",
        ),
        (
            {"duplicate_window_hours": "24"},
            "reminders.duplicate_window_hours must be a number >= 0",
        ),
        ({"merge": "day"}, "reminders.merge must be 'half_day' or 'none'"),
        ({"rules": {"kind": "labs"}}, "reminders.rules must be a list"),
        (
            {"quiet_hours": {"start": "nine"}},
            "reminders.quiet_hours.start must be a time as HH:MM, not 'nine'",
        ),
        (
            {"quiet_hours": {"end": "8h"}},
            "reminders.quiet_hours.end must be a time as HH:MM, not '8h'",
        ),
    ],
)
def test_a_bad_setting_is_refused_by_name(raw: dict[str, object], message: str) -> None:
    assert refused(raw) == message


def test_a_budget_of_one_is_the_smallest_allowed() -> None:
    assert rd.parse_reminder_policy({"daily_budget": 1}).daily_budget == 1


# -- clock times -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, time(0, 0)),
        (1080, time(18, 0)),  # YAML 1.1 reads an unquoted 18:00 as 1080 minutes
        (1439, time(23, 59)),
        (" 7:05 ", time(7, 5)),
        ("00:00", time(0, 0)),
        (time(6, 45), time(6, 45)),
    ],
)
def test_clock_times(value: object, expected: time) -> None:
    assert rd.parse_clock(value, "x.at") == expected


@pytest.mark.parametrize("value", [1440, -1, True, "25:00", "18", "18:00:00", "a:b"])
def test_a_bad_clock_time_is_refused_with_the_value(value: object) -> None:
    with pytest.raises(ReminderConfigError) as error:
        rd.parse_clock(value, "x.at")

    assert str(error.value) == f"x.at must be a time as HH:MM, not {value!r}"


# -- rules -------------------------------------------------------------------------------------


def test_a_rule_is_read_with_its_defaults() -> None:
    rule = rd.parse_reminder_policy(one_rule()).rules[0]

    assert rule.kind == "labs"
    assert rule.template == "labs"
    assert rule.sends == (SendTime(1, time(18, 0), "later"),)
    assert rule.codes == ()
    assert rule.announce_moves is False
    assert rule.detail is None
    assert rule.preparation == {}
    assert rule.every_course_day is False
    assert rule.arrive_at is None


def test_every_field_of_a_rule_is_read() -> None:
    rule = rd.parse_reminder_policy(
        one_rule(
            codes=["ct", 5],
            announce_moves=True,
            detail="titles",
            preparation={"ct": {"en": "Fast.", "zh": "禁食。"}},
            every_course_day=True,
            arrive_at="07:40",
        )
    ).rules[0]

    assert rule.codes == ("ct", "5")
    assert rule.announce_moves is True
    assert rule.detail == "titles"
    assert rule.preparation == {"ct": LocalText(en="Fast.", zh="禁食。")}
    assert rule.every_course_day is True
    assert rule.arrive_at == time(7, 40)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("labs", "reminders.rules[0] must be a mapping"),
        ({"template": "labs", "send": []}, "reminders.rules[0] needs 'kind'"),
        ({"kind": "labs", "send": []}, "reminders.rules[0] needs 'template'"),
        ({"kind": "labs", "template": "labs"}, "reminders.rules[0] needs 'send'"),
        ({**RULE, "send": []}, "reminders.rules[0].send must be a non-empty list"),
        ({**RULE, "send": {"at": "18:00"}}, "reminders.rules[0].send must be a non-empty list"),
        (
            {**RULE, "detail": "all"},
            "reminders.rules[0].detail must be one of generic, titles",
        ),
        ({**RULE, "codes": "ct"}, "reminders.rules[0].codes must be a list"),
        (
            {**RULE, "preparation": ["fast"]},
            "reminders.rules[0].preparation must map event codes to texts",
        ),
        (
            {**RULE, "preparation": {"ct": {"en": "Fast."}}},
            "reminders.rules[0].preparation.ct needs 'en' and 'zh' texts",
        ),
        (
            {**RULE, "preparation": {"ct": {"zh": "禁食。", "en": ""}}},
            "reminders.rules[0].preparation.ct needs 'en' and 'zh' texts",
        ),
        (
            {**RULE, "preparation": {"ct": "Fast."}},
            "reminders.rules[0].preparation.ct needs 'en' and 'zh' texts",
        ),
        (
            {**RULE, "arrive_at": "early"},
            "reminders.rules[0].arrive_at must be a time as HH:MM, not 'early'",
        ),
    ],
)
def test_a_bad_rule_is_refused_by_its_place(rule: object, message: str) -> None:
    assert refused({"rules": [rule]}) == message


def test_the_second_rule_is_named_by_its_index() -> None:
    assert refused({"rules": [RULE, {"kind": "x"}]}) == "reminders.rules[1] needs 'template'"


# -- send times --------------------------------------------------------------------------------


def test_a_send_time_defaults_to_the_event_day_and_later() -> None:
    assert only_send({"at": "07:30"}) == SendTime(0, time(7, 30), "later", dose_at=None)


def test_a_send_time_keeps_its_direction() -> None:
    assert only_send({"days_before": 60, "at": "20:00", "if_quiet": "earlier"}) == SendTime(
        60, time(20, 0), "earlier"
    )


def test_a_dose_reminder_is_two_hours_before_the_dose_by_default() -> None:
    assert only_send({"days_before": 1, "dose_at": "08:00"}) == SendTime(
        1, time(6, 0), "later", dose_at=time(8, 0)
    )


def test_a_dose_reminder_before_midnight_is_a_day_earlier() -> None:
    # a 01:00 dose with a 3-hour lead: the evening before, at 22:00
    send = only_send({"dose_at": "01:00", "lead_minutes": 180, "if_quiet": "earlier"})

    assert send == SendTime(1, time(22, 0), "earlier", dose_at=time(1, 0))


@pytest.mark.parametrize(("lead", "expected"), [(1, time(7, 59)), (1440, time(8, 0))])
def test_the_lead_time_limits_are_inclusive(lead: int, expected: time) -> None:
    send = only_send({"dose_at": "08:00", "lead_minutes": lead})

    assert send.at == expected
    assert send.days_before == (1 if lead == 1440 else 0)


@pytest.mark.parametrize(
    ("send", "message"),
    [
        (
            "18:00",
            "reminders.rules[0].send[0] must be a mapping with days_before and either at or "
            "dose_at (a timed dose)",
        ),
        (
            {"days_before": 1},
            "reminders.rules[0].send[0] must be a mapping with days_before and either at or "
            "dose_at (a timed dose)",
        ),
        (
            {"at": "18:00", "dose_at": "20:00"},
            "reminders.rules[0].send[0] must be a mapping with days_before and either at or "
            "dose_at (a timed dose)",
        ),
        (
            {"days_before": -1, "at": "18:00"},
            "reminders.rules[0].send[0].days_before must be a whole number 0-60",
        ),
        (
            {"days_before": 61, "at": "18:00"},
            "reminders.rules[0].send[0].days_before must be a whole number 0-60",
        ),
        (
            {"days_before": True, "at": "18:00"},
            "reminders.rules[0].send[0].days_before must be a whole number 0-60",
        ),
        (
            {"days_before": "1", "at": "18:00"},
            "reminders.rules[0].send[0].days_before must be a whole number 0-60",
        ),
        (
            {"at": "18:00", "if_quiet": "drop"},
            "reminders.rules[0].send[0].if_quiet must be 'later' or 'earlier'",
        ),
        ({"at": "6pm"}, "reminders.rules[0].send[0].at must be a time as HH:MM, not '6pm'"),
        (
            {"dose_at": "noon"},
            "reminders.rules[0].send[0].dose_at must be a time as HH:MM, not 'noon'",
        ),
        (
            {"dose_at": "08:00", "lead_minutes": 0},
            "reminders.rules[0].send[0].lead_minutes must be a whole number 1-1440",
        ),
        (
            {"dose_at": "08:00", "lead_minutes": 1441},
            "reminders.rules[0].send[0].lead_minutes must be a whole number 1-1440",
        ),
        (
            {"dose_at": "08:00", "lead_minutes": True},
            "reminders.rules[0].send[0].lead_minutes must be a whole number 1-1440",
        ),
        (
            {"dose_at": "08:00", "lead_minutes": 30.0},
            "reminders.rules[0].send[0].lead_minutes must be a whole number 1-1440",
        ),
    ],
)
def test_a_bad_send_time_is_refused_by_its_place(send: object, message: str) -> None:
    assert refused(one_rule(send=[send])) == message


def test_the_second_send_time_is_named_by_its_index() -> None:
    bad = one_rule(send=[{"at": "18:00"}, {"at": "x"}])

    assert refused(bad) == "reminders.rules[0].send[1].at must be a time as HH:MM, not 'x'"


# -- events and items --------------------------------------------------------------------------


def test_an_event_row_is_copied_with_empty_titles_for_missing_ones() -> None:
    row = SimpleNamespace(
        key="ev1",
        kind="labs",
        date=date(2026, 3, 5),
        status="confirmed",
        title_en=None,
        title_zh=None,
        details=None,
    )

    event = ReminderEvent.of(row)

    assert event == ReminderEvent(
        key="ev1",
        kind="labs",
        date=date(2026, 3, 5),
        status="confirmed",
        title_en="",
        title_zh="",
        code=None,
        details={},
    )


@pytest.mark.parametrize(
    ("details", "code"),
    [
        ({"code": "ct", "assessment": "week6"}, "ct"),
        ({"code": "", "assessment": "week6", "contact": "call"}, "week6"),
        ({"assessment": 6, "contact": "call", "premedication": "dex"}, "call"),
        ({"premedication": "dexamethasone_3_days"}, "dexamethasone_3_days"),
        ({"other": "x"}, None),
    ],
)
def test_an_events_code_comes_from_its_details_in_order(
    details: dict[str, object], code: str | None
) -> None:
    row = SimpleNamespace(
        key="e",
        kind="imaging",
        date=date(2026, 3, 5),
        status="planned",
        title_en="CT",
        title_zh="CT",
        details=details,
    )

    event = ReminderEvent.of(row)

    assert event.code == code
    assert event.details == details
    assert (event.title_en, event.title_zh) == ("CT", "CT")


def test_an_events_own_code_wins_over_its_details() -> None:
    row = SimpleNamespace(
        key="e",
        kind="imaging",
        date=date(2026, 3, 5),
        status="planned",
        title_en="CT",
        title_zh="CT",
        code="mri",
        details={"code": "ct"},
    )

    assert ReminderEvent.of(row).code == "mri"


def test_an_item_summary_for_the_outbox() -> None:
    item = ReminderItem(
        event_key="c1-infusion",
        kind="infusion",
        event_date=date(2026, 3, 5),
        template="treatment",
        rule_id="infusion:2d@18:00",
        days_before=2,
        send_at=datetime(2026, 3, 3, 18, 0, tzinfo=SHANGHAI),
        moved_from=date(2026, 3, 4),
    )

    assert item.to_json() == {
        "event_key": "c1-infusion",
        "kind": "infusion",
        "event_date": "2026-03-05",
        "template": "treatment",
        "rule": "infusion:2d@18:00",
        "days_before": 2,
        "moved_from": "2026-03-04",
    }
    assert replace(item, moved_from=None).to_json()["moved_from"] is None


# -- "your visit has moved" items --------------------------------------------------------------

ANNOUNCING = rd.parse_reminder_policy(
    {"detail": "titles", "rules": [{**RULE, "announce_moves": True}]}
)
NOW = datetime(2026, 3, 4, 9, 0, tzinfo=SHANGHAI)


def labs(key: str, day: date, status: str = "planned", **extra: object) -> ReminderEvent:
    return ReminderEvent(key=key, kind="labs", date=day, status=status, **extra)


def test_a_moved_item_says_what_moved_where_and_from_when() -> None:
    event = labs("l1", date(2026, 3, 9), title_en="Blood test", title_zh="抽血", code="cbc")

    (item,) = rd.moved_items(
        ANNOUNCING, [EventMove("l1", date(2026, 3, 6))], [event], SHANGHAI, NOW
    )

    assert item == ReminderItem(
        event_key="l1",
        kind="labs",
        event_date=date(2026, 3, 9),
        template="moved",
        rule_id="moved",
        days_before=5,
        send_at=NOW,
        detail="titles",
        code="cbc",
        title=LocalText(en="Blood test", zh="抽血"),
        moved_from=date(2026, 3, 6),
    )


def test_now_is_read_in_the_patients_time_zone() -> None:
    # 23:30 UTC on 3 March is 07:30 on 4 March in Shanghai: the event is 1 day away
    late_utc = datetime(2026, 3, 3, 23, 30, tzinfo=ZoneInfo("UTC"))
    event = labs("l1", date(2026, 3, 5))

    (item,) = rd.moved_items(
        ANNOUNCING, [EventMove("l1", date(2026, 3, 9))], [event], SHANGHAI, late_utc
    )

    assert item.days_before == 1
    assert item.send_at == late_utc
    assert item.send_at.tzinfo == SHANGHAI
    assert item.title is None


def test_a_move_to_today_is_announced_but_not_one_to_yesterday() -> None:
    today, yesterday = labs("t", date(2026, 3, 4)), labs("y", date(2026, 3, 3))
    moves = [EventMove("t", date(2026, 3, 10)), EventMove("y", date(2026, 3, 10))]

    items = rd.moved_items(ANNOUNCING, moves, [today, yesterday], SHANGHAI, NOW)

    assert [(i.event_key, i.days_before) for i in items] == [("t", 0)]


@pytest.mark.parametrize("status", ["planned", "confirmed"])
def test_live_events_are_announced(status: str) -> None:
    event = labs("l1", date(2026, 3, 9), status=status)

    items = rd.moved_items(ANNOUNCING, [EventMove("l1", date(2026, 3, 6))], [event], SHANGHAI, NOW)

    assert len(items) == 1


@pytest.mark.parametrize(
    ("move", "status", "announce"),
    [
        (EventMove("other", date(2026, 3, 6)), "planned", True),  # not one of the events
        (EventMove("l1", None), "planned", True),  # old date not known
        (EventMove("l1", date(2026, 3, 9)), "planned", True),  # back on its old date
        (EventMove("l1", date(2026, 3, 6)), "cancelled", True),  # not live
        (EventMove("l1", date(2026, 3, 6)), "done", True),
        (EventMove("l1", date(2026, 3, 6)), "planned", False),  # the rule does not announce
    ],
)
def test_moves_not_worth_a_notice(move: EventMove, status: str, announce: bool) -> None:
    policy = rd.parse_reminder_policy({"rules": [{**RULE, "announce_moves": announce}]})

    assert (
        rd.moved_items(policy, [move], [labs("l1", date(2026, 3, 9), status)], SHANGHAI, NOW) == []
    )


def test_moved_items_come_in_date_then_kind_then_key_order() -> None:
    policy = rd.parse_reminder_policy(
        {
            "rules": [
                {**RULE, "announce_moves": True},
                {**RULE, "kind": "imaging", "announce_moves": True},
            ]
        }
    )
    events = [
        labs("b", date(2026, 3, 9)),
        labs("a", date(2026, 3, 9)),
        ReminderEvent(key="c", kind="imaging", date=date(2026, 3, 9)),
        labs("d", date(2026, 3, 8)),
    ]
    moves = [EventMove(e.key, date(2026, 3, 20)) for e in events]

    items = rd.moved_items(policy, moves, events, SHANGHAI, NOW)

    assert [i.event_key for i in items] == ["d", "c", "a", "b"]


# -- items of one event ------------------------------------------------------------------------


def test_an_items_fasting_and_arrival_come_from_the_event_and_rule() -> None:
    policy = rd.parse_reminder_policy(one_rule(arrive_at="07:30"))
    event = labs("l1", date(2026, 3, 6), details={"fasting": {"food_hours": 8, "water_hours": 2}})

    (item,) = rd.reminder_items(policy, [event], SHANGHAI, NOW)

    assert item.fasting == Fasting(8, 2)
    assert item.arrive_at == time(7, 30)
    assert item.send_at == datetime(2026, 3, 5, 18, 0, tzinfo=SHANGHAI)
    assert item.days_before == 1
    assert item.rule_id == "labs:1d@18:00"
    assert item.detail == "generic"
    assert item.title is None


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        ("en", "Fast."),
        ("en_GB", "Fast."),
        ("zh", "禁食。"),
        ("zh_Hans_CN", "禁食。"),
        ("fr", "禁食。"),
    ],
)
def test_a_local_text_is_english_only_for_english(locale: str, text: str) -> None:
    assert LocalText(en="Fast.", zh="禁食。").get(locale) == text


# -- the "your visit has moved" message ---------------------------------------------------------


def render_variant(message: rd.PlannedMessage, variant: int) -> str:
    """A renderer that shows the variant it was asked for and what the message covers."""
    keys = ",".join(f"{i.event_key}@{i.send_at:%d %H:%M}" for i in message.items)
    return f"v{variant}:{message.kind}:{keys}"


def test_no_moved_items_no_notice() -> None:
    assert rd.moved_notice(ANNOUNCING, [], SHANGHAI, NOW, render_variant) is None


def test_a_moved_notice_is_sent_now_in_the_first_variant() -> None:
    event = labs("l1", date(2026, 3, 9))
    items = rd.moved_items(ANNOUNCING, [EventMove("l1", date(2026, 3, 6))], [event], SHANGHAI, NOW)

    notice = rd.moved_notice(ANNOUNCING, items, SHANGHAI, NOW, render_variant)

    assert notice is not None
    assert notice.kind == "moved"
    assert notice.send_at == NOW
    assert notice.body == "v0:moved:l1@04 09:00"
    assert notice.variant == 0


def test_a_moved_notice_in_quiet_hours_waits_for_the_morning() -> None:
    late = datetime(2026, 3, 4, 22, 15, tzinfo=SHANGHAI)
    events = [labs("l1", date(2026, 3, 9)), labs("l2", date(2026, 3, 10))]
    moves = [EventMove("l1", date(2026, 3, 6)), EventMove("l2", date(2026, 3, 7))]
    items = rd.moved_items(ANNOUNCING, moves, events, SHANGHAI, late)

    notice = rd.moved_notice(ANNOUNCING, items, SHANGHAI, late, render_variant)

    morning = datetime(2026, 3, 5, 8, 0, tzinfo=SHANGHAI)
    assert notice is not None
    assert notice.send_at == morning
    assert [i.send_at for i in notice.items] == [morning, morning]
    assert notice.body == "v0:moved:l1@05 08:00,l2@05 08:00"


def test_an_event_like_object_without_details_or_code_is_read() -> None:
    # EventLike (a domain PlannedEvent or a DB row) promises neither details nor code
    row = SimpleNamespace(
        key="e", kind="labs", date=date(2026, 3, 5), status="planned", title_en="", title_zh=""
    )

    event = ReminderEvent.of(row)

    assert (event.code, event.details) == (None, {})


@pytest.mark.parametrize(
    ("skipped", "status", "day"),
    [
        (EventMove("nobody", date(2026, 3, 6)), "planned", date(2026, 3, 9)),  # no such event
        (EventMove("s", date(2026, 3, 6)), "cancelled", date(2026, 3, 9)),  # not live
        (EventMove("s", date(2026, 3, 6)), "planned", date(2026, 3, 1)),  # already past
    ],
)
def test_a_move_not_worth_a_notice_does_not_hide_the_next_one(
    skipped: EventMove, status: str, day: date
) -> None:
    events = [labs("s", day, status), labs("l1", date(2026, 3, 9))]
    moves = [skipped, EventMove("l1", date(2026, 3, 6))]

    items = rd.moved_items(ANNOUNCING, moves, events, SHANGHAI, NOW)

    assert [i.event_key for i in items] == ["l1"]


# -- one message's days ---------------------------------------------------------------------------


def reminder(key: str, day: date, template: str, **extra: object) -> ReminderItem:
    return ReminderItem(
        event_key=key,
        kind=template,
        event_date=day,
        template=template,
        rule_id=f"{template}:1d@18:00",
        days_before=1,
        send_at=datetime(2026, 3, 4, 18, 0, tzinfo=SHANGHAI),
        **extra,  # type: ignore[arg-type]
    )


def test_day_summaries_group_by_day_and_say_nothing_they_were_not_told() -> None:
    items = [
        reminder("ct", date(2026, 3, 6), "imaging", fasting=Fasting(4), arrive_at=time(8, 30)),
        reminder("cbc", date(2026, 3, 5), "labs"),
        reminder("lft", date(2026, 3, 5), "labs"),
        reminder("mri", date(2026, 3, 6), "imaging", fasting=Fasting(6, 2), arrive_at=time(7, 45)),
        reminder("ecg", date(2026, 3, 6), "ecg", fasting=Fasting(0, 0)),
    ]

    first, second = rd.day_summaries(items)

    assert first.day == date(2026, 3, 5)
    assert [i.event_key for i in first.items] == ["cbc", "lft"]
    assert first.templates == ("labs",)
    assert first.fasting is None  # no test of the day said anything about fasting
    assert first.arrive_at is None
    assert first.preparations == ()
    assert second.day == date(2026, 3, 6)
    assert second.templates == ("ecg", "imaging")  # same send time: in order of kind
    assert second.fasting == Fasting(6, 2)  # the strictest of 4 h and 6 h + 2 h water
    assert second.arrive_at == time(7, 45)  # the earliest arrival


def test_a_day_whose_tests_need_no_fasting_says_so() -> None:
    items = [reminder("cbc", date(2026, 3, 5), "labs", fasting=Fasting(0, 0))]

    (summary,) = rd.day_summaries(items)

    assert summary.fasting == Fasting(0, 0)


def test_merging_two_messages_keeps_the_kind_the_earlier_time_and_each_note_once() -> None:
    early, late = (
        datetime(2026, 3, 4, 8, 0, tzinfo=SHANGHAI),
        datetime(2026, 3, 4, 18, 0, tzinfo=SHANGHAI),
    )
    first = rd.PlannedMessage(
        "reminder", late, (reminder("b", date(2026, 3, 6), "labs"),), notes=("merged",)
    )
    second = rd.PlannedMessage("reminder", early, (reminder("a", date(2026, 3, 5), "labs"),))

    merged = rd.merge_messages(first, second, "merged_for_budget")

    assert merged.kind == "reminder"
    assert merged.send_at == early
    assert [i.event_key for i in merged.items] == ["a", "b"]  # same send time: by event date
    assert merged.notes == ("merged", "merged_for_budget")
    assert rd.merge_messages(first, first, "merged").notes == ("merged",)


# -- quiet hours ---------------------------------------------------------------------------------


def shanghai(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("wall", "quiet"),
    [
        (time(20, 59), False),
        (time(21, 0), True),  # the start is quiet
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),  # the end is not
        (time(12, 0), False),
    ],
)
def test_quiet_hours_across_midnight(wall: time, quiet: bool) -> None:
    moment = datetime.combine(date(2026, 3, 4), wall, tzinfo=SHANGHAI)

    assert rd.in_quiet_hours(moment, time(21, 0), time(8, 0)) is quiet


@pytest.mark.parametrize(
    ("wall", "quiet"),
    [(time(12, 59), False), (time(13, 0), True), (time(13, 59), True), (time(14, 0), False)],
)
def test_quiet_hours_within_a_day(wall: time, quiet: bool) -> None:
    moment = datetime.combine(date(2026, 3, 4), wall, tzinfo=SHANGHAI)

    assert rd.in_quiet_hours(moment, time(13, 0), time(14, 0)) is quiet


def test_equal_start_and_end_mean_no_quiet_hours() -> None:
    assert rd.in_quiet_hours(shanghai(4, 21), time(21, 0), time(21, 0)) is False


NIGHT = rd.parse_reminder_policy({"quiet_hours": {"start": "21:00", "end": "08:00"}})
SIESTA = rd.parse_reminder_policy({"quiet_hours": {"start": "12:00", "end": "14:00"}})


@pytest.mark.parametrize(
    ("moment", "later", "earlier"),
    [
        # evening, before midnight: later is tomorrow 08:00, earlier today 20:30
        (shanghai(4, 22), shanghai(5, 8), shanghai(4, 20, 30)),
        (shanghai(4, 21), shanghai(5, 8), shanghai(4, 20, 30)),
        # small hours: later is this morning 08:00, earlier yesterday 20:30
        (shanghai(5, 6), shanghai(5, 8), shanghai(4, 20, 30)),
        (shanghai(5, 0), shanghai(5, 8), shanghai(4, 20, 30)),
        # allowed times do not move
        (shanghai(5, 8), shanghai(5, 8), shanghai(5, 8)),
        (shanghai(4, 20, 59), shanghai(4, 20, 59), shanghai(4, 20, 59)),
    ],
)
def test_moving_out_of_night_quiet_hours(
    moment: datetime, later: datetime, earlier: datetime
) -> None:
    assert rd.move_out_of_quiet_hours(moment, NIGHT, "later") == later
    assert rd.move_out_of_quiet_hours(moment, NIGHT) == later
    assert rd.move_out_of_quiet_hours(moment, NIGHT, "earlier") == earlier


def test_moving_out_of_daytime_quiet_hours_stays_on_the_day() -> None:
    assert rd.move_out_of_quiet_hours(shanghai(4, 13), SIESTA, "later") == shanghai(4, 14)
    assert rd.move_out_of_quiet_hours(shanghai(4, 12), SIESTA, "earlier") == shanghai(4, 11, 30)


# -- the daily budget ----------------------------------------------------------------------------


def message(key: str, send_at: datetime, event_day: date) -> rd.PlannedMessage:
    item = replace(reminder(key, event_day, "labs"), send_at=send_at)
    return rd.PlannedMessage("reminder", send_at, (item,))


BUDGET_2 = rd.parse_reminder_policy({"daily_budget": 2})


def test_within_the_budget_nothing_changes() -> None:
    day = [
        message("a", shanghai(4, 9), date(2026, 3, 6)),
        message("b", shanghai(4, 18), date(2026, 3, 6)),
    ]

    assert rd.apply_daily_budget(day, [], BUDGET_2, SHANGHAI) == day


def test_over_the_budget_the_last_ones_merge_into_one() -> None:
    day = [
        message("a", shanghai(4, 9), date(2026, 3, 6)),
        message("b", shanghai(4, 15), date(2026, 3, 6)),
        message("c", shanghai(4, 18), date(2026, 3, 7)),
    ]

    first, second = rd.apply_daily_budget(day, [], BUDGET_2, SHANGHAI)

    assert first == day[0]
    assert second.send_at == shanghai(4, 15)
    assert [i.event_key for i in second.items] == ["b", "c"]
    assert second.notes == ("merged_for_budget",)


def test_existing_messages_use_the_budget_and_a_full_day_defers_to_the_next_morning() -> None:
    existing = [rd.ExistingMessage(shanghai(4, 8), "x"), rd.ExistingMessage(shanghai(4, 9), "y")]
    day = [
        message("a", shanghai(4, 15), date(2026, 3, 6)),
        message("b", shanghai(4, 18), date(2026, 3, 6)),
    ]

    (deferred,) = rd.apply_daily_budget(day, existing, BUDGET_2, SHANGHAI)

    assert deferred.send_at == shanghai(5, 8)  # the end of the quiet hours, next day
    assert [i.event_key for i in deferred.items] == ["a", "b"]
    assert deferred.notes == ("merged_for_budget", "deferred_for_budget")


def test_a_full_day_before_the_event_keeps_the_message_over_budget() -> None:
    existing = [rd.ExistingMessage(shanghai(4, 8), "x"), rd.ExistingMessage(shanghai(4, 9), "y")]
    day = [message("a", shanghai(4, 15), date(2026, 3, 4))]  # the event is today

    (kept,) = rd.apply_daily_budget(day, existing, BUDGET_2, SHANGHAI)

    assert kept.send_at == shanghai(4, 15)
    assert kept.notes == ("over_budget",)  # one message: nothing merged, nothing dropped


def test_a_deferred_message_counts_against_the_next_days_budget() -> None:
    budget_1 = rd.parse_reminder_policy({"daily_budget": 1})
    existing = [rd.ExistingMessage(shanghai(4, 8), "x")]
    messages = [
        message("a", shanghai(4, 15), date(2026, 3, 9)),  # deferred to 5 March 08:00
        message("b", shanghai(5, 18), date(2026, 3, 9)),  # then 5 March is over budget too
    ]

    (kept,) = rd.apply_daily_budget(messages, existing, budget_1, SHANGHAI)

    assert kept.send_at == shanghai(5, 8)
    assert [i.event_key for i in kept.items] == ["a", "b"]
    assert "deferred_for_budget" in kept.notes
