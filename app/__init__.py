"""Cadence: follow-up and reminders for trial NCT07016737. create_app() wires the pieces."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import clock
from app.configuration import check_production
from app.logging_setup import configure_logging
from app.request_limits import BoundedChunkedBody
from config import CONFIGS, INSTANCE_DIR, TEMPLATES_DIR, Config, engine_options


def create_app(config: type[Config] | str | None = None, **overrides: Any) -> Flask:
    """Build the Flask application: configuration, extensions, blueprints and commands."""
    clock.install_from_environment(os.environ)  # CADENCE_CLOCK_AT (tests' child processes)
    app = Flask(
        __name__,
        template_folder=str(TEMPLATES_DIR),
        static_folder=str(Path(__file__).parent / "static"),
        instance_path=str(INSTANCE_DIR),
    )
    app.config.from_object(_config_class(config))
    app.config.update(overrides)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
        app.config["SQLALCHEMY_DATABASE_URI"],
        app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
        app.config.get("DB_SESSION_SETTINGS", ()),
    )
    configure_logging(app.config.get("LOG_LEVEL"))
    if app.config.get("CADENCE_ENV") == "production":
        check_production(app.config, os.environ, sys.argv)
    os.makedirs(app.instance_path, exist_ok=True)
    _ensure_secret_key(app)
    app.wsgi_app = BoundedChunkedBody(app.wsgi_app, lambda: app.config.get("MAX_CONTENT_LENGTH"))  # type: ignore[method-assign]
    if app.config.get("PROXY_FIX_HOPS"):
        hops = int(app.config["PROXY_FIX_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    _init_extensions(app)
    _register_blueprints(app)
    _register_commands(app)
    return app


def _config_class(config: type[Config] | str | None) -> type[Config]:
    if config is None:
        config = os.environ.get("CADENCE_ENV", "development")
    if isinstance(config, str):
        try:
            return CONFIGS[config]
        except KeyError as exc:
            known = ", ".join(sorted(CONFIGS))
            raise ValueError(f"Unknown CADENCE_ENV {config!r}; expected one of: {known}") from exc
    return config


def _ensure_secret_key(app: Flask) -> None:
    """Use SECRET_KEY from the environment; in development keep a generated one in instance/."""
    if app.config.get("SECRET_KEY"):
        return
    if os.environ.get("CADENCE_ENV") == "production":
        raise RuntimeError("SECRET_KEY must be set in production")
    key_file = Path(app.instance_path) / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    app.config["SECRET_KEY"] = key_file.read_text().strip()


def _init_extensions(app: Flask) -> None:
    from app.extensions import babel, csrf, db, limiter, login_manager, migrate
    from app.i18n import select_locale, select_timezone
    from app.rate_limit_storage import SCHEME as DATABASE_RATE_LIMIT_SCHEME

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(Path(__file__).resolve().parent.parent / "migrations"),
        render_as_batch=True,
        compare_type=True,
        render_item=render_migration_item,
    )
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    login_manager.init_app(app)
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", f"{DATABASE_RATE_LIMIT_SCHEME}://")
    limiter.init_app(app)
    import app.models


def render_migration_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Render our UTC column type as a plain timezone-aware DateTime in migrations."""
    from app.models.types import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _register_blueprints(app: Flask) -> None:
    from app.web import register_blueprints
    from app.web.health import register_health

    register_blueprints(app)
    register_health(app)


def _register_commands(app: Flask) -> None:
    from app.cli import register_commands

    register_commands(app)
