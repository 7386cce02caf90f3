"""Configuration from environment variables (12-factor), with a .env file supported."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from sqlalchemy.engine import make_url

BASE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = BASE_DIR / "templates"
TRANSLATIONS_DIR = BASE_DIR / "translations"
INSTANCE_DIR = BASE_DIR / "instance"

load_dotenv(BASE_DIR / ".env")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"Setting {name} must be a whole number, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def normalise_database_url(url: str) -> str:
    """Select the psycopg 3 driver for plain postgres URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def pool_options() -> dict[str, int]:
    """Connection pool size per process (DB_POOL_SIZE, DB_MAX_OVERFLOW), when set; else
    SQLAlchemy's defaults (5 kept open, 10 more at peaks). README "Scaling" sizes them."""
    options = {}
    if _env("DB_POOL_SIZE") is not None:
        options["pool_size"] = _env_int("DB_POOL_SIZE", 5)
    if _env("DB_MAX_OVERFLOW") is not None:
        options["max_overflow"] = _env_int("DB_MAX_OVERFLOW", 10)
    return options


# What PostgreSQL sessions start with: the nurse pages are short index reads, for which JIT
# compiling (~150 ms a query at 10,000 patients) and parallel workers (started per query: 10-25
# ms of a 1 ms count on 2 cores) cost more than they give. README "Configuration".
DEFAULT_SESSION_SETTINGS = "jit=off max_parallel_workers_per_gather=0"
_SESSION_SETTING = re.compile(r"^[a-z_][a-z0-9_.]*=[A-Za-z0-9_.:-]+$")


def session_settings(raw: str | None = None) -> tuple[str, ...]:
    """DB_SESSION_SETTINGS as ``name=value`` items (spaces or commas between); ``none``: none."""
    text = raw if raw is not None else _env("DB_SESSION_SETTINGS", DEFAULT_SESSION_SETTINGS)
    items = tuple(item for item in re.split(r"[\s,]+", text or "") if item)
    if items == ("none",):
        return ()
    wrong = [item for item in items if not _SESSION_SETTING.match(item)]
    if wrong:
        raise ValueError(
            f"Setting DB_SESSION_SETTINGS must be name=value items (or none), got {wrong!r}"
        )
    return items


