"""Provider frequency limits per phone number, planned for instead of hit (issue 12).

Mainland providers refuse a send that passes their per-number limits (Tencent Cloud: the same
text once per 30 s, a few an hour, about 10 a natural day in UTC+8, account-dependent; Alibaba
Cloud: 50 a day per signature + template + number). ``wait_until`` says when a message may go
given what the number already received: routine messages (reminders, check-ins) wait, and leave a
reserve of the daily allowance for answers and pages; urgent messages (answers to a patient's
message, the red emergency reply, pages to staff) are never held back by a limit.

Pure: times in, a time out; the provider's day boundary (its time zone) is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

PROVIDER_DAY = ZoneInfo("Asia/Shanghai")  # both providers count natural days in UTC+8


@dataclass(frozen=True)
class FrequencyLimits:
    """One provider's per-number limits (None: no such limit) and the urgent reserve."""

    same_text_gap: timedelta | None = timedelta(seconds=30)
    per_hour: int | None = None
    per_day: int | None = None
    urgent_reserve: int = 2
    day_zone: tzinfo | None = None  # the provider counts natural days here (UTC+8)

    def __post_init__(self) -> None:
        for name in ("per_hour", "per_day"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        if self.urgent_reserve < 0:
            raise ValueError("urgent_reserve cannot be negative")


@dataclass(frozen=True)
class Sent:
    """A message the number already received (or that is on its way): when, and its text."""

    at: datetime
    body: str


def wait_until(
    limits: FrequencyLimits,
    history: Sequence[Sent],
    body: str,
    now: datetime,
    *,
    urgent: bool,
) -> datetime | None:
    """The earliest moment ``body`` may go to the number without passing a limit (None: now).

    Urgent messages always go now. Routine ones keep ``urgent_reserve`` of the daily allowance
    free, so a red reply later that day is not refused by the provider.
    """
    if urgent:
        return None
    waits = [
        _same_text(limits, history, body, now),
        _hourly(limits, history, now),
        _daily(limits, history, now),
    ]
    later = [moment for moment in waits if moment is not None and moment > now]
    return max(later) if later else None


def _same_text(
    limits: FrequencyLimits, history: Sequence[Sent], body: str, now: datetime
) -> datetime | None:
    """After the same text's gap since it last went."""
    gap = limits.same_text_gap
    if gap is None:
        return None
    recent = [s.at for s in history if s.body == body and now - s.at < gap]
    return max(recent) + gap if recent else None


def _hourly(limits: FrequencyLimits, history: Sequence[Sent], now: datetime) -> datetime | None:
    """When the rolling hour has room again (the oldest send in it leaves it)."""
    if limits.per_hour is None:
        return None
    hour = sorted(s.at for s in history if timedelta(0) <= now - s.at < timedelta(hours=1))
    room = max(limits.per_hour - _reserve(limits, limits.per_hour), 1)
    if len(hour) < room:
        return None
    return hour[len(hour) - room] + timedelta(hours=1)


def _daily(limits: FrequencyLimits, history: Sequence[Sent], now: datetime) -> datetime | None:
    """The provider's next natural day when today's routine allowance is used up."""
    if limits.per_day is None:
        return None
    zone = limits.day_zone or now.tzinfo
    today = now.astimezone(zone).date()
    count = sum(1 for s in history if s.at.astimezone(zone).date() == today)
    if count < max(limits.per_day - _reserve(limits, limits.per_day), 1):
        return None
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone)


def _reserve(limits: FrequencyLimits, allowance: int) -> int:
    """The part of an allowance kept for urgent messages (never all of it)."""
    return min(limits.urgent_reserve, allowance - 1)


# -- settings ------------------------------------------------------------------------------------


def _int(config: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """An integer setting (blank or 0: no limit), or a ValueError naming it."""
    value = config.get(key)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ValueError(f"{key} must be 0 (no limit) or a positive whole number, not {number}")
    return number or None


def limits_from_config(config: Mapping[str, Any]) -> FrequencyLimits | None:
    """The per-number limits of SMS_BACKEND (None for twilio / console, or SMS_PLAN_LIMITS=0)."""
    if str(config.get("SMS_PLAN_LIMITS", "1")).strip().lower() in ("0", "false", "no"):
        return None
    backend = str(config.get("SMS_BACKEND") or "console").strip().lower()
    reserve = _int(config, "SMS_LIMIT_URGENT_RESERVE", 2) or 0
    gap = _int(config, "SMS_LIMIT_SAME_TEXT_SECONDS", 30)
    same_text = timedelta(seconds=gap) if gap else None
    if backend == "tencent":
        return FrequencyLimits(
            same_text_gap=same_text,
            per_hour=_int(config, "TENCENT_SMS_HOURLY_LIMIT", 5),
            per_day=_int(config, "TENCENT_SMS_DAILY_LIMIT", 10),
            urgent_reserve=reserve,
            day_zone=PROVIDER_DAY,
        )
    if backend == "aliyun":
        return FrequencyLimits(
            same_text_gap=same_text,
            per_hour=_int(config, "ALIYUN_SMS_HOURLY_LIMIT", None),
            per_day=_int(config, "ALIYUN_SMS_DAILY_LIMIT", 50),
            urgent_reserve=reserve,
            day_zone=PROVIDER_DAY,
        )
    return None


def budget_problem(limits: FrequencyLimits | None, daily_budget: int | None) -> str | None:
    """Why the planner's daily reminder budget cannot fit the provider's per-number day (None:
    it fits): routine reminders must be merged to fit, not held back by the provider."""
    if limits is None or limits.per_day is None or not daily_budget:
        return None
    room = max(limits.per_day - _reserve(limits, limits.per_day), 1)
    if daily_budget <= room:
        return None
    return (
        f"SMS_DAILY_BUDGET={daily_budget} reminders a day per patient does not fit the SMS "
        f"provider's {limits.per_day} a day per number less {limits.per_day - room} kept for "
        f"urgent answers: set SMS_DAILY_BUDGET to {room} or less (reminders are then merged), "
        "or raise the provider's daily limit setting if the account allows more"
    )
