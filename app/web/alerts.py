"""Alerts for the team: open alerts by urgency and age, acknowledge, resolve with a note; rota.

Every signed-in role may look (patients.view); nurses and investigators handle alerts
(patients.write); administrators edit the on-call rota (users.manage).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from babel.dates import get_day_names
from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.domain.oncall import ROTA_ROLES, RotaError, parse_days
from app.models import utcnow
from app.services.alerts import alerts as alert_service
from app.services.alerts import cover, oncall
from app.services.conversations.checkins.sessions import call_task_resolved
from app.web import labels
from app.web.helpers import clinic_today
from app.web.security import current_actor, require_login, requires

bp = Blueprint("alerts", __name__, url_prefix="/alerts")
bp.before_request(require_login)

LEVEL_LABELS = labels.LEVEL_LABELS
KIND_LABELS = labels.ALERT_KIND_LABELS
STATUS_LABELS = labels.ALERT_STATUS_LABELS
ROTA_ROLE_LABELS = {
    "clinician": _l("On-call clinician"),
    "investigator": _l("Investigator"),
    "nurse": _l("Nurse"),
}
ERROR_MESSAGES = {
    "not_found": _l("This alert does not exist."),
    "resolved": _l("This alert is already resolved."),
    "note_required": _l("Write what was done before resolving the alert."),
    "note_too_long": _l("The note is too long."),
}


def register_alerts(app: Flask) -> None:
    """Register the blueprint and the label filters the templates use. The triage inbox
    (app/web/inbox.py) is the nurses' entry point; this list stays reachable from it."""
    app.register_blueprint(bp)
    app.jinja_env.filters.update(
        alert_level=lambda code: _label(LEVEL_LABELS, code),
        alert_kind=lambda code: _label(KIND_LABELS, code),
        alert_status=lambda code: _label(STATUS_LABELS, code),
        rota_role=lambda code: _label(ROTA_ROLE_LABELS, code),
        rota_days=rota_days,
        duration=_duration,
    )
    labels.FLAG_LABELS.setdefault("reschedule_requested", _l("Patient asked to change the date"))
    labels.ACTION_LABELS.update(
        {
            "alert.create": _l("Alert raised"),
            "alert.acknowledge": _l("Alert acknowledged"),
            "alert.resolve": _l("Alert resolved"),
            "alert.escalate": _l("Alert escalated"),
            "alert.page": _l("Page sent to staff"),
            "alert.page_failed": _l("Nobody to page"),
            "patient.sms_opted_out": _l("Opted out of SMS"),
            "patient.sms_opted_in": _l("Opted back in to SMS"),
            "event.reschedule_request": _l("Asked to change the date"),
            "oncall.add": _l("On-call rota entry added"),
            "oncall.remove": _l("On-call rota entry removed"),
        }
    )


def _label(table: dict[str, Any], code: str | None) -> str:
    """The translated label of a code, or the code made readable."""
    label = table.get(code or "")
    return str(label) if label is not None else labels.humanise(code or "")


