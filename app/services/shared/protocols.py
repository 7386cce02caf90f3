"""Access to the configured protocol file and the clinic's working-day calendar."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from flask import current_app

from app.configuration import ConfigurationError
from app.domain.protocol import Protocol, ProtocolError, load_protocol
from app.domain.working_days import WorkingDays, working_days_for


def current_protocol() -> Protocol:
    """The protocol named by PROTOCOL_PATH, re-read when the file changes.

    A missing or invalid file is a ConfigurationError (not bad input): pages show a
    configuration error and /healthz reports it.
    """
    path = Path(current_app.config["PROTOCOL_PATH"])
    try:
        return _load_cached(str(path), path.stat().st_mtime_ns)
    except (OSError, ProtocolError) as exc:
        raise ConfigurationError([f"PROTOCOL_PATH={path}: {exc}"]) from exc


def clinic_working_days() -> WorkingDays:
    """Working days at the clinic (weekends, public holidays and make-up days)."""
    return _working_days(current_app.config.get("CLINIC_COUNTRY", "CN"))


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> Protocol:
    return load_protocol(path)


@lru_cache(maxsize=4)
def _working_days(country: str) -> WorkingDays:
    return working_days_for(country)
