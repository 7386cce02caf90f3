"""Production fails closed: every setting problem found at start-up, one clear line each.

``production_problems(settings, environ, argv)`` is plain Python over mappings (no Flask), so the
web app (create_app) and the jobs process (``python -m jobs``, through create_app) refuse to start
on the same list. ``ConfigurationError`` carries the lines; it is also raised at run time when a
configured file (the protocol) cannot be used, and the web UI shows it as a configuration error
page, never a bare 500.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.domain.sms_limits import budget_problem, limits_from_config
from app.sms import make_gateway, provider_rules, template_catalogue
from app.sms.aliyun_mns import mns_problems
from app.sms.templates import TemplateError

MIN_SECRET_KEY_BYTES = 32
CATALOG_DOMAIN = "messages"
WORKER_FLAGS = ("-w", "--workers")

logger = logging.getLogger("cadence.configuration")


class ConfigurationError(RuntimeError):
    """The service is not configured well enough to run; ``problems`` holds one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


MIN_RETENTION_DAYS = 30


def production_problems(
    settings: Mapping[str, Any], environ: Mapping[str, str], argv: Sequence[str]
) -> list[str]:
    """Every reason not to start in production (empty when all is well), one line each."""
    return [
        *sms_problems(settings),
        *public_url_problems(settings),
        *secret_key_problems(settings),
        *catalog_problems(settings),
        *rate_limit_problems(settings, environ, argv),
        *retention_problems(settings),
        *frequency_problems(settings),
        *mns_problems(settings),
    ]


def check_queue_mode(settings: Mapping[str, Any]) -> None:
    """Refuse (in every environment) a half-configured Alibaba MNS queue mode."""
    problems = mns_problems(settings)
    for problem in problems:
        logger.critical("refusing to start: %s", problem)
    if problems:
        raise ConfigurationError(problems)


def queue_mode(settings: Mapping[str, Any]) -> bool:
    """True when Alibaba receipts and replies come from MNS queues (ALIYUN_MNS_ENDPOINT set)."""
    return bool(str(settings.get("ALIYUN_MNS_ENDPOINT") or "").strip())


def frequency_problems(settings: Mapping[str, Any]) -> list[str]:
    """The provider's per-number limits are valid numbers and the daily reminder budget fits
    them (planned for, never discovered as the provider's refusals)."""
    try:
        limits = limits_from_config(settings)
        problem = budget_problem(limits, int(settings.get("SMS_DAILY_BUDGET") or 0))
    except ValueError as exc:
        return [str(exc)]
    return [problem] if problem else []


def retention_problems(settings: Mapping[str, Any]) -> list[str]:
    """RETENTION_DAYS must be 0 (keep everything) or long enough for replies and reports."""
    raw = settings.get("RETENTION_DAYS") or 0
    try:
        days = int(raw)
    except (TypeError, ValueError):
        return [f"RETENTION_DAYS must be a whole number of days, got {raw!r}"]
    if days < 0 or 0 < days < MIN_RETENTION_DAYS:
        return [
            f"RETENTION_DAYS must be 0 (keep everything) or at least {MIN_RETENTION_DAYS} "
            f"(replies, budgets and reports read recent messages), got {days}"
        ]
    return []


def check_production(
    settings: Mapping[str, Any], environ: Mapping[str, str], argv: Sequence[str]
) -> None:
    """Log each problem on its own line and raise ConfigurationError listing them all."""
    problems = production_problems(settings, environ, argv)
    for problem in problems:
        logger.critical("refusing to start in production: %s", problem)
    if problems:
        raise ConfigurationError(problems)


def sms_problems(settings: Mapping[str, Any]) -> list[str]:
    """A real gateway with its credentials, or console SMS explicitly allowed."""
    backend = str(settings.get("SMS_BACKEND") or "").strip().lower()
    if not backend:
        return [
            "SMS_BACKEND is not set: set SMS_BACKEND=twilio (with its TWILIO_* settings); "
            "console SMS deliver nothing"
        ]
    if backend == "console" and not settings.get("ALLOW_CONSOLE_SMS"):
        return [
            "SMS_BACKEND=console delivers nothing: set SMS_BACKEND=twilio, or set "
            "ALLOW_CONSOLE_SMS=true for a test rig that must not send SMS"
        ]
    if backend == "twilio":
        missing = twilio_problems(settings)
        if missing:
            return missing
    domestic = domestic_problems(settings)
    if domestic:
        return domestic
    try:
        make_gateway(settings)
    except ValueError as exc:
        return [f"{exc}: fix it in the environment"]
    return []


DOMESTIC_SETTINGS = {
    "tencent": (
        "TENCENT_SECRET_ID",
        "TENCENT_SECRET_KEY",
        "TENCENT_SMS_SDK_APP_ID",
        "SMS_SIGN_NAME",
    ),
    "aliyun": ("ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET", "SMS_SIGN_NAME"),
}
MIN_CALLBACK_SECRET = 24


