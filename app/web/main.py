"""The Today page: what the team has to do today and tomorrow."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from app.services import dashboard
from app.web.helpers import clinic_today
from app.web.security import require_login

bp = Blueprint("main", __name__)
bp.before_request(require_login)


@bp.get("/")
def today() -> Any:
    """Today's and tomorrow's visits, inbox items by category, overdue and flagged events."""
    day = clinic_today()
    return render_template(
        "main/today.html",
        overview=dashboard.overview(day),
        day=day,
        inbox_categories=dashboard.INBOX_CATEGORIES,
    )
