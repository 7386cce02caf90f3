"""Validation of enrolment data: pure, so the web form, the CLI and the demo share one set of rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from app.domain.dates import DateRange
from app.domain.protocol import Protocol

LOCALES = ("zh", "en")
STUDY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,31}$")
# Pinyin initials only: a name in characters would show in every list (data minimisation).
INITIALS_PATTERN = re.compile(r"^[A-Z]{2,4}$")


class EnrolmentError(ValueError):
    """Invalid enrolment data; `errors` maps each bad field to a message a nurse can act on."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class InvalidPhoneNumber(ValueError):
    """A mobile number that cannot be used for SMS."""


@dataclass(frozen=True)
class EnrolmentRequest:
    """What a nurse enters to enrol a patient."""

    study_id: str
    initials: str
    phone: str
    choices: Mapping[str, str]
    start_date: date | None
    sms_consent: bool = False
    sms_consent_date: date | None = None
    # PIPL Art. 28-29: processing sensitive health information (symptom check-ins, replies
    # about symptoms) needs its own consent, separate from the SMS consent.
    health_consent: bool = False
    locale: str = "zh"
    timezone: str = "Asia/Shanghai"
    recurrence_date: date | None = None
    started_before_cadence: bool = False
    phone_used_by: tuple[str, ...] = ()
    shared_phone_reason: str = ""


@dataclass(frozen=True)
class ValidEnrolment:
    """Enrolment data after validation and normalisation."""

    study_id: str
    initials: str
    phone_e164: str
    choices: dict[str, str]
    start_date: date
    sms_consent: bool
    sms_consent_date: date | None
    locale: str
    timezone: str
    recurrence_date: date | None
    warnings: list[str] = field(default_factory=list)
    started_before_cadence: bool = False
    shared_phone_reason: str = ""
    health_consent: bool = False


def normalise_phone(raw: str, default_region: str = "CN") -> str:
    """Parse a phone number typed by a person and return it as E.164, or raise InvalidPhoneNumber."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("a mobile number is required")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{text!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(f"{text!r} is not a valid number in region {default_region}")
    kind = phonenumbers.number_type(number)
    if kind not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidPhoneNumber(f"{text!r} is not a mobile number, so it cannot receive SMS")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_enrolment(
    request: EnrolmentRequest,
    protocol: Protocol,
    *,
    today: date,
    default_region: str = "CN",
    start_range: DateRange | None = None,
    date_range: DateRange | None = None,
) -> ValidEnrolment:
    """Check every field of an enrolment and return normalised data, or raise EnrolmentError.

    ``start_range`` bounds the first infusion, ``date_range`` the other dates (None: unbounded).
    """
    errors: dict[str, str] = {}
    study_id = (request.study_id or "").strip()
    if not STUDY_ID_PATTERN.match(study_id):
        errors["study_id"] = "2-32 letters, digits, '-' or '_' (e.g. JSCH-001)"
    initials = (request.initials or "").strip().upper()
    if not INITIALS_PATTERN.match(initials):
        errors["initials"] = (
            "2-4 Latin letters: the pinyin initials (e.g. WL for 王丽), never the name itself, "
            "which would show in every list"
        )
    phone = ""
    try:
        phone = normalise_phone(request.phone, default_region)
    except InvalidPhoneNumber as exc:
        errors["phone"] = str(exc)
    choices: dict[str, str] = {}
    try:
        choices = protocol.validate_choices(request.choices)
    except ValueError as exc:
        errors["choices"] = str(exc)
    if request.start_date is None:
        errors["start_date"] = "the date of the first infusion is required"
    elif start_range is not None and request.start_date not in start_range:
        errors["start_date"] = _between("the first infusion", start_range)
    if request.locale not in LOCALES:
        errors["locale"] = f"expected one of {', '.join(LOCALES)}"
    try:
        ZoneInfo(request.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = f"unknown time zone {request.timezone!r}"
    _check_consent(request, today, errors)
    for name in ("recurrence_date", "sms_consent_date"):
        value = getattr(request, name)
        if (
            name not in errors
            and date_range is not None
            and value is not None
            and value not in date_range
        ):
            errors[name] = _between("the date", date_range)
    _check_dates(request, today, errors)
    warnings = _check_shared_phone(request, errors)
    if errors:
        raise EnrolmentError(errors)
    assert request.start_date is not None
    return ValidEnrolment(
        study_id=study_id,
        initials=initials,
        phone_e164=phone,
        choices=choices,
        start_date=request.start_date,
        sms_consent=request.sms_consent,
        sms_consent_date=request.sms_consent_date if request.sms_consent else None,
        health_consent=request.sms_consent and request.health_consent,
        locale=request.locale,
        timezone=request.timezone,
        recurrence_date=request.recurrence_date,
        warnings=warnings,
        started_before_cadence=request.started_before_cadence,
        shared_phone_reason=request.shared_phone_reason.strip(),
    )


def _between(what: str, date_range: DateRange) -> str:
    return (
        f"{what} must be between {date_range.earliest.isoformat()} "
        f"and {date_range.latest.isoformat()}"
    )


def _check_dates(request: EnrolmentRequest, today: date, errors: dict[str, str]) -> None:
    """Recurrence required and not after the start; consent not after the first infusion."""
    start = request.start_date
    if request.recurrence_date is None:
        errors["recurrence_date"] = (
            "the date of the recurrence is required (the primary endpoint is survival after it)"
        )
    elif start and request.recurrence_date > start and "recurrence_date" not in errors:
        errors["recurrence_date"] = "the recurrence cannot be after the first infusion"
    consent = request.sms_consent_date
    if start and consent and consent > start and "sms_consent_date" not in errors:
        errors["sms_consent_date"] = "consent cannot be dated after the first infusion"
    if (
        start
        and start < today
        and not request.started_before_cadence
        and "start_date" not in errors
    ):
        errors["start_date"] = (
            "the first infusion is in the past: confirm that this patient started before "
            "enrolment in Cadence (past events are then marked not tracked), or correct the date"
        )


def _check_shared_phone(request: EnrolmentRequest, errors: dict[str, str]) -> list[str]:
    """A number another patient uses needs a reason (e.g. a shared family phone)."""
    if not request.phone_used_by:
        return []
    others = ", ".join(request.phone_used_by)
    if not request.shared_phone_reason.strip():
        errors["phone"] = (
            f"this mobile number is already used by {others}: give a reason to share it "
            "(e.g. a family phone)"
        )
        return []
    return [f"mobile number shared with {others}: {request.shared_phone_reason.strip()}"]


def _check_consent(request: EnrolmentRequest, today: date, errors: dict[str, str]) -> None:
    if not request.sms_consent:
        errors["sms_consent"] = "SMS consent must be recorded before enrolment"
    elif request.sms_consent_date is None:
        errors["sms_consent_date"] = "the date consent was given is required"
    elif request.sms_consent_date > today:
        errors["sms_consent_date"] = "consent cannot be dated in the future"
