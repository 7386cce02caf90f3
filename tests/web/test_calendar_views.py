"""Month, week and day views across patients: load per day, filters, clashes, closed days."""

from __future__ import annotations

import re
from datetime import date, timedelta

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import CalendarEvent
from app.services.schedule import queries as sq
from app.services.shared.protocols import clinic_working_days
from app.web.helpers import clinic_today
from tests.web.conftest import enrol


def _day_total(html: str, day: date) -> int:
    cell = re.search(rf'data-day="{day.isoformat()}">(.*?)</td>', html, re.S)
    assert cell, f"no cell for {day}"
    total = re.search(r'class="tot">(\d+)<', cell.group(1))
    return int(total.group(1)) if total else 0


def _events_on(day: date, kind: str | None = None) -> int:
    query = select(func.count(CalendarEvent.id)).where(
        CalendarEvent.date == day, CalendarEvent.status != "cancelled"
    )
    if kind:
        query = query.where(CalendarEvent.kind == kind)
    return db.session.scalar(query) or 0


def _first_infusion_day() -> date:
    return db.session.scalar(
        select(CalendarEvent.date).where(CalendarEvent.key == "induction.c1.infusion")
    )


def test_month_shows_the_load_of_each_day(english_nurse: FlaskClient) -> None:
    start = clinic_today() + timedelta(days=3)
    enrol("JSCH-001", start=start)
    enrol("JSCH-002", start=start)
    day = _first_infusion_day()
    html = english_nurse.get(f"/calendar/month?month={day:%Y-%m}").get_data(as_text=True)
    assert _day_total(html, day) == _events_on(day) >= 2
    assert "2 patients" in html


def test_month_filter_by_kind_and_phase(english_nurse: FlaskClient) -> None:
    enrol("JSCH-001")
    day = _first_infusion_day()
    url = f"/calendar/month?month={day:%Y-%m}"
    infusions = english_nurse.get(f"{url}&kind=infusion").get_data(as_text=True)
    assert _day_total(infusions, day) == _events_on(day, "infusion") == 1
    labs_only = english_nurse.get(f"{url}&kind=labs&phase=maintenance").get_data(as_text=True)
    assert _day_total(labs_only, day) == 0
    ignored = english_nurse.get(f"{url}&kind=<script>").get_data(as_text=True)
    assert _day_total(ignored, day) == _events_on(day)


def test_month_marks_clashes_and_closed_days(english_nurse: FlaskClient) -> None:
    patient = enrol("JSCH-001")
    day = _first_infusion_day()
    c2 = next(e for e in patient.events if e.key == "induction.c2.infusion")
    c2.date = day  # a second infusion on the same day: a clash
    db.session.commit()
    html = english_nurse.get(f"/calendar/month?month={day:%Y-%m}").get_data(as_text=True)
    cell = re.search(rf'data-day="{day.isoformat()}">(.*?)</td>', html, re.S).group(1)
    assert "1 clash" in cell
    working = clinic_working_days()
    closed = next(
        day + timedelta(days=i)
        for i in range(1, 10)
        if not working.is_working_day(day + timedelta(days=i))
    )
    assert re.search(rf'class="[^"]*closed[^"]*" data-day="{closed.isoformat()}"', html)


def test_month_navigation_and_bad_month(english_nurse: FlaskClient) -> None:
    html = english_nurse.get("/calendar/month?month=2026-02").get_data(as_text=True)
    assert "February 2026" in html
    assert "month=2026-01" in html and "month=2026-03" in html
    assert english_nurse.get("/calendar/month?month=garbage").status_code == 200
    far = english_nurse.get("/calendar/month?month=0001-01")
    assert far.status_code == 200 and "The date 0001-01 is not accepted" in far.get_data(
        as_text=True
    )
    assert english_nurse.get("/calendar/").status_code == 302


def test_week_lists_events_with_patient_links(english_nurse: FlaskClient) -> None:
    enrol("JSCH-001")
    day = _first_infusion_day()
    html = english_nurse.get(f"/calendar/week?start={day.isoformat()}").get_data(as_text=True)
    assert 'href="/patients/JSCH-001/events/induction.c1.infusion"' in html
    monday = day - timedelta(days=day.weekday())
    assert f'data-day="{monday.isoformat()}"' in html
    assert f'data-day="{(monday + timedelta(days=6)).isoformat()}"' in html


