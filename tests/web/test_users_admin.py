"""Account management by admins, and the `flask users` commands."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, User
from app.services.shared import users as user_service
from tests.support import PASSWORD, sign_in
from tests.web.conftest import Staff, post


def _user_count() -> int:
    return db.session.scalar(select(func.count(User.id))) or 0


def _one_time_password(html: str) -> str:
    match = re.search(r'id="one-time-password">([^<]+)<', html)
    assert match, "no one-time password on the page"
    return match.group(1).strip()


def test_admin_sees_every_account(admin: FlaskClient) -> None:
    page = admin.get("/admin/users/").get_data(as_text=True)
    for name in ("nurse.wang", "dr.li", "admin.zhou"):
        assert name in page


def test_nurse_cannot_create_accounts(nurse: FlaskClient) -> None:
    before = _user_count()
    response = post(
        nurse,
        "/admin/users/new",
        {"username": "intruder", "display_name": "X", "role": "admin", "locale": "en"},
    )
    assert response.status_code == 403
    assert _user_count() == before


def test_admin_creates_an_account_with_a_one_time_password(
    admin: FlaskClient, client: FlaskClient
) -> None:
    response = post(
        admin,
        "/admin/users/new",
        {"username": "Nurse.Chen", "display_name": "陈护士", "role": "nurse", "locale": "zh"},
    )
    assert response.status_code == 200
    password = _one_time_password(response.get_data(as_text=True))
    user = user_service.get_user("nurse.chen")
    assert user.role == "nurse"
    assert user.must_change_password
    assert user.password_hash.startswith("$argon2id$")
    assert password not in user.password_hash
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "user.create")).all()
    assert [e.actor for e in entry if e.entity_id == "nurse.chen"] == ["user:admin.zhou"]
    post(admin, "/sign-out")
    sign_in(client, "nurse.chen", password)
    assert client.get("/").headers["Location"] == "/account/password"


def test_invalid_account_form_shows_errors_and_writes_nothing(admin: FlaskClient) -> None:
    before = _user_count()
    audit_before = db.session.scalar(select(func.count(AuditEntry.id)))
    response = post(
        admin,
        "/admin/users/new",
        {"username": "bad name!", "display_name": "", "role": "nurse", "locale": "en"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter the person" in page and "display_name-err" in page
    response = post(
        admin,
        "/admin/users/new",
        {"username": "bad name!", "display_name": "Someone", "role": "nurse", "locale": "en"},
    )
    assert response.status_code == 400
    assert "lower-case letters" in response.get_data(as_text=True)
    assert _user_count() == before
    assert db.session.scalar(select(func.count(AuditEntry.id))) == audit_before


def test_duplicate_username_is_refused(admin: FlaskClient) -> None:
    response = post(
        admin,
        "/admin/users/new",
        {"username": "nurse.wang", "display_name": "Twin", "role": "nurse", "locale": "en"},
    )
    assert response.status_code == 400
    assert "already taken" in response.get_data(as_text=True)
    assert user_service.get_user("nurse.wang").display_name == "王护士"


def test_admin_changes_role_and_language(admin: FlaskClient, staff: Staff) -> None:
    response = post(
        admin,
        f"/admin/users/{staff.nurse}",
        {"display_name": "王护士长", "role": "investigator", "locale": "en", "active": "y"},
    )
    assert response.status_code == 302
    user = user_service.get_user(staff.nurse)
    assert (user.display_name, user.role, user.locale, user.active) == (
        "王护士长",
        "investigator",
        "en",
        True,
    )
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "user.update")).one()
    assert entry.before["role"] == "nurse" and entry.after["role"] == "investigator"


def test_last_admin_cannot_demote_itself(admin: FlaskClient, staff: Staff) -> None:
    response = post(
        admin,
        f"/admin/users/{staff.admin}",
        {"display_name": "Admin Zhou", "role": "nurse", "locale": "en", "active": "y"},
    )
    assert response.status_code == 400
    assert "last active administrator" in response.get_data(as_text=True)
    assert user_service.get_user(staff.admin).role == "admin"


def test_admin_resets_a_password(admin: FlaskClient, staff: Staff) -> None:
    response = post(admin, f"/admin/users/{staff.nurse}/reset-password")
    assert response.status_code == 200
    password = _one_time_password(response.get_data(as_text=True))
    assert user_service.authenticate(staff.nurse, PASSWORD) is None
    assert user_service.authenticate(staff.nurse, password) is not None
    assert user_service.get_user(staff.nurse).must_change_password


def test_password_reset_needs_csrf_and_admin(
    admin: FlaskClient, staff: Staff, client: FlaskClient
) -> None:
    assert admin.post(f"/admin/users/{staff.nurse}/reset-password").status_code == 400
    post(admin, "/sign-out")
    sign_in(client, staff.investigator)
    assert post(client, f"/admin/users/{staff.nurse}/reset-password").status_code == 403
    assert user_service.authenticate(staff.nurse, PASSWORD) is not None


def test_unknown_account_is_404(admin: FlaskClient) -> None:
    assert admin.get("/admin/users/nobody").status_code == 404


def test_cli_creates_and_resets_accounts(app: Flask, app_ctx: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "--username", "dr.wu", "--role", "investigator",
                                 "--name", "Dr Wu", "--locale", "en"])  # fmt: skip
    assert result.exit_code == 0, result.output
    password = re.search(r"password: (\S+)", result.output).group(1)
    assert user_service.authenticate("dr.wu", password) is not None
    result = runner.invoke(args=["users", "reset-password", "dr.wu"])
    assert result.exit_code == 0, result.output
    new_password = re.search(r"password: (\S+)", result.output).group(1)
    db.session.expire_all()
    assert user_service.authenticate("dr.wu", password) is None
    assert user_service.authenticate("dr.wu", new_password) is not None
    result = runner.invoke(args=["users", "reset-password", "nobody"])
    assert result.exit_code != 0
    result = runner.invoke(args=["users", "list"])
    assert "dr.wu" in result.output and "investigator" in result.output


def test_cli_password_from_stdin_is_checked(app: Flask, app_ctx: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "--username", "dr.ma", "--role", "nurse", "--password-stdin"],
        input="short\n",
    )
    assert result.exit_code != 0
    assert "at least" in result.output
    assert _user_count() == 0


def test_demo_staff_are_created_once_with_random_passwords(app_ctx: Flask) -> None:
    from app.services.demo import ensure_demo_staff

    first = ensure_demo_staff()
    assert {r.role for r in first} == {"nurse", "admin"}
    assert all(r.password and len(r.password) >= 16 for r in first)
    assert len({r.password for r in first}) == 2
    for result in first:
        assert user_service.authenticate(result.username, result.password) is not None
    again = ensure_demo_staff()
    assert all(r.password is None for r in again)
    db.session.expire_all()
    for result in first:
        assert user_service.authenticate(result.username, result.password) is not None


def test_demo_command_prints_the_accounts(app: Flask, app_ctx: Flask) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    match = re.search(r"demo nurse: demo-nurse / (\S+)", first.output)
    assert match and user_service.authenticate("demo-nurse", match.group(1)) is not None
    second = runner.invoke(args=["demo"])
    assert "unchanged, reset with flask users reset-password" in second.output
    assert match.group(1) not in second.output
