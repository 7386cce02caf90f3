"""Account management for admins: list, create, edit (role, language, active), reset password."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from app.models import User
from app.services.shared import sessions as session_service
from app.services.shared import users as user_service
from app.web.forms import ConfirmForm, UserCreateForm, UserEditForm
from app.web.labels import user_error_message
from app.web.security import current_actor, current_session_id, require_login, requires

bp = Blueprint("users", __name__, url_prefix="/admin/users")
bp.before_request(require_login)


def _user_or_404(username: str) -> User:
    try:
        return user_service.get_user(username)
    except user_service.UserNotFound:
        abort(404)


@bp.get("/")
@requires("users.manage")
def index() -> Any:
    """Every account."""
    return render_template(
        "users/index.html", users=user_service.list_users(), confirm_form=ConfirmForm()
    )


@bp.route("/new", methods=["GET", "POST"])
@requires("users.manage")
def new() -> Any:
    """Create an account with a one-time password the person must change at first sign-in."""
    form = UserCreateForm()
    if request.method == "GET":
        form.role.data = "nurse"
    if form.validate_on_submit():
        password = user_service.generate_password()
        try:
            user = user_service.create_user(
                form.username.data,
                display_name=form.display_name.data,
                role=form.role.data,
                password=password,
                actor=current_actor(),
                locale=form.locale.data,
                must_change_password=True,
            )
        except user_service.UserError as exc:
            field = getattr(form, exc.field or "username", form.username)
            field.errors = [*field.errors, user_error_message(exc)]
        else:
            return render_template(
                "users/password.html", user=user, password=password, created=True
            )
    status = 400 if request.method == "POST" else 200
    return render_template("users/new.html", form=form), status


@bp.route("/<username>", methods=["GET", "POST"])
@requires("users.manage")
def edit(username: str) -> Any:
    """Change an account's name, role, language or active flag."""
    user = _user_or_404(username)
    form = UserEditForm(obj=user if request.method == "GET" else None)
    if request.method == "GET":
        form.active.data = bool(user.active)
    if form.validate_on_submit():
        try:
            user_service.update_user(
                user.id,
                actor=current_actor(),
                display_name=form.display_name.data,
                role=form.role.data,
                active=bool(form.active.data),
                locale=form.locale.data,
            )
        except user_service.UserError as exc:
            field = getattr(form, exc.field or "role", form.role)
            field.errors = [*field.errors, user_error_message(exc)]
        else:
            flash(_("Account %(name)s saved.", name=user.username), "success")
            return redirect(url_for("users.index"))
    status = 400 if request.method == "POST" else 200
    return (
        render_template(
            "users/edit.html",
            form=form,
            user=user,
            confirm_form=ConfirmForm(),
            is_self=user.id == current_user.id,
            open_sessions=session_service.count_open_sessions(user),
        ),
        status,
    )


@bp.post("/<username>/reset-password")
@requires("users.manage")
def reset_password(username: str) -> Any:
    """Give an account a new one-time password (shown once) and end its sessions."""
    user = _user_or_404(username)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    change = user_service.reset_password(user.id, actor=current_actor())
    return render_template(
        "users/password.html", user=change.user, password=change.password, created=False
    )


@bp.post("/<username>/sign-out-everywhere")
@requires("users.manage")
def sign_out_everywhere(username: str) -> Any:
    """End every session of an account (a lost laptop, a shared computer); audited."""
    user = _user_or_404(username)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    keep = current_session_id() if user.id == current_user.id else None
    ended = session_service.sign_out_everywhere(user, actor=current_actor(), keep=keep)
    flash(
        ngettext(
            "%(name)s: %(num)d session was signed out.",
            "%(name)s: %(num)d sessions were signed out.",
            ended,
            name=user.username,
        ),
        "success",
    )
    return redirect(url_for("users.edit", username=user.username))
