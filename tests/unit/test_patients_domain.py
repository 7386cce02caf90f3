"""Enrolment validation: phone numbers, consent, identifiers."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from app.domain.patients import (
    EnrolmentError,
    EnrolmentRequest,
    InvalidPhoneNumber,
    normalise_phone,
    validate_enrolment,
)
from app.domain.protocol import default_protocol_path, load_protocol

TODAY = date(2026, 3, 1)


@pytest.fixture(scope="module")
def protocol():
    return load_protocol(default_protocol_path())


def _request(**overrides: object) -> EnrolmentRequest:
    values: dict[str, object] = dict(
        study_id="JSCH-010",
        initials="wl",
        phone="138 0013 8000",
        choices={"pd1": "sintilimab", "chemo": "docetaxel"},
        start_date=date(2026, 3, 2),
        sms_consent=True,
        sms_consent_date=date(2026, 2, 27),
        recurrence_date=date(2026, 1, 20),
    )
    values.update(overrides)
    return EnrolmentRequest(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "+8613800138000"),
        ("138-0013-8000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("０１３８００１３８０００", "+8613800138000"),
        ("+44 7911 123456", "+447911123456"),
    ],
)
def test_phone_is_stored_as_e164(raw: str, expected: str) -> None:
    assert normalise_phone(raw, "CN") == expected


@pytest.mark.parametrize("raw", ["", "hello", "12345", "+86 25 8328 3400", "1380013800"])
def test_bad_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalise_phone(raw, "CN")


def test_valid_enrolment_is_normalised(protocol) -> None:
    valid = validate_enrolment(_request(), protocol, today=TODAY)
    assert valid.initials == "WL"
    assert valid.phone_e164 == "+8613800138000"
    assert valid.choices == {"pd1": "sintilimab", "chemo": "docetaxel"}


def test_every_bad_field_is_reported_at_once(protocol) -> None:
    with pytest.raises(EnrolmentError) as info:
        validate_enrolment(
            _request(
                study_id="!",
                initials="Wang Li Ming",
                phone="123",
                choices={"pd1": "aspirin"},
                sms_consent=False,
                locale="fr",
                timezone="Mars/Olympus",
            ),
            protocol,
            today=TODAY,
        )
    errors = info.value.errors
    assert set(errors) == {
        "study_id",
        "initials",
        "phone",
        "choices",
        "sms_consent",
        "locale",
        "timezone",
    }
    assert "aspirin" in errors["choices"] or "sintilimab" in errors["choices"]


def test_consent_date_is_required_and_not_in_future(protocol) -> None:
    with pytest.raises(EnrolmentError) as info:
        validate_enrolment(_request(sms_consent_date=None), protocol, today=TODAY)
    assert "sms_consent_date" in info.value.errors
    with pytest.raises(EnrolmentError) as info:
        validate_enrolment(_request(sms_consent_date=date(2026, 3, 5)), protocol, today=TODAY)
    assert "future" in info.value.errors["sms_consent_date"]


# -- issue 11: enrolment that protects the record ------------------------------------------------


@pytest.mark.parametrize("initials", ["王丽", "W", "WANGL", "W.L", "王L"])
def test_initials_are_2_to_4_pinyin_letters_only(protocol, initials: str) -> None:
    with pytest.raises(EnrolmentError) as info:
        validate_enrolment(_request(initials=initials), protocol, today=TODAY)
    assert "pinyin initials" in info.value.errors["initials"]
    assert "never the name" in info.value.errors["initials"]


def test_recurrence_date_is_required(protocol) -> None:
    with pytest.raises(EnrolmentError) as info:
        validate_enrolment(_request(recurrence_date=None), protocol, today=TODAY)
    assert "survival after it" in info.value.errors["recurrence_date"]


def test_consent_after_the_first_infusion_is_refused(protocol) -> None:
    with pytest.raises(EnrolmentError) as info:
        validate_enrolment(
            _request(start_date=date(2026, 3, 2), sms_consent_date=date(2026, 3, 3)),
            protocol,
            today=date(2026, 3, 5),
        )
    assert info.value.errors["sms_consent_date"] == (
        "consent cannot be dated after the first infusion"
    )


def test_a_past_first_infusion_needs_the_started_before_cadence_choice(protocol) -> None:
    past = _request(
        start_date=date(2025, 9, 1),
        sms_consent_date=date(2025, 8, 30),
        recurrence_date=date(2025, 8, 1),
    )
    with pytest.raises(EnrolmentError) as info:
        validate_enrolment(past, protocol, today=TODAY)
    assert "started before enrolment in Cadence" in info.value.errors["start_date"]
    valid = validate_enrolment(replace(past, started_before_cadence=True), protocol, today=TODAY)
    assert valid.started_before_cadence


def test_a_shared_phone_needs_a_reason_and_is_warned_about(protocol) -> None:
    with pytest.raises(EnrolmentError) as info:
        validate_enrolment(_request(phone_used_by=("JSCH-002",)), protocol, today=TODAY)
    assert "already used by JSCH-002" in info.value.errors["phone"]
    valid = validate_enrolment(
        _request(phone_used_by=("JSCH-002",), shared_phone_reason="husband's phone"),
        protocol,
        today=TODAY,
    )
    assert valid.warnings == ["mobile number shared with JSCH-002: husband's phone"]
    assert valid.shared_phone_reason == "husband's phone"