def test_week_cuts_busy_days_and_links_to_the_day(english_nurse: FlaskClient) -> None:
    start = clinic_today() + timedelta(days=3)
    for i in range(55):
        enrol(f"P-{i:03d}", start=start)
    day = _first_infusion_day()
    html = english_nurse.get(f"/calendar/week?start={day.isoformat()}").get_data(as_text=True)
    total = _events_on(day)
    assert total > 40
    assert f"+ {total - 40} more" in html
    page = english_nurse.get(f"/calendar/day/{day.isoformat()}").get_data(as_text=True)
    assert f"1–50 of {total}" in page
    second = english_nurse.get(f"/calendar/day/{day.isoformat()}?page=2").get_data(as_text=True)
    assert f"51–{total} of {total}" in second


def test_day_view_filters_and_bad_dates(english_nurse: FlaskClient) -> None:
    enrol("JSCH-001")
    day = _first_infusion_day()
    html = english_nurse.get(f"/calendar/day/{day.isoformat()}?kind=infusion").get_data(
        as_text=True
    )
    assert html.count("/events/induction.c1.infusion") >= 1
    assert "/events/induction.c1.labs" not in html
    assert english_nurse.get("/calendar/day/2026-13-45").status_code == 404


def test_calendar_in_chinese(nurse: FlaskClient) -> None:
    html = nurse.get("/calendar/month?month=2026-03").get_data(as_text=True)
    assert "2026年3月" in html
    assert "周一" in html


def test_the_clinic_list_shows_tomorrows_patients_with_visits_and_preparation(
    nurse: FlaskClient,
) -> None:
    """The printable day list: who comes, the visits, arrival time and preparation."""
    tomorrow = clinic_today() + timedelta(days=1)
    patient = enrol("JSCH-301", start=tomorrow)
    html = nurse.get("/calendar/clinic-list").get_data(as_text=True)
    assert 'id="clinic-JSCH-301"' in html and "data-print" in html
    infusion = next(e for e in patient.events if e.kind == "infusion" and e.date == tomorrow)
    assert infusion.title_zh in html
    empty = nurse.get(f"/calendar/clinic-list?day={(tomorrow + timedelta(days=1)).isoformat()}")
    assert 'id="clinic-empty"' in empty.get_data(as_text=True)
    assert nurse.get("/calendar/clinic-list?day=not-a-date").status_code == 404


def test_the_clinic_list_rows_share_texts_but_keep_their_own_patient(
    english_nurse: FlaskClient,
) -> None:
    """Texts worked out once a page (kind labels, fasting lines) still land on every row."""
    start = clinic_today() + timedelta(days=5)
    for study_id in ("JSCH-312", "JSCH-311"):
        enrol(study_id, start=start)
    labs = _open_event("labs")
    html = english_nurse.get(f"/calendar/clinic-list?day={labs.date.isoformat()}").get_data(
        as_text=True
    )
    rows = re.findall(r'<tr id="clinic-(JSCH-31\d)">(.*?)</tr>', html, re.S)
    assert [study_id for study_id, _row in rows] == ["JSCH-311", "JSCH-312"]
    for study_id, row in rows:
        assert f'href="/patients/{study_id}"' in row
        assert '<span class="chip kind kind-labs">Blood tests</span>' in row
        assert f"{labs.title_en}: Nothing to eat for 8 h before (water allowed)" in row
        assert "Last meal by 23:30 the day before" in row


def _open_event(code: str) -> CalendarEvent:
    return db.session.scalars(
        select(CalendarEvent)
        .where(CalendarEvent.key.contains(code), CalendarEvent.status == "planned")
        .order_by(CalendarEvent.date)
    ).first()


def test_the_clinic_list_states_fasting_from_the_protocol_with_the_last_meal(
    english_nurse: FlaskClient,
) -> None:
    """Biochemistry labs: 8 h without food, water allowed; arriving 07:30: last meal 23:30."""
    enrol("JSCH-302", start=clinic_today() + timedelta(days=5))
    labs = _open_event("labs")
    assert labs.details["fasting"] == {"food_hours": 8, "water_hours": 0}
    html = english_nurse.get(f"/calendar/clinic-list?day={labs.date.isoformat()}").get_data(
        as_text=True
    )
    row = re.search(r'<tr id="clinic-JSCH-302">(.*?)</tr>', html, re.S)
    assert row is not None
    cell = re.search(r'<td class="fasting">(.*?)</td>', row.group(1), re.S).group(1)
    assert "Nothing to eat for 8 h before (water allowed)" in cell
    assert "Last meal by 23:30 the day before" in cell
    assert "Fasting and contrast" in html