def _duration(seconds: int | float | None) -> str:
    """A short duration: '45 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    return labels.duration_label(seconds)


@bp.get("/")
@requires("patients.view")
def index() -> Any:
    """The alerts list is the triage inbox now (one inbox, issue 13 §2): go there."""
    show = "resolved" if request.args.get("show") == "resolved" else None
    return redirect(url_for("inbox.index", show=show))


def _back() -> Any:
    return redirect(url_for("alerts.index", show=request.args.get("show", "open")))


def _error(exc: alert_service.AlertError) -> None:
    message = ERROR_MESSAGES.get(exc.code)
    flash(str(message) if message is not None else str(exc), "error")


@bp.post("/<int:alert_id>/acknowledge")
@requires("patients.write")
def acknowledge(alert_id: int) -> Any:
    """I have seen this alert and I am dealing with it (stops the escalation)."""
    try:
        alert = alert_service.acknowledge(alert_id, actor=current_actor(), now=utcnow())
    except alert_service.AlertError as exc:
        if exc.code == "not_found":
            abort(404)
        _error(exc)
        return _back()
    flash(_("Alert #%(id)d acknowledged.", id=alert.id), "success")
    return _back()


@bp.post("/<int:alert_id>/resolve")
@requires("patients.write")
def resolve(alert_id: int) -> Any:
    """Close an alert with a note saying what was done."""
    try:
        alert = alert_service.resolve(
            alert_id,
            actor=current_actor(),
            note=request.form.get("note", ""),
            now=utcnow(),
            on_call_task=call_task_resolved,
        )
    except alert_service.AlertError as exc:
        if exc.code == "not_found":
            abort(404)
        _error(exc)
        return _back()
    flash(_("Alert #%(id)d resolved.", id=alert.id), "success")
    return _back()


# -- the on-call rota ----------------------------------------------------------------------------


def day_names() -> list[str]:
    """Monday..Sunday in the user's language ('周一' / 'Mon')."""
    names = get_day_names("abbreviated", locale=get_locale() or "en")
    return [names[d] for d in range(7)]


def rota_days(stored: str) -> str:
    """Stored days ('sat,sun,hol') in the user's language ('周六、周日、法定节假日')."""
    try:
        weekdays, holidays = parse_days(stored)
    except RotaError:
        return stored
    names = day_names()
    parts = [names[d] for d in sorted(weekdays)]
    if holidays:
        parts.append(_("public holidays"))
    lang = get_locale()
    return ("、" if lang is not None and lang.language == "zh" else ", ").join(parts)


def _week_start(text: str | None) -> date:
    """The Monday of the week asked for (?week=YYYY-MM-DD), else of this week."""
    try:
        day = date.fromisoformat(text) if text else clinic_today()
    except ValueError:
        day = clinic_today()
    return day - timedelta(days=day.weekday())


@bp.get("/rota")
@requires("patients.view")
def rota() -> Any:
    """The on-call rota, who is on duty now and a week grid of amber and red cover with gaps."""
    now = utcnow()
    on_duty = {role: oncall.recipients(role, now) for role in ROTA_ROLES}
    first = _week_start(request.args.get("week"))
    return render_template(
        "alerts/rota.html", shifts=oncall.shifts(active_only=False), on_duty=on_duty,
        roles=ROTA_ROLES, grid=cover.week_grid(first), week=first, day_names=day_names(),
        previous_week=first - timedelta(days=7), next_week=first + timedelta(days=7),
    )  # fmt: skip


@bp.post("/rota")
@requires("users.manage")
def rota_add() -> Any:
    """Add a rota entry (administrators)."""
    form = request.form
    try:
        oncall.add_shift(
            role=form.get("role", ""),
            name=form.get("name", ""),
            phone=form.get("phone", ""),
            weekdays=form.getlist("days") if "days" in form or "weekdays" not in form
            else form.get("weekdays", ""),
            hours=form.get("hours", ""),
            priority=int(form.get("priority") or 0) if (form.get("priority") or "0").isdigit()
            else 0,
            locale=form.get("locale", "zh"),
            actor=current_actor(),
        )  # fmt: skip
    except RotaError as exc:
        flash(_("The rota entry was not added: %(error)s", error=str(exc)), "error")
        return redirect(url_for("alerts.rota"))
    flash(_("Rota entry added."), "success")
    return redirect(url_for("alerts.rota"))


@bp.post("/rota/<int:shift_id>/delete")
@requires("users.manage")
def rota_delete(shift_id: int) -> Any:
    """Remove a rota entry (administrators)."""
    try:
        oncall.remove_shift(shift_id, actor=current_actor())
    except RotaError:
        abort(404)
    flash(_("Rota entry removed."), "success")
    return redirect(url_for("alerts.rota"))
