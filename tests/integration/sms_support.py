"""Shared helpers for the SMS reminder, dispatch and status-callback tests (import explicitly)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from app.clock import CLOCK_ENV_VAR, utcnow
from app.domain.patients import EnrolmentRequest
from app.extensions import db
from app.models import OutboxMessage, OutboxStatusChange, Patient
from app.services.schedule.patients import enrol_patient
from app.sms import TwilioGateway
from tests.fakes.fake_twilio import FakeTwilio

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "cadence-test-token"
SERVICE_SID = "MG" + "8" * 32
TODAY = date(2026, 3, 1)
DRUG_AND_DIAGNOSIS_WORDS = (
    "sintilimab",
    "camrelizumab",
    "paclitaxel",
    "docetaxel",
    "irinotecan",
    "carboplatin",
    "dexamethasone",
    "loperamide",
    "信迪利",
    "卡瑞利珠",
    "紫杉",
    "多西他赛",
    "伊立替康",
    "卡铂",
    "地塞米松",
    "洛哌丁胺",
    "cancer",
    "carcinoma",
    "oesophag",
    "esophag",
    "tumour",
    "tumor",
    "癌",
    "肿瘤复发",
    "食管",
    "PD-1",
    "胃镜",
)
CASE_SENSITIVE_WORDS = ("CT", "PET")


def names_no_drug_or_diagnosis(body: str) -> bool:
    """True when the body names no drug, diagnosis or test (the default SMS privacy rule)."""
    lowered = body.lower()
    if any(word.lower() in lowered for word in DRUG_AND_DIAGNOSIS_WORDS):
        return False
    return not any(re.search(rf"\b{word}\b", body) for word in CASE_SENSITIVE_WORDS)


@pytest.fixture(name="fake")
def fake_fixture() -> Iterator[FakeTwilio]:
    """A fake Twilio on loopback, fast faults (short stalls)."""
    with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, stall_seconds=0.6) as server:
        yield server


def gateway_for(fake: FakeTwilio, timeout: float = 0.3) -> TwilioGateway:
    """The real Twilio gateway pointed at the fake."""
    return TwilioGateway(
        ACCOUNT_SID,
        AUTH_TOKEN,
        messaging_service_sid=SERVICE_SID,
        timeout=timeout,
        base_url=fake.base_url,
    )


def enrol(
    study_id: str = "JSCH-100",
    *,
    chemo: str = "docetaxel",
    start: date = date(2026, 3, 10),
    locale: str = "zh",
    timezone: str = "Asia/Shanghai",
    phone: str | None = None,
    today: date = TODAY,
    shared_phone_reason: str = "",
) -> Patient:
    """Enrol a consenting patient through the real service (calendar + outbox)."""
    number = phone or f"1380013{abs(hash(study_id)) % 10000:04d}"
    return enrol_patient(
        EnrolmentRequest(
            study_id=study_id,
            initials="WL",
            phone=number,
            choices={"pd1": "sintilimab", "chemo": chemo},
            start_date=start,
            sms_consent=True,
            health_consent=True,
            sms_consent_date=min(today, start) - timedelta(days=2),
            locale=locale,
            timezone=timezone,
            recurrence_date=start - timedelta(days=60),
            started_before_cadence=start < today,
            shared_phone_reason=shared_phone_reason,
        ),
        actor="user:nurse1",
        today=today,
    )


def add_patients(count: int, *, prefix: str = "P") -> list[tuple[int, str]]:
    """Insert ``count`` consenting patients quickly; return (id, phone) pairs."""
    tag = uuid.uuid4().hex[:4]
    rows = [
        {
            "study_id": f"{prefix}{tag}-{i:04d}",
            "initials": "AB",
            "phone_e164": f"+86139{i:08d}",
            "locale": "zh",
            "timezone": "Asia/Shanghai",
            "sms_consent": True,
            "sms_consent_date": TODAY,
            "phone_status": "ok",
            "protocol_code": "NCT07016737",
            "choices": {"pd1": "sintilimab", "chemo": "docetaxel"},
            "start_date": TODAY,
            "status": "active",
        }
        for i in range(count)
    ]
    result = db.session.execute(
        insert(Patient).returning(Patient.id, Patient.phone_e164), rows
    ).all()
    db.session.commit()
    return [(row.id, row.phone_e164) for row in result]


def add_due_messages(
    count: int, *, per_patient: int = 10, due: datetime | None = None, body: str | None = None
) -> list[int]:
    """Insert ``count`` planned messages due at ``due`` (default a minute ago), unique bodies
    (or all ``body``)."""
    due = due or utcnow() - timedelta(minutes=1)
    patients = add_patients((count + per_patient - 1) // per_patient)
    rows = []
    for i in range(count):
        patient_id, _phone = patients[i // per_patient]
        rows.append(
            {
                "patient_id": patient_id,
                "dedupe_key": f"test:{i}",
                "kind": "reminder",
                "status": "planned",
                "send_after": due,
                "due_at": due,
                "expires_at": due + timedelta(days=2),
                "body": body or f"【测试】提醒 {i}：请按时到院。",
                "locale": "zh",
                "segments": 1,
                "encoding": "UCS-2",
                "event_keys": [],
                "items": [],
                "notes": [],
                "attempts": 0,
            }
        )
    ids = db.session.execute(insert(OutboxMessage).returning(OutboxMessage.id), rows).scalars()
    result = list(ids)
    db.session.commit()
    return result


def subprocess_env(database_url: str, fake: Any, **extra: str) -> dict[str, str]:
    """Environment for a `flask --app app ...` child talking to this database and fake Twilio
    (another provider's settings come in ``extra``)."""
    env = dict(os.environ)
    env.update(
        {
            "CADENCE_ENV": "development",
            "DATABASE_URL": database_url,
            "SECRET_KEY": "subprocess-test-key",
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
            "TWILIO_BASE_URL": getattr(fake, "base_url", ""),
            "TWILIO_TIMEOUT": "2",
            # These tests run at any hour; quiet-hour deferral has its own tests.
            "SMS_RESPECT_QUIET_HOURS": "0",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            # The child's clock ticks from this test's (fixed) now.
            CLOCK_ENV_VAR: utcnow().isoformat(),
        }
    )
    env.pop("TEST_DATABASE_URL", None)
    env.update(extra)
    return env


def flask_command(*args: str) -> list[str]:
    """argv for `python -m flask --app app ARGS`."""
    return [sys.executable, "-m", "flask", "--app", "app", *args]


def start_flask(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start a flask CLI child process in the project root."""
    return subprocess.Popen(
        flask_command(*args),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def is_postgres(url: str) -> bool:
    """True when the test database is PostgreSQL."""
    return url.startswith("postgresql")


def fresh_message(message_id: int) -> OutboxMessage:
    """The outbox row as the database has it now (the session's copies expired)."""
    db.session.expire_all()
    row = db.session.get(OutboxMessage, message_id)
    assert row is not None
    return row


def last_history(message_id: int) -> OutboxStatusChange:
    """The newest status-history row of one outbox message."""
    history = db.session.scalars(
        select(OutboxStatusChange)
        .where(OutboxStatusChange.message_id == message_id)
        .order_by(OutboxStatusChange.id.desc())
    ).first()
    assert history is not None
    return history
