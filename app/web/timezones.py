"""Time zones offered on the enrolment form (patients of a Nanjing trial; a few travel)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from babel.dates import get_timezone, get_timezone_location
from flask_babel import get_locale
from flask_babel import gettext as _
from wtforms.fields.choices import SelectChoice

from app import clock

COMMON_TIMEZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Macau",
    "Asia/Taipei",
    "Asia/Urumqi",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Asia/Bangkok",
    "Australia/Sydney",
    "Europe/London",
    "Europe/Paris",
    "America/New_York",
    "America/Los_Angeles",
    "America/Vancouver",
)


def _offset(name: str) -> str:
    offset = clock.now_in(ZoneInfo(name)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def timezone_choices() -> list[SelectChoice]:
    """(zone, label) pairs with the current UTC offset; the clinic's zone first."""
    choices = []
    for name in COMMON_TIMEZONES:
        place = get_timezone_location(get_timezone(name), locale=get_locale() or "en")
        if name == "Asia/Shanghai":
            place = _("China (Beijing time)")
        label = f"{place} · {_offset(name)}"
        choices.append(SelectChoice(name, label))
    return choices
