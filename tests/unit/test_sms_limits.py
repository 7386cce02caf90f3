"""Provider frequency limits per number, planned for (app/domain/sms_limits.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.sms_limits import FrequencyLimits, Sent, wait_until

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 4, 9, 0, tzinfo=SHANGHAI)
TENCENT = FrequencyLimits(
    same_text_gap=timedelta(seconds=30), per_hour=5, per_day=10, urgent_reserve=2,
    day_zone=SHANGHAI,
)  # fmt: skip


def sent(minutes_ago: float, body: str = "x") -> Sent:
    return Sent(NOW - timedelta(minutes=minutes_ago), body)


def test_nothing_sent_goes_now() -> None:
    assert wait_until(TENCENT, [], "提醒", NOW, urgent=False) is None


def test_the_same_text_waits_out_the_gap_and_another_text_does_not() -> None:
    history = [sent(10 / 60, "提醒：A")]
    assert wait_until(TENCENT, history, "提醒：A", NOW, urgent=False) == NOW + timedelta(seconds=20)
    assert wait_until(TENCENT, history, "提醒：B", NOW, urgent=False) is None


def test_the_hourly_allowance_less_the_reserve_waits_for_the_oldest_to_leave_the_hour() -> None:
    history = [sent(50), sent(40), sent(30)]  # 3 = 5 an hour - 2 reserved
    assert wait_until(TENCENT, history, "y", NOW, urgent=False) == NOW + timedelta(minutes=10)
    assert wait_until(TENCENT, history[1:], "y", NOW, urgent=False) is None


def test_the_daily_allowance_less_the_reserve_waits_for_the_providers_next_day() -> None:
    history = [sent(60 * h + 1) for h in range(1, 9)]  # 8 = 10 a day - 2 reserved, all today
    until = wait_until(TENCENT, history, "y", NOW, urgent=False)
    assert until == datetime(2026, 3, 5, 0, 0, tzinfo=SHANGHAI)
    yesterday = [Sent(datetime(2026, 3, 3, 23, 0, tzinfo=SHANGHAI), "y")] * 8
    assert wait_until(TENCENT, yesterday, "y", NOW, urgent=False) is None


@pytest.mark.parametrize("history", [[sent(0.1, "红")], [sent(60 * h + 1) for h in range(12)]])
def test_an_urgent_message_is_never_held_back(history: list[Sent]) -> None:
    assert wait_until(TENCENT, history, "红", NOW, urgent=True) is None


def test_the_reserve_never_takes_the_whole_allowance() -> None:
    tiny = FrequencyLimits(same_text_gap=None, per_day=1, urgent_reserve=5, day_zone=SHANGHAI)
    assert wait_until(tiny, [], "y", NOW, urgent=False) is None
    assert wait_until(tiny, [sent(1)], "y", NOW, urgent=False) is not None


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        FrequencyLimits(per_day=0)
    with pytest.raises(ValueError):
        FrequencyLimits(urgent_reserve=-1)
