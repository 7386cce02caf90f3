"""Fixtures for the web UI tests: an app with CSRF on, staff accounts, signed-in clients."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.domain.patients import EnrolmentRequest
from app.models import Patient
from app.services.schedule.patients import enrol_patient
from app.services.shared import users as user_service
from app.web.helpers import clinic_today
from tests.support import (
    PASSWORD,
    csrf_token,
    fresh_client,
    production_like_app,
    sign_in,
)


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    """The app as in production (CSRF on), see tests/support.py."""
    yield from production_like_app(database_url)


@pytest.fixture
def client(app_ctx: Flask) -> FlaskClient:
    """A test client on a clean database (requests in their own app contexts)."""
    return fresh_client(app_ctx)


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
    enrolled_on: date | None = None,
) -> Patient:
    """Enrol a patient through the service (calendar included), today or on `enrolled_on`."""
    today = enrolled_on or clinic_today()
    first = start or today + timedelta(days=3)
    return enrol_patient(
        EnrolmentRequest(
            study_id=study_id,
            initials=initials,
            phone=f"139{zlib.crc32(study_id.encode()) % 10**8:08d}",
            choices={"pd1": pd1, "chemo": chemo},
            start_date=first,
            sms_consent=True,
            health_consent=True,
            sms_consent_date=min(today, first),
            locale=locale,
            recurrence_date=first - timedelta(days=60),
            started_before_cadence=first < today,
        ),
        actor="test",
        today=today,
    )


@pytest.fixture
def patient(app_ctx: Flask) -> Patient:
    """A zh patient whose first infusion is in three days."""
    return enrol()
