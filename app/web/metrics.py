"""Metrics page (response rates, alerts by level, response times, bar charts) and the CSV export
of symptom reports for the trial's data management."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, render_template, request
from flask_babel import gettext as _
from markupsafe import Markup

from app.domain import charts
from app.domain.metrics import DurationStats
from app.models import utcnow
from app.services.conversations import inbox as inbox_service
from app.services.conversations.checkins import metrics as checkin_metrics
from app.web import labels
from app.web.helpers import clinic_tz, page_number, parse_iso_date
from app.web.inbox import CATEGORY_LABELS
from app.web.security import current_actor, require_login, requires

bp = Blueprint("metrics", __name__, url_prefix="/metrics")
bp.before_request(require_login)

PERIODS = {"30": 30, "90": 90, "365": 365, "all": None}
# Bar colour of each inbox category on the chart (the text names the category, not the colour).
CATEGORY_TONES = {"red": "red", "amber": "amber", "call_task": "amber", "note": "green"}


def register_metrics(app: Flask) -> None:
    """Register the blueprint."""
    app.register_blueprint(bp)


def _hours(stats: DurationStats, which: str) -> float | None:
    value = getattr(stats, which)
    return None if value is None else round(value.total_seconds() / 3600, 1)


@bp.get("/")
@requires("patients.view")
def index() -> Any:
    """Response rates, inbox items by category, median and 90th percentile response times, charts."""
    period = request.args.get("days", "90")
    period = period if period in PERIODS else "90"
    data = checkin_metrics.overview(utcnow(), days=PERIODS[period], page=page_number())
    level_names = {lv: labels.level_label(lv) for lv in ("red", "amber", "green")}
    to_acknowledge, to_resolve = _("time to acknowledge"), _("time to resolve")
    raised = inbox_service.raised_counts(data.since)
    categories_chart = charts.bar_chart_svg(
        [(labels._lookup(CATEGORY_LABELS, c), raised[c], CATEGORY_TONES.get(c, "neutral"))
         for c in inbox_service.CATEGORIES],
        title=_("Inbox items by category"), chart_id="inbox-by-category",
    )  # fmt: skip
    rates_chart = charts.bar_chart_svg(
        [(r.patient_id, None if r.rate is None else round(r.rate * 100, 1))
         for r in data.per_patient],
        title=_("Check-in response rate per patient"), unit="%", max_value=100,
        missing=_("nothing due"), chart_id="response-rates",
    )  # fmt: skip
    times_chart = charts.bar_chart_svg(
        [
            (f"{level_names.get(lv, lv)} · {to_acknowledge}",
             _hours(data.alerts.acknowledge_by_level[lv], "median"),
             lv if lv in level_names else "neutral")
            for lv in data.alerts.by_level
        ] + [
            (f"{level_names.get(lv, lv)} · {to_resolve}",
             _hours(data.alerts.resolve_by_level[lv], "median"),
             lv if lv in level_names else "neutral")
            for lv in data.alerts.by_level
        ],
        title=_("Median hours to acknowledge and to resolve"), unit=" " + _("h"), decimals=1,
        missing=_("none yet"), chart_id="response-times",
    )  # fmt: skip
    return render_template(
        "inbox/metrics.html",
        data=data,
        period=period,
        periods=list(PERIODS),
        raised=raised,
        open_counts=inbox_service.counts(),
        categories=inbox_service.CATEGORIES,
        categories_svg=Markup(categories_chart),  # app.domain.charts escapes every text
        rates_svg=Markup(rates_chart),
        times_svg=Markup(times_chart),
    )


@bp.get("/symptom-reports.csv")
@requires("patients.write")
def symptom_reports() -> Any:
    """One row per answer to a symptom question (audited download)."""
    since = parse_iso_date(request.args.get("from"))
    until = parse_iso_date(request.args.get("to"))
    body = checkin_metrics.export_symptom_reports(
        actor=current_actor(), since=since, until=until, tz=clinic_tz()
    )
    response = Response("\ufeff" + body, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = 'attachment; filename="symptom-reports.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
