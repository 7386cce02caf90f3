"""Fixtures for the patient-replies tests: an app that validates Twilio signatures against a
public URL, signed webhook posts, patients, a rota and staff accounts."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator
from werkzeug.test import TestResponse

from app import create_app
from app.extensions import db, limiter
from app.models import Alert, InboundMessage, OnCallShift, Patient
from app.services import users as user_service
from tests.integration.sms_support import AUTH_TOKEN, enrol

PUBLIC_BASE_URL = "https://cadence.example.org"
INBOUND_PATH = "/webhooks/twilio/inbound"
INBOUND_URL = PUBLIC_BASE_URL + INBOUND_PATH
OUR_NUMBER = "+8610655299880"
CLINICIAN_PHONE = "+8613900000001"
INVESTIGATOR_PHONE = "+8613900000002"
NURSE_PHONE = "+8613900000003"
PASSWORD = "correct-horse-battery"
FAST_HASHING = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}
CSRF_PATTERN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
# Monday 2 March 2026, 10:00 in Nanjing: a working day, inside working hours.
MONDAY_10 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
TODAY = date(2026, 3, 2)


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    """The app with a Twilio auth token, a public base URL and CSRF on (as in production)."""
    application = create_app(
        "test",
        SQLALCHEMY_DATABASE_URI=database_url,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        WTF_CSRF_ENABLED=True,
        ESCALATION_PAGE_NOW=False,
        ESCALATION_FALLBACK_PHONE=None,
        **FAST_HASHING,
    )
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_rate_limits(app: Flask) -> Iterator[None]:
    with app.app_context():
        limiter.reset()
    yield


class FreshContextClient(FlaskClient):
    """Every request in its own app context (as in production), cached rows expired after."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        """Run the request in a fresh app context."""
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()
        return response


@pytest.fixture
def client(app_ctx: Flask) -> FlaskClient:
    """A test client on a clean database."""
    app_ctx.test_client_class = FreshContextClient
    return app_ctx.test_client()


def sign(params: Mapping[str, str], url: str = INBOUND_URL, token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature computed by the Twilio SDK's RequestValidator (repeated keys kept)."""
    return RequestValidator(token).compute_signature(url, params)


_counter = iter(range(10**9))


def new_sid() -> str:
    """A fresh Twilio-like MessageSid."""
    return f"SM{next(_counter):032x}"


def inbound_form(sender: str, body: str, sid: str | None = None) -> dict[str, str]:
    """The form Twilio posts for an inbound SMS."""
    return {
        "MessageSid": sid or new_sid(),
        "SmsSid": sid or "",
        "AccountSid": "AC" + "7" * 32,
        "From": sender,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
    }


def post_inbound(client: FlaskClient, form: Mapping[str, str], signature: str | None = "") -> Any:
    """POST a correctly signed inbound webhook (or with the given signature; None: no header)."""
    headers = {}
    if signature == "":
        signature = sign(form)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return client.post(INBOUND_PATH, data=dict(form), headers=headers)


def twiml_message(response: Any) -> str:
    """The text of the TwiML <Message> (empty when there is none)."""
    xml = response.get_data(as_text=True)
    match = re.search(r"<Message>(.*)</Message>", xml, re.S)
    if not match:
        return ""
    import html

    return html.unescape(match.group(1))


def count(model: Any) -> int:
    """Rows of a model."""
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def patient(
    study_id: str = "JSCH-001", *, locale: str = "zh", phone: str = "13800138000"
) -> Patient:
    """A consenting patient enrolled through the real service (calendar + planned SMS)."""
    return enrol(study_id, locale=locale, phone=phone, start=date(2026, 3, 10), today=TODAY)


def add_rota() -> None:
    """A clinician, an investigator and a nurse on duty around the clock, every day."""
    for role, name, phone, locale in (
        ("clinician", "Dr Zhang", CLINICIAN_PHONE, "zh"),
        ("investigator", "Prof Li", INVESTIGATOR_PHONE, "en"),
        ("nurse", "Nurse Wang", NURSE_PHONE, "zh"),
    ):
        db.session.add(
            OnCallShift(
                role=role,
                name=name,
                phone_e164=phone,
                weekdays="mon,tue,wed,thu,fri,sat,sun",
                start_time=time(8, 0),
                end_time=time(8, 0),
                priority=0,
                locale=locale,
                active=True,
            )
        )
    db.session.commit()


def alerts() -> list[Alert]:
    """Every alert, oldest first, fresh from the database."""
    return list(
        db.session.scalars(
            select(Alert).order_by(Alert.id).execution_options(populate_existing=True)
        )
    )


def inbound_rows() -> list[InboundMessage]:
    """Every inbound message, fresh from the database."""
    return list(
        db.session.scalars(
            select(InboundMessage)
            .order_by(InboundMessage.id)
            .execution_options(populate_existing=True)
        )
    )


# -- staff ---------------------------------------------------------------------------------------


@pytest.fixture
def staff(app_ctx: Flask) -> dict[str, str]:
    """A nurse (zh), an investigator (en) and an admin (en), all with PASSWORD."""
    accounts = {"nurse": "nurse.wang", "investigator": "dr.li", "admin": "admin.zhou"}
    for role, username in accounts.items():
        user_service.create_user(
            username,
            display_name=username,
            role=role,
            password=PASSWORD,
            actor="test",
            locale="zh" if role == "nurse" else "en",
        )
    return accounts


def csrf_token(client: FlaskClient, url: str = "/sign-in") -> str:
    """The CSRF token of the client's session, read from a form on ``url``."""
    html = client.get(url).get_data(as_text=True)
    match = CSRF_PATTERN.search(html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def sign_in(client: FlaskClient, username: str) -> FlaskClient:
    """Sign in through the real form."""
    token = csrf_token(client)
    response = client.post(
        "/sign-in", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def later(minutes: float) -> datetime:
    """MONDAY_10 plus some minutes."""
    return MONDAY_10 + timedelta(minutes=minutes)
