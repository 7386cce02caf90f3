"""Calendar across all patients: month (load per day, clashes), week, and one day."""

from __future__ import annotations

import calendar as pycal
from datetime import date, timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from app.domain.calendar import KINDS, PHASES
from app.domain.dates import DateInputError
from app.services.messaging.reminders import reminder_policy
from app.services.schedule import queries as sq
from app.services.shared.date_inputs import any_date_range, parse_date_input
from app.web import clinic_list as cl
from app.web.helpers import clinic_today, flash_out_of_range, page_number, parse_iso_date
from app.web.labels import ATTENDANCE_KINDS, is_zh
from app.web.security import require_login

bp = Blueprint("calendar", __name__, url_prefix="/calendar")
bp.before_request(require_login)

WEEK_PER_DAY = 40


def _filters() -> sq.Filters:
    kinds = tuple(k for k in request.args.getlist("kind") if k in KINDS)
    phases = tuple(p for p in request.args.getlist("phase") if p in PHASES)
    include_done = request.args.get("open") != "1"
    return sq.Filters(
        kinds=kinds, phases=phases, include_done=include_done, patient_id=_patient_id()
    )


def _patient_text() -> str:
    """The study id typed in the patient filter, trimmed and in capitals."""
    return request.args.get("patient", "").strip().upper()[:40]


def _patient_id() -> int | None:
    """The database id of the filtered patient; an unknown study id is said and ignored."""
    text = _patient_text()
    if not text:
        return None
    patient_id = sq.patient_id_of(text)
    if patient_id is None:
        flash(_("No patient has the study id %(id)s: every patient is shown.", id=text), "warning")
    return patient_id


def _filter_args(filters: sq.Filters) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if filters.patient_id is not None:
        args["patient"] = _patient_text()
    if filters.kinds:
        args["kind"] = list(filters.kinds)
    if filters.phases:
        args["phase"] = list(filters.phases)
    if not filters.include_done:
        args["open"] = "1"
    return args


def _month_of(value: str | None, today: date) -> date:
    if value:
        try:
            year, month = (int(x) for x in value.split("-")[:2])
            first = date(year, month, 1)
        except ValueError:
            return today.replace(day=1)
        allowed = any_date_range(today)
        if first in allowed:
            return first
        flash_out_of_range(value, allowed)
    return today.replace(day=1)


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@bp.get("/")
def index() -> Any:
    """The month view."""
    return redirect(url_for("calendar.month", **request.args.to_dict(flat=False)))


@bp.get("/month")
def month() -> Any:
    """A month grid: events per day by kind, patients, clashes and clinic closures."""
    today = clinic_today()
    first = _month_of(request.args.get("month"), today)
    last = first.replace(day=pycal.monthrange(first.year, first.month)[1])
    grid_start = first - timedelta(days=first.weekday())
    grid_end = last + timedelta(days=6 - last.weekday())
    filters = _filters()
    loads = sq.load_by_day(grid_start, grid_end, filters)
    weeks = []
    day = grid_start
    while day <= grid_end:
        weeks.append([loads[day + timedelta(days=i)] for i in range(7)])
        day += timedelta(days=7)
    in_month = [loads[d] for d in loads if d.month == first.month]
    busiest = max((load.total for load in in_month), default=0)
    return render_template(
        "calendar/month.html",
        first=first,
        weeks=weeks,
        today=today,
        busiest=busiest,
        month_total=sum(load.total for load in in_month),
        month_clash_days=sum(1 for load in in_month if load.has_clash),
        prev_month=_add_months(first, -1),
        next_month=_add_months(first, 1),
        filters=filters,
        filter_args=_filter_args(filters),
        kinds=KINDS,
        phases=PHASES,
        view="month",
        patient_filter=_patient_text() if filters.patient_id is not None else "",
        day_ref=first,
    )


@bp.get("/week")
def week() -> Any:
    """Seven days from Monday, each with its events (the busiest days are cut, see the day view)."""
    today = clinic_today()
    start = parse_iso_date(request.args.get("start")) or today
    start = start - timedelta(days=start.weekday())
    filters = _filters()
    days = sq.week_events(start, filters, per_day=WEEK_PER_DAY)
    rows = [row for events, _ in days.values() for row in events]
    loads = sq.load_by_day(start, start + timedelta(days=6), filters)
    return render_template(
        "calendar/week.html",
        start=start,
        end=start + timedelta(days=6),
        days=days,
        loads=loads,
        clashing=sq.clashing_event_ids(rows),
        today=today,
        prev_week=start - timedelta(days=7),
        next_week=start + timedelta(days=7),
        filters=filters,
        filter_args=_filter_args(filters),
        kinds=KINDS,
        phases=PHASES,
        per_day=WEEK_PER_DAY,
        view="week",
        patient_filter=_patient_text() if filters.patient_id is not None else "",
        day_ref=start,
    )


@bp.get("/day/<day>")
def day(day: str) -> Any:
    """Every event of one day, paginated."""
    try:
        when = parse_date_input(day)
    except DateInputError as exc:
        if exc.kind != "range" or exc.date_range is None:
            abort(404)
        flash_out_of_range(day, exc.date_range)
        return redirect(url_for("calendar.week"))
    filters = _filters()
    page = sq.day_page(when, filters, page_number())
    load = sq.load_by_day(when, when, filters)[when]
    return render_template(
        "calendar/day.html",
        day=when,
        page=page,
        load=load,
        clashing=sq.clashing_event_ids(page.items),
        today=clinic_today(),
        filters=filters,
        filter_args=_filter_args(filters),
        kinds=KINDS,
        phases=PHASES,
        view="day",
        patient_filter=_patient_text() if filters.patient_id is not None else "",
        day_ref=when,
    )


@bp.get("/clinic-list")
def clinic_list() -> Any:
    """The day's clinic list to print: who comes (tomorrow by default), visits, preparation."""
    try:
        when = parse_date_input(request.args["day"]) if request.args.get("day") else None
    except DateInputError:
        abort(404)
    when = when or clinic_today() + timedelta(days=1)
    rows = sq.clinic_day(when, (*ATTENDANCE_KINDS, "premedication"))
    words = cl.ClinicWords(reminder_policy(), zh=is_zh())
    return render_template(
        "calendar/clinic_list.html",
        day=when,
        visits=cl.clinic_visits(rows, words),
        today=clinic_today(),
    )
