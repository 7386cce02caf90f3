"""Readiness: can this deployment serve nurses and patients right now? One result per check."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.configuration import ConfigurationError, missing_catalogs
from app.extensions import db
from app.services.shared.heartbeat import latest_heartbeat
from app.services.shared.protocols import current_protocol

logger = logging.getLogger("cadence.readiness")


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, whether it passed, a short reason, and if it counts."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def readiness_checks(now: datetime) -> list[Check]:
    """Database, protocol, compiled catalogs and the jobs heartbeat, in that order."""
    database = database_check()
    return [database, protocol_check(), catalogs_check(), jobs_check(now, database.ok)]


def is_ready(checks: list[Check]) -> bool:
    """True when every required check passed."""
    return all(check.ok or not check.required for check in checks)


def database_check() -> Check:
    """The database answers a trivial query."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        logger.error("readiness: database unreachable: %s", exc.__class__.__name__)
        return Check("database", False, f"unreachable ({exc.__class__.__name__})")
    return Check("database", True, "reachable")


def protocol_check() -> Check:
    """The protocol file loads and validates."""
    try:
        protocol = current_protocol()
    except ConfigurationError as exc:
        return Check("protocol", False, "; ".join(exc.problems))
    return Check("protocol", True, f"loaded ({protocol.code})")


def catalogs_check() -> Check:
    """Every shipped language has its compiled catalog."""
    missing = missing_catalogs(current_app.config)
    if missing:
        return Check("catalogs", False, "missing " + ", ".join(str(path) for path in missing))
    return Check("catalogs", True, "compiled")


def jobs_check(now: datetime, database_ok: bool) -> Check:
    """A jobs process beat within JOBS_HEARTBEAT_MAX_AGE_SECONDS (required per configuration)."""
    required = bool(current_app.config.get("JOBS_HEARTBEAT_REQUIRED"))
    if not database_ok:
        return Check("jobs", False, "unknown: the database is unreachable", required)
    max_age = int(current_app.config.get("JOBS_HEARTBEAT_MAX_AGE_SECONDS", 180))
    try:
        last = latest_heartbeat()
    except SQLAlchemyError as exc:
        db.session.rollback()
        logger.error("readiness: cannot read jobs_heartbeat: %s", exc.__class__.__name__)
        return Check("jobs", False, "cannot read jobs_heartbeat: run `flask --app app db upgrade`")
    if last is None:
        return Check("jobs", False, "no jobs process has recorded a heartbeat", required)
    age = int((now - last).total_seconds())
    if age > max_age:
        return Check("jobs", False, f"last heartbeat {age} s ago (limit {max_age} s)", required)
    return Check("jobs", True, f"last heartbeat {max(age, 0)} s ago", required)
