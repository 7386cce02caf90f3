"""Health endpoints: /livez (the process answers) and /healthz (ready to serve: 200 or 503)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify

from app.extensions import csrf
from app.models import utcnow
from app.services.shared.readiness import is_ready, readiness_checks

bp = Blueprint("health", __name__)


def register_health(app: Flask) -> None:
    """Register /livez and /healthz (no sign-in, no CSRF: GET only)."""
    csrf.exempt(bp)
    app.register_blueprint(bp)


@bp.get("/livez")
def livez() -> Any:
    """Liveness: the web process answers; touches nothing else."""
    return jsonify(status="alive")


@bp.get("/healthz")
def healthz() -> Any:
    """Readiness: 200 {"status": "ok"} or 503 {"status": "not ready", "problems": [...]}."""
    checks = readiness_checks(utcnow())
    body: dict[str, Any] = {
        "checks": {c.name: {"ok": c.ok, "required": c.required, "detail": c.detail} for c in checks}
    }
    if is_ready(checks):
        return jsonify(status="ok", **body)
    problems = [f"{c.name}: {c.detail}" for c in checks if c.required and not c.ok]
    return jsonify(status="not ready", problems=problems, **body), 503
