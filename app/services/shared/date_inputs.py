"""The plausible ranges of date inputs, from the settings and the application's clock.

Web views and CLI commands parse every date a person types through these helpers
(app.domain.dates does the pure work).
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from flask import current_app

from app.domain.dates import DateRange, around, input_range, parse_bounded
from app.models import utcnow

DEFAULT_DATE_INPUT_YEARS = 10
DEFAULT_ENROLMENT_DAYS_BACK = 365
DEFAULT_ENROLMENT_DAYS_AHEAD = 90


def app_today() -> date:
    """Today at the clinic, from the application's clock."""
    tz = ZoneInfo(current_app.config.get("CLINIC_TIMEZONE", "Asia/Shanghai"))
    return utcnow().astimezone(tz).date()


def any_date_range(today: date | None = None) -> DateRange:
    """Any date input: DATE_INPUT_YEARS (default 10) years either side of today."""
    years = int(current_app.config.get("DATE_INPUT_YEARS", DEFAULT_DATE_INPUT_YEARS))
    return input_range(today or app_today(), years)


def enrolment_start_range(today: date | None = None) -> DateRange:
    """The first infusion of a new patient: ENROLMENT_START_DAYS_BACK .. _AHEAD around today."""
    config = current_app.config
    return around(
        today or app_today(),
        days_back=int(config.get("ENROLMENT_START_DAYS_BACK", DEFAULT_ENROLMENT_DAYS_BACK)),
        days_ahead=int(config.get("ENROLMENT_START_DAYS_AHEAD", DEFAULT_ENROLMENT_DAYS_AHEAD)),
    )


def parse_date_input(text: str | None, what: str = "date") -> date:
    """A typed YYYY-MM-DD date inside the plausible range, or DateInputError."""
    return parse_bounded(text, any_date_range(), what)
