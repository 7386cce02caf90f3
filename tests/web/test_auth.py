"""Sign-in, sessions, CSRF, rate limiting, idle expiry, roles and security headers."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import clock as app_clock
from app import create_app
from app.extensions import db
from app.models import AuditEntry, User
from app.services.shared import users as user_service
from app.web.security import LAST_SEEN_KEY
from tests.support import FAST_HASHING, PASSWORD, csrf_token, sign_in
from tests.web.conftest import Staff, post

WEB_BLUEPRINTS = ("main", "patients", "contacts", "calendar", "audit", "exports", "users")


def _web_rules(app: Flask) -> list[tuple[str, str]]:
    """(url, method) of every route of the web blueprints, with sample arguments."""
    samples = {"study_id": "JSCH-101", "key": "induction.c1.infusion", "day": "2026-03-02",
               "decision": "progression", "username": "nurse.wang", "contact_id": "1",
               "consent_id": "1", "active": "0"}  # fmt: skip
    rules = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.partition(".")[0] not in WEB_BLUEPRINTS:
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<{arg}>", samples[arg]).replace(f"<int:{arg}>", samples[arg])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            rules.append((url, method))
    return rules


def test_sign_in_page_has_a_csrf_protected_form(client: FlaskClient) -> None:
    response = client.get("/sign-in")
    assert response.status_code == 200
    assert 'name="csrf_token"' in response.get_data(as_text=True)


def test_every_web_page_requires_sign_in(app: Flask, client: FlaskClient) -> None:
    rules = _web_rules(app)
    assert len(rules) >= 20
    token = csrf_token(client, "/sign-in")
    for url, method in rules:
        data = {"csrf_token": token} if method == "POST" else None
        response = client.open(url, method=method, data=data)
        assert response.status_code == 302, (url, method, response.status_code)
        assert response.headers["Location"].startswith("/sign-in"), (url, method)


def test_post_without_csrf_token_is_refused(client: FlaskClient, staff: Staff) -> None:
    response = client.post("/sign-in", data={"username": staff.nurse, "password": PASSWORD})
    assert response.status_code == 400
    assert "/sign-in" not in response.headers.get("Location", "")
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_signed_in_post_without_csrf_token_changes_nothing(nurse: FlaskClient) -> None:
    response = nurse.post("/language", data={"locale": "en"})
    assert response.status_code == 400
    assert user_service.get_user("nurse.wang").locale == "zh"


def test_wrong_password_is_refused_and_audited(client: FlaskClient, staff: Staff) -> None:
    token = csrf_token(client)
    response = client.post(
        "/sign-in", data={"username": staff.nurse, "password": "wrong", "csrf_token": token}
    )
    assert response.status_code == 401
    assert "用户名或密码不正确" in response.get_data(as_text=True) or "not right" in (
        response.get_data(as_text=True)
    )
    assert client.get("/").status_code == 302
    failed = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.sign_in_failed")
    ).all()
    assert [e.entity_id for e in failed] == [staff.nurse]


def test_unknown_username_is_not_stored_in_the_audit_log(client: FlaskClient) -> None:
    token = csrf_token(client)
    client.post("/sign-in", data={"username": "Secret-Pa55", "password": "x", "csrf_token": token})
    entry = db.session.scalars(select(AuditEntry)).one()
    assert entry.action == "user.sign_in_failed"
    assert entry.entity_id is None


def test_sign_in_sets_the_users_language_and_audits(client: FlaskClient, staff: Staff) -> None:
    sign_in(client, staff.investigator)
    page = client.get("/").get_data(as_text=True)
    assert "Hospital visits today" in page
    sign_in_rows = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.sign_in")
    ).all()
    assert [e.actor for e in sign_in_rows] == ["user:dr.li"]
    assert user_service.get_user(staff.investigator).last_sign_in_at is not None


def test_chinese_user_gets_chinese_pages(nurse: FlaskClient) -> None:
    page = nurse.get("/").get_data(as_text=True)
    assert "今日到院" in page
    assert 'lang="zh-CN"' in page


def test_usernames_are_case_insensitive(client: FlaskClient, staff: Staff) -> None:
    sign_in(client, "Nurse.Wang")
    assert client.get("/").status_code == 200


def test_next_parameter_only_redirects_inside_the_site(client: FlaskClient, staff: Staff) -> None:
    token = csrf_token(client)
    data = {"username": staff.nurse, "password": PASSWORD, "csrf_token": token}
    response = client.post("/sign-in", data={**data, "next": "https://evil.example/x"})
    assert response.headers["Location"] == "/"
    client.post("/sign-out", data={"csrf_token": csrf_token(client, "/account")})
    token = csrf_token(client)
    response = client.post("/sign-in", data={**data, "csrf_token": token, "next": "/calendar/week"})
    assert response.headers["Location"] == "/calendar/week"


def test_protected_page_redirect_keeps_the_page_to_return_to(client: FlaskClient) -> None:
    response = client.get("/calendar/week?start=2026-03-02")
    location = response.headers["Location"]
    assert location.startswith("/sign-in?next=")
    assert "evil" not in location and "http" not in location


def test_failed_sign_ins_are_rate_limited_per_username(client: FlaskClient, staff: Staff) -> None:
    token = csrf_token(client)
    for _ in range(5):
        response = client.post(
            "/sign-in", data={"username": staff.nurse, "password": "bad", "csrf_token": token}
        )
        assert response.status_code == 401
    blocked = client.post(
        "/sign-in", data={"username": staff.nurse, "password": PASSWORD, "csrf_token": token}
    )
    assert blocked.status_code == 429
    assert "登录失败次数过多" in blocked.get_data(as_text=True) or "Too many" in (
        blocked.get_data(as_text=True)
    )
    assert client.get("/").status_code == 302
    # Another account from the same address is not locked by the first one's failures.
    sign_in(client, staff.admin)


def test_successful_sign_ins_do_not_count_towards_the_limit(
    client: FlaskClient, staff: Staff
) -> None:
    for _ in range(8):
        sign_in(client, staff.nurse)
        post(client, "/sign-out")


def test_idle_session_expires(nurse: FlaskClient, app: Flask) -> None:
    assert nurse.get("/").status_code == 200
    minutes = app.config["IDLE_TIMEOUT_MINUTES"]
    with nurse.session_transaction() as session:
        session[LAST_SEEN_KEY] = app_clock.timestamp() - minutes * 60 - 5
    response = nurse.get("/patients/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in")
    assert nurse.get("/").status_code == 302
    actions = db.session.scalars(select(AuditEntry.action)).all()
    assert "user.sign_out" in actions


def test_active_session_is_kept_alive(
    nurse: FlaskClient, app: Flask, clock: app_clock.FrozenClock
) -> None:
    minutes = app.config["IDLE_TIMEOUT_MINUTES"]
    with nurse.session_transaction() as session:
        session[LAST_SEEN_KEY] = app_clock.timestamp() - minutes * 60 + 30
    clock.advance(seconds=20)
    assert nurse.get("/").status_code == 200
    with nurse.session_transaction() as session:
        assert session[LAST_SEEN_KEY] == app_clock.timestamp()


def test_a_session_idle_by_the_app_clock_expires(
    nurse: FlaskClient, app: Flask, clock: app_clock.FrozenClock
) -> None:
    assert nurse.get("/").status_code == 200
    clock.advance(minutes=app.config["IDLE_TIMEOUT_MINUTES"], seconds=1)
    assert nurse.get("/patients/").status_code == 302


def test_session_cookie_flags(client: FlaskClient, staff: Staff, database_url: str) -> None:
    token = csrf_token(client)
    response = client.post(
        "/sign-in", data={"username": staff.nurse, "password": PASSWORD, "csrf_token": token}
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # a permanent session that lasts the idle timeout only
    secure_app = create_app(
        "test", SQLALCHEMY_DATABASE_URI=database_url, SESSION_COOKIE_SECURE=True, **FAST_HASHING
    )
    secure = secure_app.test_client()
    token = csrf_token(secure)
    response = secure.post(
        "/sign-in", data={"username": staff.nurse, "password": PASSWORD, "csrf_token": token}
    )
    assert "Secure" in response.headers["Set-Cookie"]
    assert "Strict-Transport-Security" in response.headers


def test_security_headers(nurse: FlaskClient) -> None:
    response = nurse.get("/")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]


def test_sign_out_ends_the_session(nurse: FlaskClient) -> None:
    response = post(nurse, "/sign-out")
    assert response.status_code == 302
    assert nurse.get("/").status_code == 302


def test_deactivated_user_loses_the_session(nurse: FlaskClient, staff: Staff) -> None:
    user_service.update_user(staff.nurse, actor="test", active=False)
    assert nurse.get("/").status_code == 302


def test_inactive_user_cannot_sign_in(client: FlaskClient, staff: Staff) -> None:
    user_service.update_user(staff.nurse, actor="test", active=False)
    token = csrf_token(client)
    response = client.post(
        "/sign-in", data={"username": staff.nurse, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 401


def test_password_reset_ends_existing_sessions(nurse: FlaskClient, staff: Staff) -> None:
    assert nurse.get("/").status_code == 200
    user_service.reset_password(staff.nurse, actor="test")
    assert nurse.get("/").status_code == 302


def test_must_change_password_before_anything_else(client: FlaskClient, staff: Staff) -> None:
    change = user_service.reset_password(staff.nurse, actor="test")
    sign_in(client, staff.nurse, change.password)
    response = client.get("/patients/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/password"
    bad = post(
        client,
        "/account/password",
        {
            "current_password": "nope",
            "new_password": "a-new-passphrase",
            "confirm_password": "a-new-passphrase",
        },
    )
    assert bad.status_code == 400
    assert "当前密码不正确" in bad.get_data(as_text=True)
    ok = post(
        client,
        "/account/password",
        {"current_password": change.password, "new_password": "a-new-passphrase",
         "confirm_password": "a-new-passphrase"},
    )  # fmt: skip
    assert ok.status_code == 302
    assert client.get("/patients/").status_code == 200
    assert user_service.authenticate(staff.nurse, "a-new-passphrase") is not None


def test_new_passwords_must_match_and_be_long_enough(nurse: FlaskClient) -> None:
    response = post(
        nurse,
        "/account/password",
        {"current_password": PASSWORD, "new_password": "short", "confirm_password": "other"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "请使用10至256个字符" in page
    assert "两次输入的新密码不一致" in page
    assert user_service.authenticate("nurse.wang", PASSWORD) is not None


def test_language_switch_is_saved_on_the_account(nurse: FlaskClient, staff: Staff) -> None:
    response = post(nurse, "/language", {"locale": "en", "next": "/patients/"})
    assert response.headers["Location"] == "/patients/"
    assert "Enrol a patient" in nurse.get("/patients/").get_data(as_text=True)
    assert db.session.get(User, user_service.get_user(staff.nurse).id).locale == "en"
    post(nurse, "/language", {"locale": "zh"})
    assert "患者入组" in nurse.get("/patients/").get_data(as_text=True)


def test_language_switch_works_before_sign_in(client: FlaskClient) -> None:
    post(client, "/language", {"locale": "en"})
    assert "Sign in" in client.get("/sign-in").get_data(as_text=True)
    post(client, "/language", {"locale": "zh"})
    assert "登录" in client.get("/sign-in").get_data(as_text=True)


def test_unknown_language_is_refused(nurse: FlaskClient, staff: Staff) -> None:
    post(nurse, "/language", {"locale": "fr"})
    assert user_service.get_user(staff.nurse).locale == "zh"


@pytest.mark.parametrize(
    ("path", "role", "status"),
    [
        ("/admin/users/", "nurse", 403),
        ("/admin/users/", "investigator", 403),
        ("/admin/users/", "admin", 200),
        ("/patients/new", "admin", 403),
        ("/patients/new", "nurse", 200),
        ("/patients/new", "investigator", 200),
        ("/audit/", "nurse", 200),
        ("/", "admin", 200),
    ],
)
def test_role_checks_on_pages(
    client: FlaskClient, staff: Staff, path: str, role: str, status: int
) -> None:
    sign_in(client, getattr(staff, role))
    assert client.get(path).status_code == status


def test_account_page_shows_the_user(nurse: FlaskClient) -> None:
    page = nurse.get("/account").get_data(as_text=True)
    assert "nurse.wang" in page
    assert "护士" in page
