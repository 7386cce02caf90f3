"""Production fails closed: create_app and `python -m jobs` refuse bad settings, all at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app import create_app
from app.configuration import ConfigurationError
from app.extensions import db
from app.models import OutboxMessage
from tests.integration.sms_support import ROOT, add_due_messages

GOOD: dict[str, Any] = {
    "SMS_BACKEND": "twilio",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "token",
    "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
    "PUBLIC_BASE_URL": "https://cadence.example.org",
    "SECRET_KEY": "k" * 40,
}


def production_env(database_url: str, **changes: str) -> dict[str, str]:
    """The environment of a production child process with none of the required settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SMS_", "TWILIO_", "PUBLIC_", "SECRET_", "ALLOW_", "TEST_"))
    }
    env.update({"CADENCE_ENV": "production", "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"})
    env.update(changes)
    return env


def test_create_app_refuses_production_without_its_settings(database_url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_app(
            "production",
            SQLALCHEMY_DATABASE_URI=database_url,
            SMS_BACKEND=None,
            PUBLIC_BASE_URL=None,
            SECRET_KEY=" ",
        )

    firsts = [problem.split(" ", 1)[0] for problem in caught.value.problems]
    assert firsts == ["SMS_BACKEND", "PUBLIC_BASE_URL", "SECRET_KEY"]


def test_create_app_refuses_memory_rate_limits_with_several_workers(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "4")

    with pytest.raises(ConfigurationError) as caught:
        create_app(
            "production",
            SQLALCHEMY_DATABASE_URI=database_url,
            RATELIMIT_STORAGE_URI="memory://",
            **GOOD,
        )

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("RATELIMIT_STORAGE_URI=memory://")


def test_create_app_refuses_production_without_compiled_catalogs(
    database_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_app(
            "production",
            SQLALCHEMY_DATABASE_URI=database_url,
            BABEL_TRANSLATION_DIRECTORIES=str(tmp_path),
            **GOOD,
        )

    assert any("zh/LC_MESSAGES/messages.mo is missing" in p for p in caught.value.problems)


def test_production_has_secure_cookies_and_hsts_by_default(database_url: str) -> None:
    application = create_app("production", SQLALCHEMY_DATABASE_URI=database_url, **GOOD)

    response = application.test_client().get("/sign-in")

    assert application.config["SESSION_COOKIE_SECURE"] is True
    assert application.config["REMEMBER_COOKIE_SECURE"] is True
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "; Secure" in response.headers["Set-Cookie"]


def test_plain_http_test_rigs_opt_out_explicitly(database_url: str) -> None:
    application = create_app(
        "production",
        SQLALCHEMY_DATABASE_URI=database_url,
        SESSION_COOKIE_SECURE=False,
        HSTS_SECONDS=0,
        **GOOD,
    )

    response = application.test_client().get("/sign-in")

    assert "Strict-Transport-Security" not in response.headers
    assert "; Secure" not in response.headers["Set-Cookie"]


def test_jobs_refuse_to_start_in_production_and_send_nothing(
    app_ctx: Any, database_url: str
) -> None:
    add_due_messages(3)

    result = subprocess.run(
        [sys.executable, "-m", "jobs", "--once"],
        cwd=ROOT,
        env=production_env(database_url, SECRET_KEY=" "),
        capture_output=True,
        text=True,
        timeout=60,
    )

    lines = [line for line in result.stderr.splitlines() if "refusing to start" in line]
    assert result.returncode == 78, result.stderr
    assert [line.split(": ", 2)[2].split(" ", 1)[0] for line in lines] == [
        "SMS_BACKEND",
        "PUBLIC_BASE_URL",
        "SECRET_KEY",
    ]
    db.session.expire_all()
    sent = db.session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status != "planned")
    )
    assert sent == 0


def test_web_refuses_to_start_in_production_from_the_environment(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from app import create_app; create_app()"],
        cwd=ROOT,
        env=production_env(
            database_url,
            SMS_BACKEND="console",
            **{k: v for k, v in GOOD.items() if k != "SMS_BACKEND"},
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "SMS_BACKEND=console delivers nothing" in result.stderr
    assert "ALLOW_CONSOLE_SMS=true" in result.stderr
