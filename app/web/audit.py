"""The audit log: every recorded change, filterable, read-only."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from app.services.shared.audit_queries import AuditFilters, audit_page, known_actions, known_actors
from app.web.helpers import clinic_tz, page_number, parse_iso_date
from app.web.security import require_login, requires

bp = Blueprint("audit", __name__, url_prefix="/audit")
bp.before_request(require_login)


@bp.get("/")
@requires("audit.view")
def index() -> Any:
    """Audit entries, newest first, filtered by patient, user, action and date."""
    filters = AuditFilters(
        patient=request.args.get("patient", "").strip()[:32],
        actor=request.args.get("actor", "").strip()[:80],
        action=request.args.get("action", "").strip()[:64],
        date_from=parse_iso_date(request.args.get("from")),
        date_to=parse_iso_date(request.args.get("to")),
    )
    page = audit_page(filters, tz=clinic_tz(), page=page_number())
    return render_template(
        "audit/index.html",
        page=page,
        filters=filters,
        actors=known_actors(),
        actions=known_actions(),
    )
