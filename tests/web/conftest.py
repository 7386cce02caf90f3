"""Fixtures for the web UI tests: an app with CSRF on, staff accounts, signed-in clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from app.domain.patients import EnrolmentRequest
from app.extensions import db, limiter
from app.models import Patient
from app.services import users as user_service
from app.services.patients import enrol_patient
from app.web.helpers import clinic_today

PASSWORD = "correct-horse-battery"
CSRF_PATTERN = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)

# Cheap argon2 parameters: the tests exercise the logic, not the cost.
FAST_HASHING = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    """The application with CSRF protection ON (as in production) and a fresh schema."""
    application = create_app(
        "test", SQLALCHEMY_DATABASE_URI=database_url, WTF_CSRF_ENABLED=True, **FAST_HASHING
    )
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


class FreshContextClient(FlaskClient):
    """A test client whose every request gets its own app context, as in production.

    The tests hold an app context for direct database access; without this, requests would share
    its `g` (Flask-Login's cached user, Flask-Babel's cached locale) and its database session.
    """

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        """Run the request in a fresh app context, then expire the test's cached rows."""
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()
        return response


@pytest.fixture
def client(app_ctx: Flask) -> FlaskClient:
    """A test client on a clean database (requests in their own app contexts)."""
    app_ctx.test_client_class = FreshContextClient
    return app_ctx.test_client()


@pytest.fixture(autouse=True)
def _fresh_rate_limits(app: Flask) -> Iterator[None]:
    """Every test starts with no recorded failed sign-ins."""
    with app.app_context():
        limiter.reset()
    yield


@dataclass(frozen=True)
class Staff:
    """The three demo accounts of a test, by role."""

    nurse: str = "nurse.wang"
    investigator: str = "dr.li"
    admin: str = "admin.zhou"


@pytest.fixture
def staff(app_ctx: Flask) -> Staff:
    """A nurse (zh), an investigator (en) and an admin (en), all with PASSWORD."""
    accounts = Staff()
    user_service.create_user(
        accounts.nurse, display_name="王护士", role="nurse", password=PASSWORD, actor="test",
        locale="zh",
    )  # fmt: skip
    user_service.create_user(
        accounts.investigator, display_name="Dr Li", role="investigator", password=PASSWORD,
        actor="test", locale="en",
    )  # fmt: skip
    user_service.create_user(
        accounts.admin, display_name="Admin Zhou", role="admin", password=PASSWORD,
        actor="test", locale="en",
    )  # fmt: skip
    return accounts


def csrf_token(client: FlaskClient, url: str = "/sign-in") -> str:
    """The CSRF token of the client's session, read from a form on `url`."""
    html = client.get(url).get_data(as_text=True)
    match = CSRF_PATTERN.search(html)
    assert match, f"no CSRF token on {url}"
    return match.group(1) or match.group(2)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> FlaskClient:
    """Sign a test client in through the real form (CSRF included)."""
    token = csrf_token(client, "/sign-in")
    response = client.post(
        "/sign-in", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def session_token(client: FlaskClient) -> str:
    """The CSRF token of the client's session, signed in or not."""
    response = client.get("/account/password")
    if response.status_code == 302:
        return csrf_token(client, "/sign-in")
    return csrf_token(client, "/account/password")


def post(client: FlaskClient, url: str, data: dict[str, object] | None = None, **kwargs: object):
    """POST with the session's CSRF token added."""
    return client.post(url, data={**(data or {}), "csrf_token": session_token(client)}, **kwargs)


@pytest.fixture
def nurse(client: FlaskClient, staff: Staff) -> FlaskClient:
    """A client signed in as the nurse (Chinese interface)."""
    return sign_in(client, staff.nurse)


@pytest.fixture
def english_nurse(client: FlaskClient, staff: Staff) -> FlaskClient:
    """A client signed in as the nurse, switched to English."""
    sign_in(client, staff.nurse)
    user_service.set_locale(user_service.get_user(staff.nurse), "en")
    return client


@pytest.fixture
def admin(client: FlaskClient, staff: Staff) -> FlaskClient:
    """A client signed in as the admin."""
    return sign_in(client, staff.admin)


@pytest.fixture
def investigator(client: FlaskClient, staff: Staff) -> FlaskClient:
    """A client signed in as the investigator."""
    return sign_in(client, staff.investigator)


def enrol(
    study_id: str = "JSCH-101",
    *,
    start: date | None = None,
    initials: str = "WL",
    locale: str = "zh",
    chemo: str = "docetaxel",
    pd1: str = "sintilimab",
) -> Patient:
    """Enrol a patient through the service (calendar included)."""
    today = clinic_today()
    first = start or today + timedelta(days=3)
    return enrol_patient(
        EnrolmentRequest(
            study_id=study_id,
            initials=initials,
            phone="13800138000",
            choices={"pd1": pd1, "chemo": chemo},
            start_date=first,
            sms_consent=True,
            sms_consent_date=min(today, first),
            locale=locale,
        ),
        actor="test",
        today=today,
    )


@pytest.fixture
def patient(app_ctx: Flask) -> Patient:
    """A zh patient whose first infusion is in three days."""
    return enrol()
