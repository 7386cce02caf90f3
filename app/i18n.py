"""Locale and time-zone selection for Flask-Babel; works with or without a request (jobs)."""

from __future__ import annotations

from flask import current_app, g, has_request_context, request, session

SUPPORTED_LOCALES = ("zh", "en")


def select_locale() -> str:
    """The locale for this context: forced in g, the user's choice, the browser's, else the default."""
    forced = g.get("locale") if has_request_context() or _has_app_g() else None
    if forced in SUPPORTED_LOCALES:
        return forced
    default = current_app.config.get("BABEL_DEFAULT_LOCALE", "zh")
    if not has_request_context():
        return default
    chosen = session.get("locale")
    if chosen in SUPPORTED_LOCALES:
        return chosen
    return request.accept_languages.best_match(SUPPORTED_LOCALES) or default


def select_timezone() -> str:
    """The clinic's time zone: staff screens show clinic time."""
    return current_app.config.get("CLINIC_TIMEZONE", "Asia/Shanghai")


def _has_app_g() -> bool:
    try:
        g.get("locale")
    except RuntimeError:
        return False
    return True
