"""Issue 9 section 4: rate limits per (username, address), revocable server-side sessions,
"sign out everywhere", guessable passwords refused with a reason."""

from __future__ import annotations

import ast
import inspect
from datetime import timedelta

import pytest
import zxcvbn.feedback
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, RateLimitCounter, UserSession, utcnow
from app.services.shared import sessions as session_service
from app.services.shared import users as user_service
from app.web.labels import PASSWORD_ADVICE
from tests.support import PASSWORD, csrf_token, fresh_client, sign_in
from tests.web.conftest import Staff, post

ADDRESS_A = "198.51.100.7"
ADDRESS_B = "203.0.113.9"
WEAK_PASSWORDS = ("password12", "1234567890", "qwertyuiop", "Password1!")


def _attempt(client: FlaskClient, username: str, password: str, address: str) -> int:
    token = csrf_token(client)
    response = client.post(
        "/sign-in",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )
    return response.status_code


def _new_client(app: Flask) -> FlaskClient:
    return fresh_client(app)


# --- rate limits -------------------------------------------------------------------------------


def test_wrong_passwords_from_one_address_do_not_lock_the_user_out_from_another(
    client: FlaskClient, app_ctx: Flask, staff: Staff
) -> None:
    statuses = [_attempt(client, staff.nurse, "wrong-guess", ADDRESS_A) for _ in range(5)]
    assert statuses == [401] * 5
    assert _attempt(client, staff.nurse, PASSWORD, ADDRESS_A) == 429
    elsewhere = _new_client(app_ctx)
    assert _attempt(elsewhere, staff.nurse, PASSWORD, ADDRESS_B) == 302
    assert elsewhere.get("/").status_code == 200


def test_one_address_is_limited_across_usernames(
    client: FlaskClient, app_ctx: Flask, staff: Staff
) -> None:
    names = [f"guess{i}" for i in range(10)]
    assert [_attempt(client, name, "wrong-guess", ADDRESS_A) for name in names] == [401] * 10
    assert _attempt(client, staff.admin, PASSWORD, ADDRESS_A) == 429
    assert _attempt(_new_client(app_ctx), staff.admin, PASSWORD, ADDRESS_B) == 302


def test_failed_sign_ins_are_counted_in_the_database(client: FlaskClient, staff: Staff) -> None:
    _attempt(client, staff.nurse, "wrong-guess", ADDRESS_A)
    keys = db.session.scalars(select(RateLimitCounter.key)).all()
    assert any(f"user:{staff.nurse}@{ADDRESS_A}" in key for key in keys)
    assert any(key.endswith(ADDRESS_A) or ADDRESS_A in key for key in keys)


# --- sessions ----------------------------------------------------------------------------------


def _copy_cookie(source: FlaskClient, app: Flask) -> FlaskClient:
    copy = _new_client(app)
    cookie = source.get_cookie("session")
    assert cookie is not None
    copy.set_cookie("session", cookie.value)
    return copy


def test_a_copied_cookie_is_refused_after_sign_out(nurse: FlaskClient, app_ctx: Flask) -> None:
    stolen = _copy_cookie(nurse, app_ctx)
    assert stolen.get("/").status_code == 200  # the copy works while the session is open
    post(nurse, "/sign-out")
    assert stolen.get("/").status_code == 302
    ended = db.session.scalars(select(UserSession)).one()
    assert ended.end_reason == "sign_out" and ended.ended_at is not None


def test_user_signs_out_other_sessions_and_keeps_this_one(
    nurse: FlaskClient, app_ctx: Flask, staff: Staff
) -> None:
    other = sign_in(_new_client(app_ctx), staff.nurse)
    assert "2" in nurse.get("/account").get_data(as_text=True)
    response = post(nurse, "/account/sign-out-everywhere")
    assert response.status_code == 302
    assert other.get("/").status_code == 302
    assert nurse.get("/").status_code == 200
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.sign_out_everywhere")
    ).one()
    assert entry.actor == "user:nurse.wang" and entry.entity_id == staff.nurse
    assert entry.after == {"sessions_ended": 1, "kept_current": True}


def test_admin_signs_a_user_out_everywhere(
    nurse: FlaskClient, app_ctx: Flask, staff: Staff
) -> None:
    laptop = sign_in(_new_client(app_ctx), staff.nurse)
    admin = sign_in(_new_client(app_ctx), staff.admin)
    response = post(admin, f"/admin/users/{staff.nurse}/sign-out-everywhere")
    assert response.status_code == 302
    assert nurse.get("/").status_code == 302
    assert laptop.get("/").status_code == 302
    assert admin.get("/").status_code == 200
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.sign_out_everywhere")
    ).one()
    assert entry.actor == "user:admin.zhou"
    assert entry.after["sessions_ended"] == 2