def test_the_clinic_list_states_the_barium_swallow_fast_and_contrast(nurse: FlaskClient) -> None:
    """Barium swallow: 6 h without food or drink, barium contrast; in Chinese for a zh nurse."""
    enrol("JSCH-303", start=clinic_today() + timedelta(days=5))
    barium = _open_event("barium_swallow")
    assert barium.details.get("contrast") == "barium"
    html = nurse.get(f"/calendar/clinic-list?day={barium.date.isoformat()}").get_data(as_text=True)
    row = re.search(r'<tr id="clinic-JSCH-303">(.*?)</tr>', html, re.S)
    cell = re.search(r'<td class="fasting">(.*?)</td>', row.group(1), re.S).group(1)
    assert barium.title_zh in cell
    # The labs of the same day come first (07:30, 8 h without food); the barium swallow needs
    # 6 h without drinking: last meal 23:30 the day before, last drink 01:30.
    assert "23:30" in cell and "01:30" in cell and "6" in cell
    assert not re.search(r"[A-Za-z]{3,}", re.sub(r"<[^>]+>", "", cell))


def test_a_day_without_fasting_tests_says_so(english_nurse: FlaskClient) -> None:
    tomorrow = clinic_today() + timedelta(days=1)
    enrol("JSCH-304", start=tomorrow)
    html = english_nurse.get("/calendar/clinic-list").get_data(as_text=True)
    row = re.search(r'<tr id="clinic-JSCH-304">(.*?)</tr>', html, re.S)
    assert "No fasting" in row.group(1)


def test_week_and_day_lists_keep_the_first_events_of_each_day_in_order(
    english_nurse: FlaskClient,
) -> None:
    """The per-day cut (ids first, then the rows) keeps date, kind order, study id."""
    start = clinic_today() + timedelta(days=3)
    for study_id in ("JSCH-003", "JSCH-001", "JSCH-002"):
        enrol(study_id, start=start)
    first = _first_infusion_day() - timedelta(days=3)
    whole = sq.events_between(first, first + timedelta(days=6))
    rank = {kind: i for i, kind in enumerate(sq.KIND_DISPLAY_ORDER)}
    keys = [(r.date, rank.get(r.kind, len(rank)), r.study_id, r.id) for r in whole]
    assert keys == sorted(keys) and len({r.kind for r in whole}) > 1
    assert [r.study_id for r in whole if r.kind == "infusion"][:3] == ["JSCH-001", "JSCH-002",
                                                                       "JSCH-003"]  # fmt: skip
    assert sq.events_between(first, first + timedelta(days=6), limit=5) == whole[:5]
    assert sq.count_between(first, first + timedelta(days=6)) == len(whole)

    week = sq.week_events(first, sq.Filters(), per_day=2)
    for day, (rows, total) in week.items():
        of_day = [r for r in whole if r.date == day]
        assert rows == of_day[:2] and total == len(of_day)
    assert any(total > 2 for _rows, total in week.values())


def test_the_week_cuts_each_day_after_its_first_events_in_kind_order(
    english_nurse: FlaskClient,
) -> None:
    """Only the kinds that can be among a day's first events are numbered: the cut falls
    inside a kind, at a kind's end and past every kind of a day with several kinds."""
    start = clinic_today() + timedelta(days=10)
    for offset, study_id in ((0, "JSCH-003"), (0, "JSCH-004"), (1, "JSCH-001"), (3, "JSCH-002")):
        enrol(study_id, start=start + timedelta(days=offset))
    first = start - timedelta(days=3)
    whole = sq.events_between(first, first + timedelta(days=6))
    assert max(len({r.kind for r in whole if r.date == d}) for d in {r.date for r in whole}) >= 3
    for per_day in (1, 2, 3, 4, 5, 40):
        week = sq.week_events(first, sq.Filters(), per_day=per_day)
        for day, (rows, total) in week.items():
            of_day = [r for r in whole if r.date == day]
            assert rows == of_day[:per_day] and total == len(of_day)
    labs = sq.week_events(first, sq.Filters(kinds=("labs", "premedication")), per_day=1)
    for day, (rows, total) in labs.items():
        of_day = [r for r in whole if r.date == day and r.kind in ("labs", "premedication")]
        assert rows == of_day[:1] and total == len(of_day)
