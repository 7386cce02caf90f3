"""The triage inbox: open items by urgency then age; acknowledge, assign, resolve with an action.

Every signed-in role may look (patients.view); nurses and investigators handle items
(patients.write). Items are issue 5's alerts (app/services/conversations/inbox.py explains the categories).
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models import utcnow
from app.models.alerts import RESOLUTION_ACTIONS
from app.services.alerts.alerts import AlertError
from app.services.alerts.oncall import pages_for_alerts
from app.services.conversations import inbox as service
from app.services.schedule.contacts import active_contacts_by_patient
from app.web import labels
from app.web.helpers import page_number
from app.web.nav import add_nav_item
from app.web.security import current_actor, require_login, requires

bp = Blueprint("inbox", __name__, url_prefix="/inbox")
bp.before_request(require_login)

CATEGORY_LABELS = {
    "red": labels.LEVEL_LABELS["red"],
    "amber": labels.LEVEL_LABELS["amber"],
    "call_task": _l("Unanswered check-in: call the patient"),
    "unknown": _l("Message to read"),
    "reschedule": _l("Reschedule request"),
    "opt_out": _l("Opted out of SMS"),
    "note": labels.LEVEL_LABELS["green"],
}
ACTION_LABELS = labels.RESOLUTION_ACTION_LABELS
ERRORS = {
    "not_found": _l("This item does not exist."),
    "resolved": _l("This item is already resolved."),
    "note_required": _l("Write a note before resolving."),
    "note_too_long": _l("The note is too long."),
    "action_required": _l("Choose what was done."),
    "bad_assignee": _l("This person cannot be assigned items."),
}


def register_inbox(app: Flask) -> None:
    """Register the blueprint, its navigation link (badge: unacknowledged items) and filters."""
    app.register_blueprint(bp)
    add_nav_item(app, "inbox.index", _l("Triage"), order=12, permission="patients.view",
                 badge=_badge)  # fmt: skip
    app.jinja_env.filters.update(
        inbox_category=lambda code: labels._lookup(CATEGORY_LABELS, code),
        resolution_action=lambda code: labels._lookup(ACTION_LABELS, code),
    )
    labels.ACTION_LABELS.update(
        {
            "alert.assign": _l("Inbox item assigned"),
            "export.symptom_reports": _l("Symptom reports exported"),
            "message.nurse_reply": _l("Nurse sent an SMS"),
        }
    )


def _badge() -> int | None:
    try:
        return service.counts()["open"] or None
    except Exception:  # the navigation must render even if the count cannot be read
        return None


FILTER_KEYS = ("show", "category", "assignee", "q")
# Items a nurse answers by phone: every active contact's number is shown with them.
CALL_CATEGORIES = ("red", "call_task")
REMEMBERED = "inbox_filters"


def _remembered_filters() -> Any | None:
    """Remember the nurse's filters in the sign-in session; restore them on a bare /inbox/."""
    given = {k: request.args[k] for k in FILTER_KEYS if request.args.get(k)}
    if request.args.get("reset"):
        session.pop(REMEMBERED, None)
        return redirect(url_for("inbox.index"))
    if given:
        session[REMEMBERED] = given
        return None
    saved = session.get(REMEMBERED)
    if saved and not request.args:
        return redirect(url_for("inbox.index", **saved))
    return None


@bp.get("/")
@requires("patients.view")
def index() -> Any:
    """Open items (or recently resolved ones), most urgent category first, then oldest."""
    restore = _remembered_filters()
    if restore is not None:
        return restore
    show = request.args.get("show", "open")
    category = request.args.get("category") or None
    assignee = request.args.get("assignee") or None
    query = (request.args.get("q") or "").strip()[:80]
    if show == "resolved":
        page = service.resolved_items_page(query=query, page=page_number())
    else:
        page = service.open_items_page(
            category=category, assignee=assignee, query=query, page=page_number()
        )
    items = page.items
    return render_template(
        "inbox/index.html",
        items=items,
        page=page,
        show=show,
        category=category if category in service.CATEGORIES else None,
        assignee=assignee,
        query=query,
        counts=service.counts(),
        categories=service.CATEGORIES,
        actions=RESOLUTION_ACTIONS,
        staff=service.assignable_users(),
        now=utcnow(),
        pages=pages_for_alerts(it.alert.id for it in items if it.alert.level == "red"),
        numbers=active_contacts_by_patient(
            it.alert.patient_id
            for it in items
            if it.category in CALL_CATEGORIES and it.alert.patient_id is not None
        ),
    )


def _back() -> Any:
    args = {k: v for k, v in request.args.items() if k in (*FILTER_KEYS, "page") and v}
    return redirect(url_for("inbox.index", **args))


def _fail(exc: AlertError) -> Any:
    if exc.code == "not_found":
        abort(404)
    message = ERRORS.get(exc.code)
    flash(str(message) if message is not None else str(exc), "error")
    return _back()


@bp.post("/<int:alert_id>/acknowledge")
@requires("patients.write")
def acknowledge(alert_id: int) -> Any:
    """I have seen this item and I am dealing with it (stops the escalation)."""
    try:
        service.acknowledge(alert_id, actor=current_actor(), now=utcnow())
    except AlertError as exc:
        return _fail(exc)
    flash(_("Item #%(id)d acknowledged.", id=alert_id), "success")
    return _back()


@bp.post("/<int:alert_id>/assign")
@requires("patients.write")
def assign(alert_id: int) -> Any:
    """Give the item to a nurse (or take it back)."""
    try:
        alert = service.assign(
            alert_id, request.form.get("assignee", ""), actor=current_actor(), now=utcnow()
        )
    except AlertError as exc:
        return _fail(exc)
    if alert.assigned_to:
        flash(_("Item #%(id)d assigned to %(who)s.", id=alert_id, who=alert.assigned_to), "success")
    else:
        flash(_("Item #%(id)d is no longer assigned.", id=alert_id), "success")
    return _back()


@bp.post("/<int:alert_id>/resolve")
@requires("patients.write")
def resolve(alert_id: int) -> Any:
    """Close the item with what was done and a note."""
    try:
        service.resolve(
            alert_id,
            action=request.form.get("action", ""),
            note=request.form.get("note", ""),
            actor=current_actor(),
            now=utcnow(),
        )
    except AlertError as exc:
        return _fail(exc)
    flash(_("Item #%(id)d resolved.", id=alert_id), "success")
    return _back()
