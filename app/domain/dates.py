"""Dates typed by people (web forms, query strings, command options): parse and bound them.

Every date input is kept to a plausible range around the application's "today" so that
calendar arithmetic never overflows (year 1 or 9999) and typos (1900, 2206) are refused
with a message that says what is accepted. The ranges themselves are settings (config.py);
see docs/protocol-assumptions.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

DAYS_PER_YEAR = 365
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class DateInputError(ValueError):
    """A date input that is malformed (``kind`` "format") or out of range (``kind`` "range")."""

    def __init__(self, message: str, kind: str, date_range: DateRange | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.date_range = date_range


@dataclass(frozen=True)
class DateRange:
    """The inclusive range of dates an input accepts."""

    earliest: date
    latest: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.earliest <= day <= self.latest

    def check(self, day: date, what: str = "date") -> date:
        """``day`` itself, or DateInputError("range") naming the accepted range."""
        if day not in self:
            raise DateInputError(
                f"{what} {day.isoformat()} is outside {self.earliest.isoformat()} "
                f"to {self.latest.isoformat()}",
                "range",
                self,
            )
        return day


def shifted(day: date, days: int) -> date:
    """``day`` plus ``days``, clamped to the calendar's first and last dates (never overflows)."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def around(today: date, *, days_back: int, days_ahead: int) -> DateRange:
    """``today - days_back`` .. ``today + days_ahead``."""
    return DateRange(shifted(today, -days_back), shifted(today, days_ahead))


def input_range(today: date, years: int) -> DateRange:
    """Any date input: ``years`` years either side of today."""
    span = years * DAYS_PER_YEAR + years // 4
    return around(today, days_back=span, days_ahead=span)


def parse_date(text: str | None, what: str = "date") -> date:
    """A YYYY-MM-DD string as a date, or DateInputError("format")."""
    value = (text or "").strip()
    try:
        if not ISO_DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        message = f"{what}: expected a date as YYYY-MM-DD, got {value!r}"
        raise DateInputError(message, "format") from exc


def parse_bounded(text: str | None, date_range: DateRange, what: str = "date") -> date:
    """Parse ``text`` and check it is inside ``date_range`` (DateInputError otherwise)."""
    return date_range.check(parse_date(text, what), what)
