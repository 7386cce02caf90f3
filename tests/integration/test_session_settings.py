"""The app's PostgreSQL connections start with DB_SESSION_SETTINGS (JIT and parallel workers
off by default); with none the server's own settings apply."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from app import create_app
from app.extensions import db

SOURCES = text(
    "SELECT name, setting, source FROM pg_settings"
    " WHERE name IN ('jit', 'max_parallel_workers_per_gather')"
)


@pytest.mark.postgres
def test_the_apps_connections_have_jit_and_parallel_workers_off(app_ctx: Flask) -> None:
    rows = {name: (setting, source) for name, setting, source in db.session.execute(SOURCES)}
    # set at connect ("client"), not by the server's configuration
    assert rows == {"jit": ("off", "client"), "max_parallel_workers_per_gather": ("0", "client")}
    # the URL's own options (this run's schema) still apply
    assert db.session.execute(text("SHOW search_path")).scalar().startswith("test_")


@pytest.mark.postgres
def test_none_leaves_the_servers_settings(database_url: str) -> None:
    other = create_app("test", SQLALCHEMY_DATABASE_URI=database_url, DB_SESSION_SETTINGS=())
    with other.app_context():
        try:
            sources = {source for _name, _setting, source in db.session.execute(SOURCES)}
            assert "client" not in sources  # nothing sent at connect: the server decides
        finally:
            db.session.remove()
            db.engine.dispose()
