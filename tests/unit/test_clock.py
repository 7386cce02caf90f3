"""app.clock: the one clock the app reads, fixed by tests, moved for child processes by an env
variable that production refuses; and no module of app/ or jobs/ reads the system clock itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from app import clock as app_clock
from app.models import utcnow
from tests.conftest import FIXED_NOW

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YEAR_EVE = datetime(2027, 2, 5, 23, 30, tzinfo=SHANGHAI)
SYSTEM_CLOCK_READS = re.compile(
    r"datetime\.now\(|datetime\.utcnow\(|date\.today\(|datetime\.today\(|time\.time\(|"
    r"func\.now\(|CURRENT_TIMESTAMP|CURRENT_DATE"
)
# The only reads of the real clock outside app/clock.py, each for a library that keeps real time:
# APScheduler's triggers, and Flask-Limiter's windows (its memory and Redis storages count in
# time.time(), so the database storage does too).
REAL_TIME_ALLOWED = {"jobs/schedule.py": 1, "app/web/auth.py": 1, "app/rate_limit_storage.py": 3}


def test_every_test_runs_at_the_fixed_instant(clock: app_clock.FrozenClock) -> None:
    assert utcnow() == FIXED_NOW.astimezone(UTC)
    assert clock() == FIXED_NOW
    assert FIXED_NOW.date() == date(2026, 3, 4)


def test_the_clock_fixture_moves_what_the_app_reads(clock: app_clock.FrozenClock) -> None:
    clock.advance(minutes=90)
    assert utcnow() == FIXED_NOW + timedelta(minutes=90)
    clock.set(NEW_YEAR_EVE)
    assert app_clock.today_in(SHANGHAI) == date(2027, 2, 5)
    assert app_clock.today_in(UTC) == date(2027, 2, 5)
    clock.advance(timedelta(minutes=31))
    assert app_clock.today_in(SHANGHAI) == date(2027, 2, 6)  # midnight at the clinic
    assert app_clock.now_in(SHANGHAI).hour == 0
    assert app_clock.timestamp() == int(clock().timestamp())


def test_a_frozen_clock_refuses_naive_instants_and_going_back() -> None:
    with pytest.raises(app_clock.ClockError, match="aware"):
        app_clock.FrozenClock(datetime(2026, 3, 4, 9, 0))
    frozen = app_clock.FrozenClock(FIXED_NOW)
    with pytest.raises(app_clock.ClockError, match="forward"):
        frozen.advance(minutes=-1)
    assert frozen() == FIXED_NOW


def test_a_ticking_clock_runs_at_the_speed_of_its_source() -> None:
    real = app_clock.FrozenClock(datetime(2031, 7, 1, 12, 0, tzinfo=UTC))
    ticking = app_clock.TickingClock(NEW_YEAR_EVE, real=real)
    assert ticking() == NEW_YEAR_EVE
    real.advance(seconds=42)
    assert ticking() == NEW_YEAR_EVE + timedelta(seconds=42)


def test_using_clock_restores_the_previous_source() -> None:
    before = app_clock.current_source()
    other = app_clock.FrozenClock(NEW_YEAR_EVE)
    with app_clock.using_clock(other):
        assert utcnow() == NEW_YEAR_EVE
    assert app_clock.current_source() is before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-02-05T23:30:00+08:00", datetime(2027, 2, 5, 15, 30, tzinfo=UTC)),
        ("2027-02-05T15:30:00Z", datetime(2027, 2, 5, 15, 30, tzinfo=UTC)),
    ],
)
def test_the_environment_instant_is_iso_with_an_offset(text: str, expected: datetime) -> None:
    assert app_clock.parse_instant(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("2027-02-05T23:30:00", "UTC offset"), ("next tuesday", "not an ISO 8601")],
)
def test_a_bad_environment_instant_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(app_clock.ClockError, match=message):
        app_clock.install_from_environment({app_clock.CLOCK_ENV_VAR: text})


def test_the_environment_clock_ticks_from_its_instant() -> None:
    with app_clock.using_clock(app_clock.current_source()):
        environ = {app_clock.CLOCK_ENV_VAR: "2027-02-05T23:30:00+08:00", "CADENCE_ENV": "test"}
        assert app_clock.install_from_environment(environ) is True
        assert isinstance(app_clock.current_source(), app_clock.TickingClock)
        assert abs(utcnow() - NEW_YEAR_EVE) < timedelta(seconds=5)


def test_without_the_variable_the_installed_clock_is_kept(clock: app_clock.FrozenClock) -> None:
    assert app_clock.install_from_environment({"CADENCE_ENV": "test"}) is False
    assert app_clock.current_source() is clock


def test_production_refuses_a_moved_clock(clock: app_clock.FrozenClock) -> None:
    environ = {app_clock.CLOCK_ENV_VAR: "2027-02-05T23:30:00+08:00", "CADENCE_ENV": "production"}
    with pytest.raises(app_clock.ClockError, match="refused in production"):
        app_clock.install_from_environment(environ)
    assert app_clock.current_source() is clock


def _child(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from app import clock, create_app; create_app(); print(clock.utcnow().isoformat())"
    env = {**os.environ, "SECRET_KEY": "clock-test-key", **environ}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_child_process_ticks_from_the_instant_it_is_given() -> None:
    result = _child({app_clock.CLOCK_ENV_VAR: NEW_YEAR_EVE.isoformat(), "CADENCE_ENV": "test"})
    assert result.returncode == 0, result.stderr
    seen = datetime.fromisoformat(result.stdout.strip())
    assert timedelta(0) <= seen - NEW_YEAR_EVE < timedelta(seconds=30)


def test_a_production_process_will_not_start_with_a_moved_clock() -> None:
    result = _child(
        {app_clock.CLOCK_ENV_VAR: NEW_YEAR_EVE.isoformat(), "CADENCE_ENV": "production"}
    )
    assert result.returncode != 0
    assert "CADENCE_CLOCK_AT" in result.stderr and "refused in production" in result.stderr


def test_app_and_jobs_read_time_only_through_app_clock() -> None:
    found: dict[str, int] = {}
    for folder in ("app", "jobs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            hits = len(SYSTEM_CLOCK_READS.findall(path.read_text(encoding="utf-8")))
            if hits and name != "app/clock.py":
                found[name] = hits
    assert found == REAL_TIME_ALLOWED
