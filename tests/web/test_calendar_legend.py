"""Calendar legend and filters: a sign (icon and letter) per kind, patient and kind filters,
the day-load bar explained, whole titles in the week view."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.domain.calendar import KINDS
from app.extensions import db
from app.models import CalendarEvent, Patient
from app.web.helpers import clinic_today
from app.web.kind_signs import KIND_LETTERS
from tests.web.conftest import enrol

CSS = Path(__file__).resolve().parents[2] / "app" / "static" / "css" / "app.css"


def _first_infusion_day(study_id: str):
    return db.session.scalar(
        select(CalendarEvent.date)
        .join(Patient, Patient.id == CalendarEvent.patient_id)
        .where(Patient.study_id == study_id, CalendarEvent.key == "induction.c1.infusion")
    )


def _cell(html: str, day) -> str:
    cell = re.search(rf'data-day="{day.isoformat()}">(.*?)</td>', html, re.S)
    assert cell, day
    return cell.group(1)


def _total(cell: str) -> int:
    found = re.search(r'class="tot">(\d+)<', cell)
    return int(found.group(1)) if found else 0


def test_every_kind_has_its_own_letter_in_each_language() -> None:
    assert set(KIND_LETTERS) == set(KINDS)
    for lang in ("en", "zh"):
        letters = [KIND_LETTERS[k][lang] for k in KINDS]
        assert len(set(letters)) == len(letters), lang
    assert all(re.fullmatch(r"[A-Z]", KIND_LETTERS[k]["en"]) for k in KINDS)
    assert all(re.fullmatch(r"[\u4e00-\u9fff]", KIND_LETTERS[k]["zh"]) for k in KINDS)


@pytest.mark.parametrize(("who", "lang"), [("english_nurse", "en"), ("nurse", "zh")])
def test_the_legend_gives_an_icon_and_a_letter_for_every_kind(
    who: str, lang: str, request: pytest.FixtureRequest
) -> None:
    client: FlaskClient = request.getfixturevalue(who)
    enrol("JSCH-401")
    for view in ("month", "week", f"day/{clinic_today().isoformat()}"):
        html = client.get(f"/calendar/{view}").get_data(as_text=True)
        legend = re.search(r'id="calendar-legend"(.*?)</section>', html, re.S).group(1)
        for kind in KINDS:
            item = re.search(rf'<li data-kind="{kind}">(.*?)</li>', legend, re.S)
            assert item is not None, (view, kind)
            assert f'<use href="#ki-{kind}">' in item.group(1)
            assert f"<b>{KIND_LETTERS[kind][lang]}</b>" in item.group(1)
            assert f'<symbol id="ki-{kind}"' in html  # the icon is drawn on the page


def test_month_cells_show_the_sign_of_each_kind(english_nurse: FlaskClient) -> None:
    enrol("JSCH-402")
    day = _first_infusion_day("JSCH-402")
    html = english_nurse.get(f"/calendar/month?month={day:%Y-%m}").get_data(as_text=True)
    cell = _cell(html, day)
    sign = re.search(
        r'<span class="kcount" data-kind="infusion">(.*?)</span>(\d+)</span>', cell, re.S
    )
    assert sign is not None and "<b>I</b>" in sign.group(1) and sign.group(2) == "1"


def test_filter_by_patient_shows_only_that_patients_events(english_nurse: FlaskClient) -> None:
    start = clinic_today() + timedelta(days=3)
    enrol("JSCH-403", start=start)
    enrol("JSCH-404", start=start)
    day = _first_infusion_day("JSCH-403")
    url = f"/calendar/month?month={day:%Y-%m}"
    both = _total(_cell(english_nurse.get(url).get_data(as_text=True), day))
    html = english_nurse.get(f"{url}&patient=jsch-403").get_data(as_text=True)
    one = _total(_cell(html, day))
    own = db.session.scalar(
        select(func.count(CalendarEvent.id))
        .join(Patient, Patient.id == CalendarEvent.patient_id)
        .where(Patient.study_id == "JSCH-403", CalendarEvent.date == day,
               CalendarEvent.status != "cancelled")
    )  # fmt: skip
    assert both == 2 * own and one == own > 0
    assert 'value="JSCH-403"' in html and 'id="patient-filter-note"' in html
    # The filter follows the navigation (next month, week and day views).
    assert re.search(
        r'href="/calendar/month\?month=[^"]*patient=JSCH-403[^"]*" aria-label="Next month"', html
    )
    assert re.search(r'href="/calendar/week\?start=[^"]*patient=JSCH-403', html)
    week = english_nurse.get(f"/calendar/week?start={day.isoformat()}&patient=JSCH-403")
    text = week.get_data(as_text=True)
    assert "JSCH-403" in text and "JSCH-404" not in text
    day_page = english_nurse.get(f"/calendar/day/{day.isoformat()}?patient=JSCH-404")
    assert "JSCH-403" not in day_page.get_data(as_text=True).split('id="day-events"')[1]


def test_an_unknown_patient_is_said_and_every_patient_shown(english_nurse: FlaskClient) -> None:
    enrol("JSCH-405")
    day = _first_infusion_day("JSCH-405")
    html = english_nurse.get(f"/calendar/month?month={day:%Y-%m}&patient=NOPE-1").get_data(
        as_text=True
    )
    assert "No patient has the study id NOPE-1: every patient is shown." in html
    assert _total(_cell(html, day)) > 0


def test_filter_by_several_kinds(english_nurse: FlaskClient) -> None:
    enrol("JSCH-406")
    day = _first_infusion_day("JSCH-406")
    url = f"/calendar/month?month={day:%Y-%m}"
    by_kind = {
        kind: _total(_cell(english_nurse.get(f"{url}&kind={kind}").get_data(as_text=True), day))
        for kind in ("infusion", "premedication", "checkin")
    }
    assert by_kind["infusion"] == 1
    html = english_nurse.get(f"{url}&kind=infusion&kind=premedication").get_data(as_text=True)
    assert _total(_cell(html, day)) == by_kind["infusion"] + by_kind["premedication"]
    checked = re.findall(r'name="kind" value="(\w+)" checked', html)
    assert checked == ["infusion", "premedication"]


def test_the_day_load_bar_is_explained(english_nurse: FlaskClient) -> None:
    enrol("JSCH-407")
    day = _first_infusion_day("JSCH-407")
    html = english_nurse.get(f"/calendar/month?month={day:%Y-%m}").get_data(as_text=True)
    busiest = max(int(n) for n in re.findall(r'class="tot">(\d+)<', html))
    explained = re.search(r'<li id="legend-load">(.*?)</li>', html, re.S).group(1)
    assert f"the busiest day of this month ({busiest} events" in explained
    assert re.search(rf'title="Day load: {_total(_cell(html, day))} of {busiest} events', html)


def test_the_week_view_shows_whole_titles(english_nurse: FlaskClient) -> None:
    patient = enrol("JSCH-408")
    event = next(e for e in patient.events if e.kind == "labs")
    event.title_en = "Blood tests before cycle 1: blood count, liver, renal and thyroid function"
    db.session.commit()
    html = english_nurse.get(f"/calendar/week?start={event.date.isoformat()}").get_data(
        as_text=True
    )
    assert f'<span class="t">{event.title_en}</span>' in html
    rules = re.findall(r"\.wlist[^{]*\{[^}]*\}", CSS.read_text(encoding="utf-8"))
    assert rules and not any("ellipsis" in r or "nowrap" in r for r in rules)
