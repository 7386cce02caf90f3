"""Sign-in plumbing: session user loading, idle expiry, role checks, security headers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, flash, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, logout_user

from app import clock
from app.extensions import login_manager
from app.models import User
from app.services.shared import sessions as session_service
from app.services.shared import users as user_service

F = TypeVar("F", bound=Callable[..., Any])

LAST_SEEN_KEY = "_seen"
# The server-side session id (app/services/shared/sessions.py); sign-out ends it on the server.
SESSION_ID_KEY = "_sid"
# Endpoints a user who must change their password may still reach.
PASSWORD_CHANGE_ENDPOINTS = {"auth.change_password", "auth.sign_out", "auth.set_language", "static"}

HSTS_DEFAULT_SECONDS = 31536000

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)


def init_security(app: Flask) -> None:
    """Configure Flask-Login, the idle timeout, cookie flags and response headers."""
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = _l("Please sign in to continue.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    login_manager.user_loader(_load_user)
    minutes = int(app.config.get("IDLE_TIMEOUT_MINUTES", 30))
    app.permanent_session_lifetime = timedelta(minutes=minutes)
    app.config["REMEMBER_COOKIE_SECURE"] = app.config.get("SESSION_COOKIE_SECURE", False)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.before_request(_expire_idle_session)
    app.before_request(_follow_user_locale)
    app.before_request(_require_password_change)
    app.after_request(_security_headers)


def _load_user(user_key: str) -> User | None:
    user = user_service.load_session_user(user_key)
    if user is None or not session_service.is_open(user, session.get(SESSION_ID_KEY)):
        return None
    return user


def require_login() -> Any:
    """Blueprint before_request hook: every page of the blueprint needs a signed-in user."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def requires(permission: str) -> Callable[[F], F]:
    """View decorator: 403 unless the signed-in user's role grants `permission`."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not user_service.has_permission(current_user.role, permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def can(permission: str) -> bool:
    """Template helper: may the signed-in user do this?"""
    return bool(
        current_user.is_authenticated and user_service.has_permission(current_user.role, permission)
    )


def current_actor() -> str:
    """The audit actor of the signed-in user."""
    return current_user.actor


def start_session(user: User) -> None:
    """After a successful sign-in: a new server-side session, language and idle clock."""
    session[SESSION_ID_KEY] = session_service.open_session(user)
    session.permanent = True
    session["locale"] = user.locale
    session[LAST_SEEN_KEY] = clock.timestamp()


def end_session(reason: str) -> None:
    """Sign out this browser: end the server-side session, then clear the cookie (keep the
    language)."""
    session_service.end_session(session.get(SESSION_ID_KEY), reason)
    logout_user()
    locale = session.get("locale")
    session.clear()
    if locale:
        session["locale"] = locale


def current_session_id() -> str | None:
    """The server-side session id of this browser."""
    return session.get(SESSION_ID_KEY)


def _expire_idle_session() -> Any:
    if request.endpoint == "static" or not current_user.is_authenticated:
        return None
    now = clock.timestamp()
    minutes = int(current_app.config.get("IDLE_TIMEOUT_MINUTES", 30))
    last_seen = session.get(LAST_SEEN_KEY)
    if isinstance(last_seen, int) and now - last_seen > minutes * 60:
        user = current_user._get_current_object()
        end_session("idle")
        user_service.record_sign_out(user)
        flash(
            ngettext(
                "You were signed out after %(num)d minute without activity.",
                "You were signed out after %(num)d minutes without activity.",
                minutes,
            ),
            "info",
        )
        target = request.full_path if request.method == "GET" else None
        return redirect(url_for("auth.sign_in", next=target))
    session.permanent = True
    session[LAST_SEEN_KEY] = now
    return None


def _follow_user_locale() -> None:
    if current_user.is_authenticated and session.get("locale") != current_user.locale:
        session["locale"] = current_user.locale


def _require_password_change() -> Any:
    if (
        current_user.is_authenticated
        and current_user.must_change_password
        and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS
        and request.blueprint not in (None, "")
    ):
        return redirect(url_for("auth.change_password"))
    return None


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if response.mimetype == "text/html" and request.endpoint != "static":
        headers.setdefault("Cache-Control", "no-store")
    hsts_seconds = current_app.config.get("HSTS_SECONDS")
    if hsts_seconds is None:
        hsts_seconds = (
            HSTS_DEFAULT_SECONDS if current_app.config.get("SESSION_COOKIE_SECURE") else 0
        )
    if int(hsts_seconds) > 0:
        headers.setdefault("Strict-Transport-Security", f"max-age={hsts_seconds}")
    return response
