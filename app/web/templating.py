"""Jinja filters and globals: dates in the user's locale and the clinic time zone, labels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import lru_cache, wraps
from typing import Any

from babel.dates import format_interval, format_skeleton
from flask import Flask
from flask_babel import format_date, format_datetime, get_locale
from jinja2 import pass_context

from app.web import audit_view, kind_signs, labels, reasons, terms
from app.web.forms import LANGUAGE_CHOICES
from app.web.helpers import clinic_today, clinic_tz, event_url, patient_url
from app.web.nav import nav_links
from app.web.security import can


def _locale() -> str:
    return str(get_locale() or "zh")


@lru_cache(maxsize=8192)
def _skeleton(skeleton: str, value: date, locale: str) -> str:
    """Babel's format_skeleton, remembered: a patient's calendar formats hundreds of dates."""
    return format_skeleton(skeleton, value, locale=locale)


@lru_cache(maxsize=8192)
def _interval(start: date, end: date, skeleton: str, locale: str) -> str:
    """Babel's format_interval, remembered (as _skeleton)."""
    return format_interval(start, end, skeleton, locale=locale)


def fmt_date(value: date | None, fmt: str = "medium") -> str:
    """A date in the user's locale ('2026年3月1日' / 'Mar 1, 2026')."""
    return format_date(value, fmt) if value else ""


def fmt_day(value: date | None) -> str:
    """Month and day ('3月1日' / 'Mar 1')."""
    return _skeleton("MMMd", value, _locale()) if value else ""


def fmt_day_weekday(value: date | None) -> str:
    """Weekday, month and day ('3月1日周日' / 'Sun, Mar 1')."""
    return _skeleton("MMMEd", value, _locale()) if value else ""


def fmt_weekday(value: date | None) -> str:
    """Short weekday ('周日' / 'Sun')."""
    return format_date(value, "EEE") if value else ""


def fmt_month(value: date | None) -> str:
    """Month and year ('2026年3月' / 'March 2026')."""
    return _skeleton("yMMMM", value, _locale()) if value else ""


def fmt_datetime(value: datetime | None, fmt: str = "medium") -> str:
    """An aware UTC datetime shown in the clinic time zone and the user's locale."""
    return format_datetime(value, fmt) if value else ""


def fmt_window(start: date | None, end: date | None) -> str:
    """A date window ('3月1日至8日' / 'Mar 1 – 8'); the year is shown when it is not this year."""
    if not start or not end:
        return ""
    this_year = clinic_today().year
    skeleton = "MMMd" if start.year == end.year == this_year else "yMMMd"
    if start == end:
        return _skeleton(skeleton, start, _locale())
    return _interval(start, end, skeleton, _locale())


def days_between(a: date | None, b: date | None) -> int | None:
    """b - a in days."""
    if not a or not b:
        return None
    return (b - a).days


def render_time_filters(app: Flask) -> None:
    """Make the app's own filters run at render time, in each reader's language.

    Jinja folds a filter of a constant ('planned'|sms_status) when it compiles a template, which
    would bake the first reader's language into the cached template; a filter that takes the
    context is never folded. Call once every blueprint has registered its filters.
    """
    for name, function in list(app.jinja_env.filters.items()):
        if getattr(function, "__module__", "").startswith("app.") and not hasattr(
            function, "jinja_pass_arg"
        ):
            app.jinja_env.filters[name] = _at_render_time(function)


def _at_render_time(function: Callable[..., Any]) -> Callable[..., Any]:
    @pass_context
    @wraps(function)
    def render(_context: Any, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return render


def init_templating(app: Flask) -> None:
    """Register the filters and globals used by every template."""
    app.jinja_env.filters.update(
        fdate=fmt_date,
        fday=fmt_day,
        fdaywd=fmt_day_weekday,
        fweekday=fmt_weekday,
        fmonth=fmt_month,
        fdt=fmt_datetime,
        kind=labels.kind_label,
        kind_letter=kind_signs.kind_letter,
        event_status=labels.event_status_label,
        patient_status=labels.patient_status_label,
        phase=labels.phase_label,
        flag=labels.flag_label,
        action=labels.action_label,
        role=labels.role_label,
        localised=labels.localised,
        level=labels.level_label,
        symptom=labels.symptom_label,
        intent=labels.intent_label,
        actor=labels.actor_label,
        encoding=labels.encoding_label,
        language_name=labels.language_name,
        event_key=labels.event_key_label,
        reason=reasons.reason_label,
        reasons=reasons.reason_labels,
        ctcae=terms.ctcae_label,
        drugs=terms.drugs_text,
        tz_name=labels.timezone_name,
        pro_ctcae=terms.pro_ctcae_label,
    )
    app.jinja_env.globals.update(
        can=can,
        audit_field_changes=audit_view.field_changes,
        audit_date_changes=audit_view.date_changes,
        audit_reason=audit_view.reason_text,
        nav_links=nav_links,
        fmt_window=fmt_window,
        days_between=days_between,
        timedelta_days=lambda n: timedelta(days=n),
        flag_is_warning=labels.flag_is_warning,
        is_zh=labels.is_zh,
        clinic_today=clinic_today,
        clinic_tz=clinic_tz,
        patient_url=patient_url,
        event_url=event_url,
        language_choices=LANGUAGE_CHOICES,
    )
