"""Exports: the iCalendar file and the printable page, in the patient's language."""

from __future__ import annotations

from datetime import date, timedelta

from flask.testing import FlaskClient
from icalendar import Calendar

from app.extensions import db
from app.models import Patient
from app.web.helpers import clinic_today
from tests.web.conftest import enrol


def _ics(client: FlaskClient, patient: Patient) -> Calendar:
    response = client.get(f"/patients/{patient.study_id}/calendar.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    return Calendar.from_ical(response.data)


def test_ics_has_every_open_event_on_its_day(english_nurse: FlaskClient, patient: Patient) -> None:
    cal = _ics(english_nurse, patient)
    events = cal.walk("VEVENT")
    expected = {e.key: e for e in patient.events if e.status in ("planned", "confirmed", "done")}
    assert len(events) == len(expected)
    for item in events:
        key = str(item["UID"]).split(".")[:-1]
        event = expected[".".join(key)]
        start = item.decoded("DTSTART")
        assert isinstance(start, date) and start == event.date
        assert item.decoded("DTEND") == event.date + timedelta(days=1)
    assert str(cal["X-WR-TIMEZONE"]) == "Asia/Shanghai"
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Asia/Shanghai"]
    stamp = events[0].decoded("DTSTAMP")
    assert stamp.utcoffset() == timedelta(0)


def test_ics_is_in_the_patients_language_and_stable(
    english_nurse: FlaskClient, patient: Patient
) -> None:
    first = _ics(english_nurse, patient)
    summaries = [str(e["SUMMARY"]) for e in first.walk("VEVENT")]
    assert any("诱导治疗第1周期" in s for s in summaries)  # zh patient, English nurse
    again = _ics(english_nurse, patient)
    assert [str(e["UID"]) for e in first.walk("VEVENT")] == [
        str(e["UID"]) for e in again.walk("VEVENT")
    ]


def test_ics_leaves_out_cancelled_events_and_keeps_other_time_zones(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol("JSCH-201", locale="en")
    patient.timezone = "Europe/London"
    patient.events[0].status = "cancelled"
    db.session.commit()
    cal = _ics(english_nurse, patient)
    assert len(cal.walk("VEVENT")) == len(patient.events) - 1
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/London"]
    assert any("Induction cycle 1" in str(e["SUMMARY"]) for e in cal.walk("VEVENT"))


def test_printable_page_is_in_the_patients_language(
    english_nurse: FlaskClient, patient: Patient
) -> None:
    html = english_nurse.get(f"/patients/{patient.study_id}/print").get_data(as_text=True)
    assert "我的治疗日历" in html
    assert '<html lang="zh-CN">' in html
    assert "+86 25 8328 3400" in html
    assert "Back to the patient" in html  # the toolbar stays in the nurse's language
    assert "诱导治疗第1周期" in html
    assert 'class="mainnav"' not in html


def test_printable_page_fits_on_one_page(english_nurse: FlaskClient) -> None:
    patient = enrol("JSCH-202", start=clinic_today() - timedelta(days=1), locale="en")
    html = english_nurse.get(f"/patients/{patient.study_id}/print?weeks=26").get_data(as_text=True)
    assert "My treatment calendar" in html
    assert html.count('<tr class="k-') <= 30
    assert "your nurse will give you the next calendar" in html
    short = english_nurse.get(f"/patients/{patient.study_id}/print?weeks=4").get_data(as_text=True)
    assert short.count('<tr class="k-') < html.count('<tr class="k-')


def test_exports_need_sign_in_and_a_known_patient(client: FlaskClient, patient: Patient) -> None:
    assert client.get(f"/patients/{patient.study_id}/calendar.ics").status_code == 302
    assert client.get(f"/patients/{patient.study_id}/print").status_code == 302
