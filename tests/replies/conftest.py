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

from app.extensions import db
from app.models import Alert, InboundMessage, OnCallShift, Patient
from app.services.shared import users as user_service
from tests.integration.sms_support import AUTH_TOKEN, enrol
from tests.support import (
    PASSWORD,
    fresh_client,
    production_like_app,
)

PUBLIC_BASE_URL = "https://cadence.example.org"
INBOUND_PATH = "/webhooks/twilio/inbound"
INBOUND_URL = PUBLIC_BASE_URL + INBOUND_PATH
OUR_NUMBER = "+8610655299880"
CLINICIAN_PHONE = "+8613900000001"
INVESTIGATOR_PHONE = "+8613900000002"
NURSE_PHONE = "+8613900000003"
# Monday 2 March 2026, 10:00 in Nanjing: a working day, inside working hours.
MONDAY_10 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
TODAY = date(2026, 3, 2)


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    """The app as in production (CSRF on), see tests/support.py."""
    yield from production_like_app(
        database_url,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        ESCALATION_PAGE_NOW=False,
        ESCALATION_FALLBACK_PHONE=None,
    )


@pytest.fixture
def client(app_ctx: Flask) -> FlaskClient:
    """A test client on a clean database (requests in their own app contexts)."""
    return fresh_client(app_ctx)


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
    return enrol(
        study_id,
        locale=locale,
        phone=phone,
        start=date(2026, 3, 10),
        today=TODAY,
        shared_phone_reason="shared family phone",
    )


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


def later(minutes: float) -> datetime:
    """MONDAY_10 plus some minutes."""
    return MONDAY_10 + timedelta(minutes=minutes)
