"""Access to the configured protocol file and the clinic's working-day calendar."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from flask import current_app

from app.domain.protocol import Protocol, load_protocol
from app.domain.working_days import WorkingDays, working_days_for


def current_protocol() -> Protocol:
    """The protocol named by PROTOCOL_PATH, re-read when the file changes."""
    path = Path(current_app.config["PROTOCOL_PATH"])
    return _load_cached(str(path), path.stat().st_mtime_ns)


def clinic_working_days() -> WorkingDays:
    """Working days at the clinic (weekends, public holidays and make-up days)."""
    return _working_days(current_app.config.get("CLINIC_COUNTRY", "CN"))


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> Protocol:
    return load_protocol(path)


@lru_cache(maxsize=4)
def _working_days(country: str) -> WorkingDays:
    return working_days_for(country)
