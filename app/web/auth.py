"""Sign in and out, the language switch, and the user's own account page."""

from __future__ import annotations

import math
import time
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from app.extensions import limiter
from app.services.shared import sessions as session_service
from app.services.shared import users as user_service
from app.web.forms import ChangePasswordForm, ConfirmForm, LanguageForm, SignInForm
from app.web.helpers import safe_next_url
from app.web.labels import user_error_message
from app.web.security import current_session_id, end_session, start_session

bp = Blueprint("auth", __name__)

DEFAULT_LOGIN_RATE_LIMIT = "10 per minute;60 per hour"
DEFAULT_LOGIN_USER_RATE_LIMIT = "5 per 15 minutes"


def _ip_limit() -> str:
    return current_app.config.get("LOGIN_RATE_LIMIT", DEFAULT_LOGIN_RATE_LIMIT)


def _user_limit() -> str:
    return current_app.config.get("LOGIN_USER_RATE_LIMIT", DEFAULT_LOGIN_USER_RATE_LIMIT)


def _username_and_address_key() -> str:
    """Failed sign-ins count per (username, address): a wrong password typed from one address
    never locks the real user out from another."""
    name = user_service.normalise_username(request.form.get("username", ""))[:64]
    return f"user:{name}@{get_remote_address()}"


def _failed_sign_in(response: Response) -> bool:
    return response.status_code == 401


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(_ip_limit, methods=["POST"], deduct_when=_failed_sign_in)
@limiter.limit(
    _user_limit, key_func=_username_and_address_key, methods=["POST"], deduct_when=_failed_sign_in
)
def sign_in() -> Any:
    """The sign-in form; failed attempts are rate limited by address and by (username, address)."""
    if current_user.is_authenticated:
        return redirect(url_for("main.today"))
    form = SignInForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        return render_template("auth/sign_in.html", form=form)
    if not form.validate_on_submit():
        return render_template("auth/sign_in.html", form=form), 400
    user = user_service.authenticate(form.username.data, form.password.data)
    if user is None:
        form.password.data = ""
        error = _("The username or password is not right.")
        return render_template("auth/sign_in.html", form=form, error=error), 401
    locale = session.get("locale")
    session.clear()
    if locale:
        session["locale"] = locale
    login_user(user)
    start_session(user)
    if user.must_change_password:
        flash(_("Please choose your own password before you continue."), "info")
        return redirect(url_for("auth.change_password"))
    return redirect(safe_next_url(form.next.data, url_for("main.today")))


def render_rate_limited_sign_in() -> Any:
    """The sign-in page after too many failed attempts (HTTP 429)."""
    form = SignInForm()
    form.username.data = request.form.get("username", "")
    wait = _minutes_until_reset()
    error = ngettext(
        "Too many failed sign-ins. Wait %(num)d minute and try again.",
        "Too many failed sign-ins. Wait %(num)d minutes and try again.",
        wait,
    )
    return render_template("auth/sign_in.html", form=form, error=error), 429


def _minutes_until_reset() -> int:
    limit = limiter.current_limit
    if limit is None:
        return 1
    # flask-limiter counts windows in real time (time.time), not by app.clock.
    return max(1, math.ceil((limit.reset_at - time.time()) / 60))


@bp.post("/sign-out")
@login_required
def sign_out() -> Any:
    """End the session."""
    user = current_user._get_current_object()
    end_session("sign_out")
    user_service.record_sign_out(user)
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.sign_in"))


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere() -> Any:
    """End every other session of the signed-in user (other browsers, copied cookies)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    ended = session_service.sign_out_everywhere(user, actor=user.actor, keep=current_session_id())
    flash(
        ngettext(
            "%(num)d other session was signed out.",
            "%(num)d other sessions were signed out.",
            ended,
        ),
        "success",
    )
    return redirect(url_for("auth.account"))


@bp.post("/language")
def set_language() -> Any:
    """Switch the interface language (remembered on the account when signed in)."""
    form = LanguageForm()
    fallback = url_for("main.today") if current_user.is_authenticated else url_for("auth.sign_in")
    if not form.validate_on_submit():
        flash(_("Choose a language from the list."), "error")
        return redirect(fallback)
    session["locale"] = form.locale.data
    if current_user.is_authenticated:
        user_service.set_locale(current_user, form.locale.data)
    return redirect(safe_next_url(form.next.data, fallback))


@bp.get("/account")
@login_required
def account() -> Any:
    """The signed-in user's account: name, role, language, password."""
    return render_template(
        "auth/account.html",
        language_form=LanguageForm(locale=current_user.locale),
        confirm_form=ConfirmForm(),
        open_sessions=session_service.count_open_sessions(current_user),
    )


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> Any:
    """Change one's own password (required after an admin reset)."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            user_service.change_own_password(
                current_user, form.current_password.data, form.new_password.data
            )
        except user_service.UserError as exc:
            field = getattr(form, exc.field or "new_password", form.new_password)
            field.errors.append(user_error_message(exc))
        else:
            # The change ended every session: open a new one for this browser.
            login_user(current_user._get_current_object())
            start_session(current_user)
            generate_csrf()
            flash(_("Your password was changed."), "success")
            return redirect(url_for("main.today"))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/change_password.html", form=form), status