def engine_options(url: str, options: dict[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    """The engine options for ``url``: PostgreSQL sessions start with ``settings``.

    Sent as the libpq ``options`` startup parameter (``-c jit=off ...``), after any ``options``
    already in the URL (the tests' ``-csearch_path=...``). PgBouncer refuses that parameter
    (unless listed in ``ignore_startup_parameters``): behind it set DB_SESSION_SETTINGS=none and
    ``ALTER ROLE ... SET`` each setting instead (README "Scaling").
    """
    if not settings or not url.startswith("postgresql"):
        return options
    connect_args = dict(options.get("connect_args", {}))
    given = connect_args.get("options") or make_url(url).query.get("options") or ""
    if isinstance(given, tuple):
        given = " ".join(given)
    wanted = " ".join(f"-c {item}" for item in settings)
    connect_args["options"] = f"{given} {wanted}".strip()
    return {**options, "connect_args": connect_args}


class Config:
    """Settings shared by every environment; each one can be overridden from the environment."""

    SECRET_KEY = _env("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = normalise_database_url(
        _env("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'cadence.sqlite3'}")
    )
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, **pool_options()}
    DB_SESSION_SETTINGS = session_settings()  # PostgreSQL; create_app applies them
    PROTOCOL_PATH = _env("PROTOCOL_PATH", str(BASE_DIR / "app" / "protocols" / "nct07016737.yaml"))
    CLINIC_TIMEZONE = _env("CLINIC_TIMEZONE", "Asia/Shanghai")
    CLINIC_COUNTRY = _env("CLINIC_COUNTRY", "CN")
    CLINIC_PHONE = _env("CLINIC_PHONE", "+86 25 8328 3400")
    DEFAULT_PHONE_REGION = _env("DEFAULT_PHONE_REGION", "CN")
    BABEL_DEFAULT_LOCALE = _env("BABEL_DEFAULT_LOCALE", "zh")
    BABEL_DEFAULT_TIMEZONE = CLINIC_TIMEZONE
    BABEL_TRANSLATION_DIRECTORIES = str(TRANSLATIONS_DIR)
    LANGUAGES = ("zh", "en")

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    IDLE_TIMEOUT_MINUTES = _env_int("IDLE_TIMEOUT_MINUTES", 30)
    # Sign-in rate limits are shared by every worker: in the app's database (database://, see
    # app/rate_limit_storage.py) or in Redis (redis://host:6379/0). memory:// is per process.
    RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", "database://")
    RATELIMIT_KEY_PREFIX = _env("RATELIMIT_KEY_PREFIX", "cadence")
    RATELIMIT_STRATEGY = "fixed-window"
    WTF_CSRF_TIME_LIMIT = None
    PROXY_FIX_HOPS = _env_int("PROXY_FIX_HOPS", 0)
    PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL")

    SMS_BACKEND = _env("SMS_BACKEND", "console")
    SMS_SIGNATURE = _env("SMS_SIGNATURE", "【江苏省肿瘤医院】")
    TWILIO_ACCOUNT_SID = _env("TWILIO_ACCOUNT_SID")
    TWILIO_AUTH_TOKEN = _env("TWILIO_AUTH_TOKEN")
    TWILIO_FROM_NUMBER = _env("TWILIO_FROM_NUMBER")
    TWILIO_MESSAGING_SERVICE_SID = _env("TWILIO_MESSAGING_SERVICE_SID")
    TWILIO_TIMEOUT = float(_env("TWILIO_TIMEOUT", "10") or 10)
    TWILIO_VALIDITY_PERIOD = _env("TWILIO_VALIDITY_PERIOD")
    TWILIO_BASE_URL = _env("TWILIO_BASE_URL")
    # Mainland China providers (issue 12): approved templates only (app/protocols/sms_templates.yaml).
    SMS_FALLBACK_BACKEND = _env("SMS_FALLBACK_BACKEND")
    SMS_BREAKER_FAILURES = _env_int("SMS_BREAKER_FAILURES", 5)
    SMS_BREAKER_COOLDOWN_SECONDS = _env_int("SMS_BREAKER_COOLDOWN_SECONDS", 300)
    SMS_TEMPLATES_FILE = _env("SMS_TEMPLATES_FILE")
    SMS_TEMPLATE_FALLBACK = _env("SMS_TEMPLATE_FALLBACK", "message")
    SMS_TEMPLATE_MAX_VARIABLE_LENGTH = _env("SMS_TEMPLATE_MAX_VARIABLE_LENGTH")
    SMS_SIGN_NAME = _env("SMS_SIGN_NAME", "江苏省肿瘤医院")
    # Long random secret in the provider callback paths (/webhooks/<provider>/<secret>/...).
    SMS_CALLBACK_SECRET = _env("SMS_CALLBACK_SECRET")
    SMS_CALLBACK_ALLOWED_IPS = _env("SMS_CALLBACK_ALLOWED_IPS")
    SMS_PULL_SECONDS = _env_int("SMS_PULL_SECONDS", 0)
    # The pull job checks pushed receipts against the query API, and asks about a message with
    # no receipt after this many minutes (app/services/messaging/receipt_checks.py).
    SMS_RECEIPT_RECHECK_MINUTES = _env_int("SMS_RECEIPT_RECHECK_MINUTES", 30)
    TENCENT_SECRET_ID = _env("TENCENT_SECRET_ID")
    TENCENT_SECRET_KEY = _env("TENCENT_SECRET_KEY")
    TENCENT_SMS_SDK_APP_ID = _env("TENCENT_SMS_SDK_APP_ID")
    TENCENT_SMS_REGION = _env("TENCENT_SMS_REGION", "ap-guangzhou")
    TENCENT_SMS_ENDPOINT = _env("TENCENT_SMS_ENDPOINT")
    TENCENT_SMS_TIMEOUT = float(_env("TENCENT_SMS_TIMEOUT", "10") or 10)
    # Per-number frequency limits the dispatcher plans for (app/services/messaging/frequency.py):
    # routine messages wait, answers and pages never do and keep a reserve of the daily allowance.
    TENCENT_SMS_DAILY_LIMIT = _env_int("TENCENT_SMS_DAILY_LIMIT", 10)
    TENCENT_SMS_HOURLY_LIMIT = _env_int("TENCENT_SMS_HOURLY_LIMIT", 5)
    ALIYUN_SMS_DAILY_LIMIT = _env_int("ALIYUN_SMS_DAILY_LIMIT", 50)
    ALIYUN_SMS_HOURLY_LIMIT = _env_int("ALIYUN_SMS_HOURLY_LIMIT", 0)
    SMS_LIMIT_SAME_TEXT_SECONDS = _env_int("SMS_LIMIT_SAME_TEXT_SECONDS", 30)
    SMS_LIMIT_URGENT_RESERVE = _env_int("SMS_LIMIT_URGENT_RESERVE", 2)
    SMS_PLAN_LIMITS = _env("SMS_PLAN_LIMITS", "1")
    ALIYUN_ACCESS_KEY_ID = _env("ALIYUN_ACCESS_KEY_ID")
    ALIYUN_ACCESS_KEY_SECRET = _env("ALIYUN_ACCESS_KEY_SECRET")
    ALIYUN_SMS_ENDPOINT = _env("ALIYUN_SMS_ENDPOINT")
    ALIYUN_SMS_TIMEOUT = float(_env("ALIYUN_SMS_TIMEOUT", "10") or 10)
    # Queue mode (app/sms/aliyun_mns.py): SmsReport / SmsUp read from Alibaba MNS queues by the
    # jobs process instead of (or besides) the HTTP pushes. Keys: the MNS pair, else ALIYUN_*.
    ALIYUN_MNS_ENDPOINT = _env("ALIYUN_MNS_ENDPOINT")
    ALIYUN_MNS_REPORT_QUEUE = _env("ALIYUN_MNS_REPORT_QUEUE")
    ALIYUN_MNS_REPLY_QUEUE = _env("ALIYUN_MNS_REPLY_QUEUE")
    ALIYUN_MNS_ACCESS_KEY_ID = _env("ALIYUN_MNS_ACCESS_KEY_ID")
    ALIYUN_MNS_ACCESS_KEY_SECRET = _env("ALIYUN_MNS_ACCESS_KEY_SECRET")
    ALIYUN_MNS_WAIT_SECONDS = _env("ALIYUN_MNS_WAIT_SECONDS", "2")
    ALIYUN_MNS_BATCH = _env("ALIYUN_MNS_BATCH", "16")
    ALIYUN_MNS_POLL_SECONDS = _env_int("ALIYUN_MNS_POLL_SECONDS", 5)
    # token: Alibaba's SMS queues, read with temporary keys from Dybaseapi QueryTokenForMnsQueue;
    # key: a queue in your own MNS account, signed with the key itself.
    ALIYUN_MNS_AUTH = _env("ALIYUN_MNS_AUTH", "token")
    ALIYUN_MNS_TOKEN_ENDPOINT = _env("ALIYUN_MNS_TOKEN_ENDPOINT")

    # Date inputs (forms, query strings, command options): plausible ranges around "today".
    DATE_INPUT_YEARS = _env_int("DATE_INPUT_YEARS", 10)
    ENROLMENT_START_DAYS_BACK = _env_int("ENROLMENT_START_DAYS_BACK", 365)
    ENROLMENT_START_DAYS_AHEAD = _env_int("ENROLMENT_START_DAYS_AHEAD", 90)

    QUIET_HOURS_START = _env("QUIET_HOURS_START", "21:00")
    QUIET_HOURS_END = _env("QUIET_HOURS_END", "08:00")
    SMS_DAILY_BUDGET = _env_int("SMS_DAILY_BUDGET", 3)
    SMS_SIGNATURE_POSITION = _env("SMS_SIGNATURE_POSITION", "prefix")
    SMS_OPT_OUT_HINT = _env_bool("SMS_OPT_OUT_HINT", True)
    SMS_STATUS_CALLBACK_URL = _env("SMS_STATUS_CALLBACK_URL")
    SMS_DISPATCH_WORKERS = _env_int("SMS_DISPATCH_WORKERS", 8)
    SMS_DISPATCH_BATCH = _env_int("SMS_DISPATCH_BATCH", 50)
    # Most numbers sharing one provider request for an identical text; 1: no batches.
    SMS_SEND_BATCH = _env_int("SMS_SEND_BATCH", 200)
    SMS_LEASE_SECONDS = _env_int("SMS_LEASE_SECONDS", 300)
    SMS_MAX_ATTEMPTS = _env_int("SMS_MAX_ATTEMPTS", 8)
    SMS_RETRY_BASE_SECONDS = _env_int("SMS_RETRY_BASE_SECONDS", 30)
    SMS_RETRY_MAX_SECONDS = _env_int("SMS_RETRY_MAX_SECONDS", 3600)
    SMS_RECONCILE_SETTLE_SECONDS = _env_int("SMS_RECONCILE_SETTLE_SECONDS", 60)
    # A reminder without a delivery receipt this long falls back to the next contact.
    CONTACT_FALLBACK_AFTER_MINUTES = _env_int("CONTACT_FALLBACK_AFTER_MINUTES", 120)
    SMS_RESPECT_QUIET_HOURS = _env_bool("SMS_RESPECT_QUIET_HOURS", True)
    SMS_MAX_LATENESS_HOURS = _env_int("SMS_MAX_LATENESS_HOURS", 12)
    # Retention (app/services/messaging/retention.py): final outbox messages unchanged for this
    # many days are archived (gzipped JSON lines) and deleted with their status history; audit
    # rows never are. 0 keeps everything; otherwise at least 30.
    RETENTION_DAYS = _env_int("RETENTION_DAYS", 0)
    RETENTION_ARCHIVE_DIR = _env("RETENTION_ARCHIVE_DIR", str(INSTANCE_DIR / "archive"))
    JOBS_DISPATCH_SECONDS = _env_int("JOBS_DISPATCH_SECONDS", 60)
    JOBS_RECONCILE_SECONDS = _env_int("JOBS_RECONCILE_SECONDS", 300)
    # How often the jobs process looks for bulk work started from a page (re-plan all, exports).
    JOBS_BULK_SECONDS = _env_int("JOBS_BULK_SECONDS", 5)

    CHECKIN_SEND_AT = _env("CHECKIN_SEND_AT", "10:00")
    CHECKIN_REMINDER_HOURS = _env_int("CHECKIN_REMINDER_HOURS", 24)
    CHECKIN_CALL_TASK_DAYS = _env_int("CHECKIN_CALL_TASK_DAYS", 2)
    CHECKIN_LINK_HOURS = _env_int("CHECKIN_LINK_HOURS", 96)
    CHECKIN_JOB_SECONDS = _env_int("CHECKIN_JOB_SECONDS", 300)

    LOGIN_RATE_LIMIT = _env("LOGIN_RATE_LIMIT", "10 per minute;60 per hour")
    # Failed sign-ins per (username, client address): never per username alone, so failures from
    # one address cannot lock the real user out from every address.
    LOGIN_USER_RATE_LIMIT = _env("LOGIN_USER_RATE_LIMIT", "5 per 15 minutes")
    # Minimum zxcvbn score (0-4) of a new password.
    PASSWORD_MIN_SCORE = _env_int("PASSWORD_MIN_SCORE", 3)
    ARGON2_TIME_COST = _env_int("ARGON2_TIME_COST", 3)
    ARGON2_MEMORY_COST = _env_int("ARGON2_MEMORY_COST", 65536)
    ARGON2_PARALLELISM = _env_int("ARGON2_PARALLELISM", 4)

    # Patient replies, alerts and escalation (app/services/{replies,alerts,escalation}.py).
    ESCALATION_RED_FIRST_MINUTES = _env_int("ESCALATION_RED_FIRST_MINUTES", 15)
    ESCALATION_RED_REPEAT_MINUTES = _env_int("ESCALATION_RED_REPEAT_MINUTES", 15)
    # Amber counts hours of nurse on-call cover (the rota, any day); the old *_WORKING_HOURS
    # names are still read when the new ones are not set.
    ESCALATION_AMBER_HOURS = float(
        _env("ESCALATION_AMBER_HOURS", _env("ESCALATION_AMBER_WORKING_HOURS", "4")) or 4
    )
    ESCALATION_AMBER_REPEAT_HOURS = float(
        _env("ESCALATION_AMBER_REPEAT_HOURS", _env("ESCALATION_AMBER_REPEAT_WORKING_HOURS", "4"))
        or 4
    )
    ESCALATION_GREEN_REVIEW_WORKING_HOURS = float(
        _env("ESCALATION_GREEN_REVIEW_WORKING_HOURS", "8") or 8
    )
    ESCALATION_WORKING_HOURS = _env("ESCALATION_WORKING_HOURS", "08:00-17:00")
    ESCALATION_FALLBACK_PHONE = _env("ESCALATION_FALLBACK_PHONE")
    ESCALATION_PAGE_NOW = _env_bool("ESCALATION_PAGE_NOW", True)
    ESCALATION_JOB_SECONDS = _env_int("ESCALATION_JOB_SECONDS", 60)
    ESCALATION_STALE_INBOUND_SECONDS = _env_int("ESCALATION_STALE_INBOUND_SECONDS", 120)
    ESCALATION_HISTORY_DAYS = _env_int("ESCALATION_HISTORY_DAYS", 30)
    # PostgreSQL, opt-in: the commit of an inbound SMS's interpretation does not wait for the WAL
    # flush (the message's own commit before it does): app/services/conversations/inbound/replies.py.
    # Off by default: after a database crash a redone interpretation could answer a patient twice.
    INBOUND_ASYNC_COMMIT = _env_bool("INBOUND_ASYNC_COMMIT", False)

    # Hardening: request bounds, production refusals, readiness, logging (app/configuration.py,
    # app/web/health.py, app/logging_setup.py). werkzeug answers 413 above these limits.
    CADENCE_ENV = "development"
    MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 64 * 1024)
    MAX_FORM_MEMORY_SIZE = _env_int("MAX_FORM_MEMORY_SIZE", 64 * 1024)
    MAX_FORM_PARTS = _env_int("MAX_FORM_PARTS", 300)
    ALLOW_CONSOLE_SMS = _env_bool("ALLOW_CONSOLE_SMS", False)
    # None: HSTS for a year when SESSION_COOKIE_SECURE is on, else none; 0 never sends it.
    HSTS_SECONDS = _env_int("HSTS_SECONDS", 0) if _env("HSTS_SECONDS") else None
    JOBS_HEARTBEAT_SECONDS = _env_int("JOBS_HEARTBEAT_SECONDS", 30)
    JOBS_HEARTBEAT_MAX_AGE_SECONDS = _env_int("JOBS_HEARTBEAT_MAX_AGE_SECONDS", 180)
    JOBS_HEARTBEAT_REQUIRED = _env_bool("JOBS_HEARTBEAT_REQUIRED", False)
    LOG_LEVEL = _env("LOG_LEVEL", "INFO")


class DevelopmentConfig(Config):
    """Local development: SQLite file, console SMS gateway."""

    DEBUG = False


class ProductionConfig(Config):
    """Production: no console SMS by default, secure cookies, HSTS, a jobs heartbeat required."""

    CADENCE_ENV = "production"
    SMS_BACKEND = _env("SMS_BACKEND")
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
    HSTS_SECONDS = _env_int("HSTS_SECONDS", 31536000)
    JOBS_HEARTBEAT_REQUIRED = _env_bool("JOBS_HEARTBEAT_REQUIRED", True)


class TestConfig(Config):
    """Tests: database from TEST_DATABASE_URL (default in-memory-like SQLite file per run)."""

    TESTING = True
    CADENCE_ENV = "test"
    SECRET_KEY = "test-secret-key-not-for-production"
    SQLALCHEMY_DATABASE_URI = normalise_database_url(
        _env("TEST_DATABASE_URL", "sqlite:///" + str(INSTANCE_DIR / "test.sqlite3"))
    )
    SMS_BACKEND = "console"
    RATELIMIT_STORAGE_URI = "database://"
    ESCALATION_PAGE_NOW = False


CONFIGS = {"development": DevelopmentConfig, "test": TestConfig, "production": ProductionConfig}