def test_only_admins_sign_others_out_and_csrf_is_required(
    nurse: FlaskClient, app_ctx: Flask, staff: Staff
) -> None:
    investigator = sign_in(_new_client(app_ctx), staff.investigator)
    assert post(investigator, f"/admin/users/{staff.nurse}/sign-out-everywhere").status_code == 403
    assert nurse.post("/account/sign-out-everywhere").status_code == 400
    assert nurse.get("/").status_code == 200


def test_an_idle_session_is_ended_on_the_server(nurse: FlaskClient, app: Flask) -> None:
    row = db.session.scalars(select(UserSession)).one()
    row.last_seen_at = utcnow() - timedelta(minutes=app.config["IDLE_TIMEOUT_MINUTES"] + 2)
    db.session.commit()
    assert nurse.get("/").status_code == 302
    db.session.expire_all()
    assert db.session.scalars(select(UserSession.end_reason)).one() == "idle"


def test_a_password_change_ends_the_other_sessions(
    nurse: FlaskClient, app_ctx: Flask, staff: Staff
) -> None:
    other = sign_in(_new_client(app_ctx), staff.nurse)
    new = "lantern-otter-meadow"
    form = {"current_password": PASSWORD, "new_password": new, "confirm_password": new}
    assert post(nurse, "/account/password", form).status_code == 302
    assert other.get("/").status_code == 302
    assert nurse.get("/").status_code == 200


def test_sessions_of_a_deactivated_user_are_ended(nurse: FlaskClient, staff: Staff) -> None:
    user_service.update_user(staff.nurse, actor="test", active=False)
    user = user_service.get_user(staff.nurse)
    assert session_service.count_open_sessions(user) == 0


def test_a_session_id_of_another_user_is_refused(app_ctx: Flask, staff: Staff) -> None:
    nurse = user_service.get_user(staff.nurse)
    admin = user_service.get_user(staff.admin)
    token = session_service.open_session(nurse)
    assert session_service.is_open(nurse, token)
    assert not session_service.is_open(admin, token)
    assert not session_service.is_open(nurse, "forged")
    assert not session_service.is_open(nurse, None)


# --- passwords ---------------------------------------------------------------------------------


@pytest.mark.parametrize("weak", WEAK_PASSWORDS)
def test_guessable_passwords_are_refused_with_a_reason(app_ctx: Flask, weak: str) -> None:
    with pytest.raises(user_service.UserError) as caught:
        user_service.check_password_rules(weak, "nurse.chen")
    assert caught.value.code == "password_guessable"
    assert caught.value.advice  # zxcvbn says why


@pytest.mark.parametrize("weak", WEAK_PASSWORDS)
def test_weak_new_password_is_refused_on_the_page_in_chinese(nurse: FlaskClient, weak: str) -> None:
    form = {"current_password": PASSWORD, "new_password": weak, "confirm_password": weak}
    response = post(nurse, "/account/password", form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "此密码太容易被猜到" in page
    assert "再加一两个词，不常见的词更好。" in page  # zxcvbn's advice, translated
    assert user_service.authenticate("nurse.wang", PASSWORD) is not None


def test_weak_new_password_reason_in_english(english_nurse: FlaskClient) -> None:
    form = {
        "current_password": PASSWORD,
        "new_password": "qwertyuiop",
        "confirm_password": "qwertyuiop",
    }
    page = post(english_nurse, "/account/password", form).get_data(as_text=True)
    assert "This password is too easy to guess." in page
    assert "This is a top-100 common password." in page


def test_a_strong_password_is_accepted(app_ctx: Flask) -> None:
    user_service.check_password_rules("violet-harbour-cinnamon-72", "nurse.chen")
    user_service.check_password_rules(user_service.generate_password(), "nurse.chen")


def test_the_cli_refuses_a_guessable_password(app: Flask, app_ctx: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["users", "create", "--username", "dr.ma", "--role", "nurse", "--password-stdin"],
        input="Password1!\n",
    )
    assert result.exit_code != 0
    assert "too easy to guess" in result.output


def test_every_zxcvbn_advice_has_a_translation() -> None:
    tree = ast.parse(inspect.getsource(zxcvbn.feedback))
    texts = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_"
    }
    assert texts and texts <= set(PASSWORD_ADVICE)
