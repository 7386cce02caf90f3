"""Shared fixtures: an app on a fresh database per test run (SQLite by default, PostgreSQL when
TEST_DATABASE_URL points at one), tables emptied after every test, and a fixed clock: every test
runs at FIXED_NOW (app.clock), whatever the day; the ``clock`` fixture moves it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from app import clock as app_clock
from app import create_app
from app.domain.replies import forget_parses
from app.extensions import db, limiter
from config import normalise_database_url
from tests.support import postgres_schema

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The instant every test runs at (a Wednesday morning at the clinic), whatever the real date.
FIXED_NOW = datetime(2026, 3, 4, 9, 0, tzinfo=SHANGHAI)


# scripts/mutation.py names the test files relevant to a mutation group here (space-separated,
# relative to the project root): the others are not collected, so mutmut maps and runs only them.
MUTATION_TESTS_ENV = "CADENCE_MUTATION_TESTS"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under scripts/mutation.py, skip collecting test files outside the group's selection."""
    selected = os.environ.get(MUTATION_TESTS_ENV, "").split()
    if not selected or not collection_path.name.startswith("test_") or collection_path.is_dir():
        return None
    try:
        relative = collection_path.relative_to(config.rootpath).as_posix()
    except ValueError:
        return None
    return True if relative not in selected else None


def pytest_configure(config: pytest.Config) -> None:
    """Session fixtures run at FIXED_NOW too (each test then gets its own frozen clock)."""
    app_clock.set_clock(app_clock.FrozenClock(FIXED_NOW))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres`` run in the PostgreSQL pass only (TEST_DATABASE_URL)."""
    base = _base_database_url()
    if base is not None and base.startswith("postgresql"):
        return
    reason = (
        "needs PostgreSQL (advisory locks, several job processes on one database, its settings): "
        "runs in the PostgreSQL pass, `make test-postgres`"
    )
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _no_remembered_parses() -> None:
    """Every test parses with the code it runs: no parse remembered by an earlier test (under
    mutmut, a mutant's process is forked after the clean run filled the cache)."""
    forget_parses()


@pytest.fixture(autouse=True)
def clock() -> Iterator[app_clock.FrozenClock]:
    """The app's clock, frozen at FIXED_NOW for this test; ``clock.advance(minutes=5)`` moves it."""
    frozen = app_clock.FrozenClock(FIXED_NOW)
    with app_clock.using_clock(frozen):
        yield frozen


def _base_database_url() -> str | None:
    raw = os.environ.get("TEST_DATABASE_URL")
    return normalise_database_url(raw) if raw else None


@contextmanager
def fresh_database(tmp_dir: Path) -> Iterator[str]:
    """A new empty database: a SQLite file in tmp_dir, or a new PostgreSQL schema (dropped after)."""
    base = _base_database_url()
    if base is None or base.startswith("sqlite"):
        yield f"sqlite:///{tmp_dir / f'cadence-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    with postgres_schema(base) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The database of this test run only."""
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    """The application, configured for tests, with the schema created from the models."""
    application = create_app("test", SQLALCHEMY_DATABASE_URI=database_url)
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app_ctx(app: Flask) -> Iterator[Flask]:
    """An app context whose tables are emptied afterwards; rate-limit counters start at zero."""
    with app.app_context():
        limiter.reset()
        yield app
        db.session.rollback()
        db.session.remove()
        empty_all_tables()


@pytest.fixture
def client(app_ctx: Flask) -> FlaskClient:
    """A test client on a clean database."""
    return app_ctx.test_client()


def empty_all_tables() -> None:
    """Remove every row (audit rows included: this is test clean-up, not application code)."""
    tables = list(reversed(db.metadata.sorted_tables))
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture
def today() -> date:
    """A fixed 'today' for service calls."""
    return date(2026, 3, 1)
