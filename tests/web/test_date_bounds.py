"""Every date input is bounded: extreme dates get a clear message, never a 500 (OverflowError)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.domain.dates import DateInputError, DateRange, input_range, parse_bounded
from app.domain.patients import EnrolmentError, EnrolmentRequest
from app.extensions import db
from app.models import Patient
from app.services.schedule.patients import enrol_patient
from app.web.helpers import clinic_today
from tests.web.conftest import post
from tests.web.test_patients import _valid_form

ACCEPTED = "is not accepted: use a date between"


@pytest.mark.parametrize(
    "url",
    [
        "/calendar/week?start=9999-12-31",
        "/calendar/week?start=0001-01-01",
        "/messages/?from=0001-01-01&to=9999-12-31",
        "/audit/?from=0001-01-01&to=9999-12-31",
    ],
)
def test_extreme_dates_in_query_strings_are_refused_with_a_message(
    english_nurse: FlaskClient, url: str
) -> None:
    response = english_nurse.get(url)

    assert response.status_code == 200
    assert ACCEPTED in response.get_data(as_text=True)


def test_an_extreme_calendar_day_goes_to_this_week_with_a_message(
    english_nurse: FlaskClient,
) -> None:
    response = english_nurse.get("/calendar/day/0001-01-01", follow_redirects=True)

    assert response.status_code == 200
    assert "The date 0001-01-01 " + ACCEPTED in response.get_data(as_text=True)
    assert english_nurse.get("/calendar/day/not-a-date").status_code == 404


def test_a_stop_decision_preview_far_in_the_future_is_refused(
    english_nurse: FlaskClient, patient: Patient
) -> None:
    url = f"/patients/{patient.study_id}/decisions/stop"

    response = post(english_nurse, url, {"on": "9999-12-31", "step": "preview"})

    assert response.status_code == 400
    assert "Use a date between" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "start",
    [
        date(9999, 12, 31),
        date(1900, 1, 1),
        "today+2y",
        "today-400d",
    ],
)
def test_enrolment_start_dates_outside_a_year_back_to_90_days_ahead_are_refused(
    english_nurse: FlaskClient, start: date | str
) -> None:
    today = clinic_today()
    if start == "today+2y":
        start = today + timedelta(days=730)
    elif start == "today-400d":
        start = today - timedelta(days=400)
    assert isinstance(start, date)

    response = post(english_nurse, "/patients/new", _valid_form(start_date=start.isoformat()))

    assert response.status_code in (200, 400, 422)
    earliest, latest = today - timedelta(days=365), today + timedelta(days=90)
    assert f"Use a date between {earliest} and {latest}." in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Patient)) == 0


def test_the_enrolment_service_refuses_implausible_dates_too(app_ctx: Flask) -> None:
    today = date(2026, 3, 1)
    request = EnrolmentRequest(
        study_id="JSCH-090", initials="WL", phone="13800138000",
        choices={"pd1": "sintilimab", "chemo": "docetaxel"}, start_date=date(2026, 6, 1),
        sms_consent=True, sms_consent_date=date(1900, 1, 1), recurrence_date=date(2026, 1, 5),
    )  # fmt: skip

    with pytest.raises(EnrolmentError) as refused:
        enrol_patient(request, actor="test", today=today)

    assert set(refused.value.errors) == {"start_date", "sms_consent_date"}
    assert "2025-03-01 and 2026-05-30" in refused.value.errors["start_date"]


def test_the_cli_refuses_extreme_dates_with_a_clear_message(app_ctx: Flask) -> None:
    runner = app_ctx.test_cli_runner()
    today = clinic_today()

    preview = runner.invoke(
        args=["calendar", "preview", "--pd1", "sintilimab", "--chemo", "docetaxel",
              "--start", "9999-12-31"]
    )  # fmt: skip
    enrolled = runner.invoke(
        args=["patients", "enrol", "--study-id", "JSCH-300", "--initials", "ab",
              "--phone", "139 0000 1234", "--pd1", "camrelizumab", "--chemo", "irinotecan",
              "--start", (today + timedelta(days=200)).isoformat(),
              "--consent-date", today.isoformat()]
    )  # fmt: skip
    send = runner.invoke(args=["sms", "send-due", "--now", "9999-12-31T08:00", "--dry-run"])

    assert preview.exit_code == 2 and "9999-12-31 is outside" in preview.output
    assert enrolled.exit_code != 0 and "must be between" in enrolled.output
    assert send.exit_code == 2 and "9999-12-31 is outside" in send.output


def test_the_shared_parser_bounds_and_never_overflows() -> None:
    today = date(2026, 3, 1)
    allowed = input_range(today, 10)

    assert parse_bounded("2030-01-01", allowed) == date(2030, 1, 1)
    for text, kind in (("9999-12-31", "range"), ("0001-01-01", "range"), ("2026-3-1", "format")):
        with pytest.raises(DateInputError) as refused:
            parse_bounded(text, allowed)
        assert refused.value.kind == kind
    assert input_range(date(9999, 12, 1), 10) == DateRange(date(9989, 12, 1), date.max)
