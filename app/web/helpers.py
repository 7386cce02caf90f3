"""Small helpers shared by the views: the clinic clock, pagination, safe redirects."""

from __future__ import annotations

import re
from datetime import date, datetime
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from flask import current_app, flash, g, request, url_for
from flask_babel import gettext as _

from app import clock
from app.domain.dates import DateInputError, DateRange
from app.services.shared.date_inputs import parse_date_input
from app.services.shared.pagination import Page

__all__ = [
    "Page",
    "clinic_now",
    "clinic_today",
    "clinic_tz",
    "event_url",
    "flash_out_of_range",
    "page_number",
    "parse_iso_date",
    "patient_url",
    "safe_next_url",
]


def clinic_tz() -> ZoneInfo:
    """The clinic's time zone (staff screens show clinic time)."""
    return ZoneInfo(current_app.config.get("CLINIC_TIMEZONE", "Asia/Shanghai"))


def clinic_now() -> datetime:
    """The current time at the clinic, aware."""
    return clock.now_in(clinic_tz())


def clinic_today() -> date:
    """Today's date at the clinic."""
    return clinic_now().date()


def parse_iso_date(value: str | None) -> date | None:
    """A YYYY-MM-DD string as a date, or None when empty, malformed or implausible.

    An implausible date (outside the range of app.services.date_inputs) is flashed to the user
    with the accepted range, and the filter it was meant for is dropped.
    """
    if not value:
        return None
    try:
        return parse_date_input(value)
    except DateInputError as exc:
        if exc.kind == "range" and exc.date_range is not None:
            flash_out_of_range(value, exc.date_range)
        return None


def flash_out_of_range(value: str, allowed: DateRange) -> None:
    """Tell the user a date they gave is outside the accepted range."""
    flash(
        _(
            "The date %(value)s is not accepted: use a date between %(earliest)s and %(latest)s.",
            value=value.strip()[:10],
            earliest=allowed.earliest.isoformat(),
            latest=allowed.latest.isoformat(),
        ),
        "error",
    )


def page_number(name: str = "page") -> int:
    """The page number from the query string (1 when missing or bad)."""
    raw = request.args.get(name, "1")
    return max(1, int(raw)) if raw.isdigit() else 1


def safe_next_url(target: str | None, fallback: str) -> str:
    """A redirect target on this site only (no scheme, no host), else the fallback."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    if "\\" in target:
        return fallback
    return target


def patient_url(study_id: str) -> str:
    """url_for("patients.detail", study_id=...), from a pattern built once per app context."""
    return _from_pattern("patients.detail", study_id=study_id)


def event_url(study_id: str, key: str) -> str:
    """url_for("patients.event", study_id=..., key=...), from a pattern built once per context.

    Lists of hundreds of events (Today, the week, a patient's calendar) built a URL per row
    through the URL map: a tenth of such a page.
    """
    return _from_pattern("patients.event", study_id=study_id, key=key)


def _from_pattern(endpoint: str, **values: str) -> str:
    """The endpoint's URL with each value put in its marker's place (quoted; the ids and keys
    are letters, digits, '-', '_' and '.', which any quoting leaves as they are)."""
    patterns = g.setdefault("_cadence_url_patterns", {})
    pattern = patterns.get(endpoint)
    if pattern is None:
        url = url_for(endpoint, **{name: f"__{name}__" for name in values})
        pattern = patterns[endpoint] = re.split(r"__([a-z_]+?)__", url)
    # [literal, name, literal, name, ..., literal]: a value is never searched for markers
    return "".join(
        part if i % 2 == 0 else quote(values[part], safe="") for i, part in enumerate(pattern)
    )
