"""The one clock the application reads: every "now" and "today" of app/ and jobs/ comes from here.

In production the source is the system clock. Tests fix it (``set_clock(FrozenClock(...))``, the
``clock`` fixture of tests/conftest.py); child processes started by tests inherit
``CADENCE_CLOCK_AT=<ISO instant>`` and tick from that instant (``create_app`` installs it). That
variable is refused when ``CADENCE_ENV=production``. APScheduler's triggers keep real time.

Pure Python: no Flask, so the domain-free helpers, models and the fake Twilio server can use it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, tzinfo

CLOCK_ENV_VAR = "CADENCE_CLOCK_AT"

Source = Callable[[], datetime]


class ClockError(ValueError):
    """A clock setting that cannot be used (naive instant, bad ISO text, production)."""


def system_now() -> datetime:
    """The real system time, aware, in UTC (the production source)."""
    return datetime.now(UTC)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ClockError(
            f"a clock needs an aware instant (with a UTC offset), got {at.isoformat()}"
        )
    return at.astimezone(UTC)


class FrozenClock:
    """A clock that stands still at one instant until moved with ``advance()`` or ``set()``."""

    def __init__(self, at: datetime) -> None:
        self._at = _aware(at)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        """The instant the clock shows."""
        with self._lock:
            return self._at

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by ``delta`` or by keyword units (``minutes=5``); return the new instant."""
        step = (delta or timedelta()) + timedelta(**units)
        if step < timedelta():
            raise ClockError("a clock only moves forward; use set() to go back")
        with self._lock:
            self._at += step
            return self._at

    def set(self, at: datetime) -> datetime:
        """Show ``at`` from now on (any direction); return it."""
        moment = _aware(at)
        with self._lock:
            self._at = moment
        return moment


class TickingClock:
    """A clock that starts at ``at`` and then runs at the speed of the system clock."""

    def __init__(self, at: datetime, *, real: Source = system_now) -> None:
        self._real = real
        self._offset = _aware(at) - real()

    def __call__(self) -> datetime:
        """The system time shifted so that it started at the given instant."""
        return self._real() + self._offset


_source: Source = system_now


def utcnow() -> datetime:
    """The current time, aware, in UTC, from the installed source."""
    return _source().astimezone(UTC)


def now_in(zone: tzinfo) -> datetime:
    """The current time in the time zone ``zone``, aware."""
    return utcnow().astimezone(zone)


def today_in(zone: tzinfo) -> date:
    """Today's date in the time zone ``zone`` (e.g. the clinic's)."""
    return now_in(zone).date()


def timestamp() -> int:
    """Whole seconds since the epoch by the installed source (sessions, signed tokens)."""
    return int(utcnow().timestamp())


def current_source() -> Source:
    """The installed source (to restore it later)."""
    return _source


def set_clock(source: Source) -> Source:
    """Install ``source`` as the clock; returns the previous one."""
    global _source
    previous, _source = _source, source
    return previous


def reset_clock() -> None:
    """Go back to the system clock."""
    set_clock(system_now)


@contextmanager
def using_clock(source: Source) -> Iterator[Source]:
    """Use ``source`` inside the block, then restore the previous clock."""
    previous = set_clock(source)
    try:
        yield source
    finally:
        set_clock(previous)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with an offset ('2026-03-04T09:00+08:00', '...Z'); ClockError otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ClockError(f"{CLOCK_ENV_VAR}: not an ISO 8601 date-time: {text!r}") from exc
    if moment.tzinfo is None:
        raise ClockError(f"{CLOCK_ENV_VAR}: give a UTC offset (e.g. +08:00 or Z): {text!r}")
    return moment.astimezone(UTC)


def install_from_environment(environ: Mapping[str, str]) -> bool:
    """Tick from ``CADENCE_CLOCK_AT`` when it is set (never in production); True if installed."""
    raw = environ.get(CLOCK_ENV_VAR, "").strip()
    if not raw:
        return False
    if environ.get("CADENCE_ENV", "").strip().lower() == "production":
        raise ClockError(f"{CLOCK_ENV_VAR} moves the clock for tests; it is refused in production")
    set_clock(TickingClock(parse_instant(raw)))
    return True
