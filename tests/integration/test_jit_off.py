"""The app's PostgreSQL connections run with JIT off (DB_JIT_OFF, the default)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from app import create_app
from app.extensions import db


@pytest.mark.postgres
def test_the_apps_connections_have_jit_off(app_ctx: Flask) -> None:
    assert db.session.execute(text("SHOW jit")).scalar() == "off"
    source = db.session.execute(text("SELECT source FROM pg_settings WHERE name = 'jit'"))
    assert source.scalar() == "client"  # set at connect, not by the server's configuration
    # the URL's own options (this run's schema) still apply
    assert db.session.execute(text("SHOW search_path")).scalar().startswith("test_")


@pytest.mark.postgres
def test_db_jit_off_false_leaves_the_servers_setting(database_url: str) -> None:
    other = create_app("test", SQLALCHEMY_DATABASE_URI=database_url, DB_JIT_OFF=False)
    with other.app_context():
        try:
            source = db.session.execute(text("SELECT source FROM pg_settings WHERE name = 'jit'"))
            assert source.scalar() != "client"  # nothing sent at connect: the server decides
        finally:
            db.session.remove()
            db.engine.dispose()
