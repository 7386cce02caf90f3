"""Error pages in the user's language (400 CSRF, 403, 404, 413, 429, 500, configuration)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.configuration import ConfigurationError
from app.extensions import db
from app.web.auth import render_rate_limited_sign_in

logger = logging.getLogger("cadence.web.errors")


def init_error_pages(app: Flask) -> None:
    """Register handlers that render templates/errors/error.html."""
    app.register_error_handler(CSRFError, _csrf_error)
    for code in (400, 403, 404, 405, 413, 429):
        app.register_error_handler(code, _http_error)
    app.register_error_handler(ConfigurationError, _configuration_error)
    app.register_error_handler(500, _server_error)


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.path.startswith("/api/")


def _page(code: int, title: str, message: str) -> Any:
    if _wants_json():
        return {"error": title, "message": message}, code
    return render_template("errors/error.html", code=code, title=title, message=message), code


def _csrf_error(error: CSRFError) -> Any:
    return _page(
        400,
        _("The form has expired"),
        _("For your security the form was not accepted. Go back, reload the page and try again."),
    )


def _http_error(error: HTTPException) -> Any:
    code = error.code or 500
    if code == 429 and request.endpoint == "auth.sign_in":
        return render_rate_limited_sign_in()
    titles = {
        400: (_("Bad request"), _("The request could not be understood.")),
        403: (
            _("Not allowed"),
            _("Your role does not allow this action. Ask an administrator if you need it."),
        ),
        404: (_("Not found"), _("This page or record does not exist.")),
        405: (_("Not allowed"), _("This action is not available here.")),
        413: (
            _("Request too large"),
            _("The request was larger than this service accepts. Nothing was saved."),
        ),
        429: (_("Too many requests"), _("Please wait a moment and try again.")),
    }
    title, message = titles.get(code, (_("Error"), error.description or ""))
    return _page(code, title, message)


def _server_error(error: Exception) -> Any:
    db.session.rollback()
    return _page(
        500,
        _("Something went wrong"),
        _("The error was logged. Nothing was saved from this request; please try again."),
    )


def _configuration_error(error: ConfigurationError) -> Any:
    db.session.rollback()
    logger.error("configuration error on %s: %s", request.path, "; ".join(error.problems))
    return _page(
        503,
        _("Configuration error"),
        _(
            "Cadence is not configured correctly, so this page cannot be shown. Nothing was "
            "saved. Please tell the administrator (the server log and /healthz name the problem)."
        ),
    )
