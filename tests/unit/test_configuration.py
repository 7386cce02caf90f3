"""Production start-up checks: every problem found, one line each naming the variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.configuration import (
    ConfigurationError,
    check_production,
    configured_workers,
    production_problems,
)

ROOT = Path(__file__).resolve().parents[2]


def good_settings(**changes: Any) -> dict[str, Any]:
    """Settings that pass every production check."""
    settings: dict[str, Any] = {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "token",
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "0" * 32,
        "PUBLIC_BASE_URL": "https://cadence.example.org",
        "SECRET_KEY": "k" * 32,
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "translations"),
        "LANGUAGES": ("zh", "en"),
        "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
    }
    settings.update(changes)
    return settings


def test_good_settings_have_no_problems() -> None:
    assert production_problems(good_settings(), {}, ["gunicorn", "-w", "4"]) == []


def test_every_problem_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    settings = good_settings(
        SMS_BACKEND=None,
        PUBLIC_BASE_URL=None,
        SECRET_KEY=" ",
        BABEL_TRANSLATION_DIRECTORIES=str(tmp_path),
        RATELIMIT_STORAGE_URI="memory://",
    )

    with pytest.raises(ConfigurationError) as caught:
        check_production(settings, {"WEB_CONCURRENCY": "4"}, ["python"])

    problems = caught.value.problems
    assert [p.split(" ", 1)[0] for p in problems] == [
        "SMS_BACKEND",
        "PUBLIC_BASE_URL",
        "SECRET_KEY",
        "compiled",
        "compiled",
        "RATELIMIT_STORAGE_URI=memory://",
    ]
    assert all("\n" not in p and ("set " in p or "run " in p) for p in problems)
    assert str(caught.value).count("\n") == len(problems) - 1
    assert "zh/LC_MESSAGES/messages.mo" in problems[3]
    assert "4 web workers" in problems[5]


def test_console_sms_needs_an_explicit_allowance() -> None:
    refused = production_problems(good_settings(SMS_BACKEND="console"), {}, [])
    allowed = production_problems(
        good_settings(SMS_BACKEND="console", ALLOW_CONSOLE_SMS=True), {}, []
    )

    assert len(refused) == 1 and "ALLOW_CONSOLE_SMS=true" in refused[0]
    assert allowed == []


def test_twilio_needs_each_credential() -> None:
    settings = good_settings(
        TWILIO_ACCOUNT_SID="", TWILIO_AUTH_TOKEN=None, TWILIO_MESSAGING_SERVICE_SID=None
    )

    problems = production_problems(settings, {}, [])

    assert [p.split(" ", 1)[0] for p in problems] == [
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_MESSAGING_SERVICE_SID",
    ]


def test_an_unknown_backend_is_named() -> None:
    problems = production_problems(good_settings(SMS_BACKEND="carrier-pigeon"), {}, [])

    assert len(problems) == 1 and "carrier-pigeon" in problems[0]


@pytest.mark.parametrize("key", [" ", "short", "x" * 31, ""])
def test_a_secret_key_under_32_bytes_is_refused(key: str) -> None:
    problems = production_problems(good_settings(SECRET_KEY=key), {}, [])

    assert len(problems) == 1 and problems[0].startswith("SECRET_KEY")


@pytest.mark.parametrize("url", ["cadence.example.org", "ftp://x.org", "https://"])
def test_public_base_url_must_be_an_absolute_http_url(url: str) -> None:
    problems = production_problems(good_settings(PUBLIC_BASE_URL=url), {}, [])

    assert len(problems) == 1 and problems[0].startswith("PUBLIC_BASE_URL")


@pytest.mark.parametrize(
    ("environ", "argv", "workers"),
    [
        ({}, ["python", "-m", "jobs"], 1),
        ({"WEB_CONCURRENCY": "3"}, [], 3),
        ({"GUNICORN_CMD_ARGS": "--bind 0.0.0.0:8000 --workers=5"}, [], 5),
        ({}, ["/usr/bin/gunicorn", "-w", "4", "app:create_app()"], 4),
        ({}, ["gunicorn", "-w2", "app:create_app()"], 2),
        ({}, ["python", "-w", "9"], 1),  # not gunicorn: its arguments mean something else
    ],
)
def test_configured_workers(environ: dict[str, str], argv: list[str], workers: int) -> None:
    assert configured_workers(environ, argv) == workers


def test_memory_rate_limits_are_fine_with_one_worker() -> None:
    settings = good_settings(RATELIMIT_STORAGE_URI="memory://")

    assert production_problems(settings, {"WEB_CONCURRENCY": "1"}, ["gunicorn"]) == []


def test_a_bad_worker_count_is_named() -> None:
    problems = production_problems(good_settings(), {"WEB_CONCURRENCY": "many"}, [])

    assert len(problems) == 1 and problems[0].startswith("WEB_CONCURRENCY='many'")
