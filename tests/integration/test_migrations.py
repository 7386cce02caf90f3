"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

import flask_migrate
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app import create_app
from app.extensions import db
from app.models.patient import compared_on
from tests.conftest import fresh_database


def test_migrations_match_models(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        app = create_app("test", SQLALCHEMY_DATABASE_URI=url)
        with app.app_context():
            flask_migrate.upgrade()
            with db.engine.connect() as conn:
                opts = {"compare_type": True, "render_as_batch": True,
                        "include_object": compared_on(conn.dialect.name)}  # fmt: skip
                context = MigrationContext.configure(conn, opts=opts)
                diff = compare_metadata(context, db.metadata)
            db.engine.dispose()
    assert diff == [], "models and migrations differ; run scripts/regen_migration.sh"


def test_migrations_downgrade_to_empty(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        app = create_app("test", SQLALCHEMY_DATABASE_URI=url)
        with app.app_context():
            flask_migrate.upgrade()
            flask_migrate.downgrade(revision="base")
            remaining = set(db.inspect(db.engine).get_table_names()) - {"alembic_version"}
            db.engine.dispose()
    assert remaining == set()