def domestic_problems(settings: Mapping[str, Any]) -> list[str]:
    """Tencent / Alibaba (primary or fallback): credentials, callback secret, valid templates."""
    names = {
        str(settings.get(key) or "").strip().lower()
        for key in ("SMS_BACKEND", "SMS_FALLBACK_BACKEND")
    } & set(DOMESTIC_SETTINGS)
    problems = [
        f"{key} is not set: SMS backend {name} needs it"
        for name in sorted(names)
        for key in DOMESTIC_SETTINGS[name]
        if not str(settings.get(key) or "").strip()
    ]
    pushed = names - ({"aliyun"} if queue_mode(settings) else set())  # queue mode: no push
    if pushed and len(str(settings.get("SMS_CALLBACK_SECRET") or "")) < MIN_CALLBACK_SECRET:
        problems.append(
            f"SMS_CALLBACK_SECRET must be at least {MIN_CALLBACK_SECRET} random characters: "
            "the providers' callbacks are not signed"
        )
    if names and not problems:
        try:
            catalogue = template_catalogue(settings)
        except TemplateError as exc:
            return [str(exc)]
        for name in sorted(names):
            problems.extend(catalogue.check(provider_rules(settings, name)))
    return problems


def twilio_problems(settings: Mapping[str, Any]) -> list[str]:
    """Each Twilio credential that SMS_BACKEND=twilio needs and does not have."""
    problems = [
        f"{key} is not set: SMS_BACKEND=twilio needs it (Twilio console, Account info)"
        for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
        if not str(settings.get(key) or "").strip()
    ]
    senders = ("TWILIO_MESSAGING_SERVICE_SID", "TWILIO_FROM_NUMBER")
    if not any(str(settings.get(key) or "").strip() for key in senders):
        problems.append(
            "TWILIO_MESSAGING_SERVICE_SID is not set: SMS_BACKEND=twilio needs it "
            "(or TWILIO_FROM_NUMBER)"
        )
    return problems


def public_url_problems(settings: Mapping[str, Any]) -> list[str]:
    """PUBLIC_BASE_URL must be the absolute http(s) URL patients and Twilio reach."""
    raw = str(settings.get("PUBLIC_BASE_URL") or "").strip()
    if not raw:
        return [
            "PUBLIC_BASE_URL is not set: set it to the public URL, e.g. "
            "PUBLIC_BASE_URL=https://cadence.example.org (check-in links and webhook signatures)"
        ]
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [
            f"PUBLIC_BASE_URL={raw!r} is not an absolute URL: set e.g. https://cadence.example.org"
        ]
    return []


def secret_key_problems(settings: Mapping[str, Any]) -> list[str]:
    """SECRET_KEY must be at least MIN_SECRET_KEY_BYTES bytes and not blank."""
    key = settings.get("SECRET_KEY")
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key or b"")
    if len(raw.strip()) < MIN_SECRET_KEY_BYTES:
        return [
            f"SECRET_KEY is missing or shorter than {MIN_SECRET_KEY_BYTES} bytes: set a random "
            'one, e.g. SECRET_KEY=$(python -c "import secrets; print(secrets.token_hex(32))")'
        ]
    return []


def missing_catalogs(settings: Mapping[str, Any]) -> list[Path]:
    """Compiled catalogs (.mo) of the shipped languages that are not on disk."""
    directory = Path(str(settings.get("BABEL_TRANSLATION_DIRECTORIES") or "translations"))
    languages = settings.get("LANGUAGES") or ()
    paths = [directory / lang / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.mo" for lang in languages]
    return [path for path in paths if not path.is_file()]


def catalog_problems(settings: Mapping[str, Any]) -> list[str]:
    """Without compiled catalogs patients silently get English SMS."""
    return [
        f"compiled catalog {path} is missing: run `python scripts/i18n.py compile` "
        "(or `make translations`) before starting"
        for path in missing_catalogs(settings)
    ]


def rate_limit_problems(
    settings: Mapping[str, Any], environ: Mapping[str, str], argv: Sequence[str]
) -> list[str]:
    """memory:// rate limits are per worker: with several workers they are multiplied."""
    try:
        workers = configured_workers(environ, argv)
    except ValueError as exc:
        return [str(exc)]
    uri = str(settings.get("RATELIMIT_STORAGE_URI") or "memory://")
    if workers > 1 and uri.startswith("memory://"):
        return [
            f"RATELIMIT_STORAGE_URI=memory:// with {workers} web workers: each worker counts "
            "sign-in attempts alone; set RATELIMIT_STORAGE_URI=redis://HOST:6379/0"
        ]
    return []


def configured_workers(environ: Mapping[str, str], argv: Sequence[str]) -> int:
    """The most web workers configured by WEB_CONCURRENCY, GUNICORN_CMD_ARGS or gunicorn -w."""
    counts = [1]
    if environ.get("WEB_CONCURRENCY", "").strip():
        counts.append(_whole_number("WEB_CONCURRENCY", environ["WEB_CONCURRENCY"]))
    counts.extend(
        _worker_flags("GUNICORN_CMD_ARGS", shlex.split(environ.get("GUNICORN_CMD_ARGS", "")))
    )
    if argv and Path(argv[0]).name.startswith("gunicorn"):
        counts.extend(_worker_flags("gunicorn --workers", list(argv[1:])))
    return max(counts)


def _worker_flags(source: str, args: list[str]) -> list[int]:
    """The values of every -w / --workers option in a gunicorn argument list."""
    found = []
    for index, arg in enumerate(args):
        value: str | None = None
        if arg in WORKER_FLAGS and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--workers="):
            value = arg.partition("=")[2]
        elif arg.startswith("-w") and len(arg) > 2 and not arg.startswith("--"):
            value = arg[2:]
        if value is not None:
            found.append(_whole_number(source, value))
    return found


def _whole_number(name: str, value: str) -> int:
    """``value`` as an int, or a ValueError naming the setting."""
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is not a whole number: set a worker count, e.g. 4"
        ) from None
