"""The Today page: visits of today and tomorrow, overdue and flagged events, alerts."""

from __future__ import annotations

import re
from datetime import date, timedelta

from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Alert, AuditEntry, CalendarEvent
from app.services.dashboard import inbox_counts, overview
from app.services.schedule import queries as sq
from app.web.helpers import clinic_today
from tests.web.conftest import enrol, post


def _first_infusion():
    return db.session.scalars(
        select(CalendarEvent).where(CalendarEvent.key == "induction.c1.infusion")
    ).one()


def test_today_lists_todays_and_tomorrows_visits(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    patient = enrol("JSCH-001")
    infusion = _first_infusion()
    infusion.date = today
    labs = next(e for e in patient.events if e.key == "induction.c1.labs")
    labs.date = today + timedelta(days=1)
    db.session.commit()
    result = overview(today)
    assert [e.key for e in result.today.visits] == ["induction.c1.infusion"]
    assert "induction.c1.labs" in [e.key for e in result.tomorrow.visits]
    html = english_nurse.get("/").get_data(as_text=True)
    assert "/patients/JSCH-001/events/induction.c1.infusion" in html
    assert "/patients/JSCH-001/events/induction.c1.labs" in html


def test_overdue_events_are_those_past_their_window(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    enrol("JSCH-001", start=today - timedelta(days=40), enrolled_on=today - timedelta(days=42))
    result = overview(today)
    assert result.overdue_total > 0
    assert all(e.window_end < today and e.status == "planned" for e in result.overdue)
    assert all(e.kind not in ("checkin", "premedication") for e in result.overdue)
    html = english_nurse.get("/").get_data(as_text=True)
    assert "induction.c1.infusion" in html
    infusion = _first_infusion()
    infusion.status = "done"
    db.session.commit()
    assert "induction.c1.infusion" not in [e.key for e in overview(today).overdue]


def test_withdrawn_patients_are_not_overdue(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    patient = enrol("JSCH-001", start=today - timedelta(days=40))
    patient.status = "withdrawn"
    db.session.commit()
    assert overview(today).overdue_total == 0


def test_flagged_events_come_from_the_calendar_engine(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    enrol("JSCH-001")
    infusion = _first_infusion()
    infusion.flags = ["outside_window"]
    db.session.commit()
    result = overview(today)
    assert [e.key for e in result.flagged] == ["induction.c1.infusion"]
    html = english_nurse.get("/").get_data(as_text=True)
    assert "Outside its window" in html


def test_inbox_counts_are_by_category_each_linking_to_the_filtered_inbox(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    rows = (("a", "symptom", "red", "open"), ("b", "symptom", "amber", "acknowledged"),
            ("c", "symptom", "red", "open"), ("d", "symptom", "green", "resolved"),
            ("e", "call_task", "green", "open"), ("f", "reschedule", "green", "open"),
            ("g", "symptom", "green", "open"))  # fmt: skip
    for key, kind, level, status in rows:
        db.session.add(Alert(dedupe_key=key, kind=kind, level=level, status=status,
                             summary="x", patient_id=patient.id))  # fmt: skip
    db.session.commit()
    counts = inbox_counts()
    assert (counts["red"], counts["amber"], counts["call_task"], counts["reschedule"]) == (
        2,
        1,
        1,
        1,
    )
    assert (counts["note"], counts["total"], counts["open"]) == (1, 6, 5)
    html = english_nurse.get("/").get_data(as_text=True)
    assert 'id="alerts"' not in html  # no second count by level
    for category, number in (("red", 2), ("amber", 1), ("call_task", 1), ("unknown", 0),
                             ("reschedule", 1), ("opt_out", 0), ("note", 1)):  # fmt: skip
        tile = re.search(rf'<a class="stat (\w+)" id="today-inbox-{category}"[^>]*href="([^"]+)">'
                         r'<div class="n">(\d+)</div>', html)  # fmt: skip
        assert tile is not None, category
        assert tile.group(2) == f"/inbox/?category={category}"
        assert int(tile.group(3)) == number
    assert (
        re.search(r'id="today-inbox-red"', html) and 'class="stat bad" id="today-inbox-red"' in html
    )
    assert 'class="stat ok" id="today-inbox-unknown"' in html
    assert "Unanswered check-in: call the patient" in html
    # The link opens the inbox on that category only.
    inbox = english_nurse.get("/inbox/?category=reschedule").get_data(as_text=True)
    assert inbox.count('data-category="reschedule"') == 1
    assert 'data-category="red"' not in inbox


def test_decisions_waiting_lists_a_closure_in_the_nadir(english_nurse: FlaskClient) -> None:
    enrol("JSCH-009", start=date(2026, 8, 20), enrolled_on=date(2026, 8, 1))
    result = overview(date(2026, 9, 1))
    keys = [e.key for e in result.decisions]
    # cycle 3 on Sep 30, the National Day closure (Oct 1-7) in its days 1-10
    assert "induction.c3.infusion" in keys
    assert "induction.c2.infusion" not in keys
    html = english_nurse.get("/").get_data(as_text=True)
    assert "Decisions waiting" in html


def test_a_recorded_decision_leaves_the_list_and_is_audited(english_nurse: FlaskClient) -> None:
    patient = enrol("JSCH-019", start=date(2026, 8, 20), enrolled_on=date(2026, 8, 1))
    key = "induction.c3.infusion"
    page = english_nurse.get(f"/patients/{patient.study_id}/events/{key}").get_data(as_text=True)
    assert "Decision needed" in page and 'value="closure_in_nadir"' in page

    response = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/decision",
        {"flag": "closure_in_nadir", "decision": "cover_confirmed",
         "note": "Dr Li on call 1-7 Oct; blood count on 8 Oct"},
    )  # fmt: skip

    assert response.status_code == 302
    event = db.session.scalar(
        select(CalendarEvent)
        .where(CalendarEvent.patient_id == patient.id, CalendarEvent.key == key)
        .execution_options(populate_existing=True)
    )
    assert "closure_in_nadir" not in event.flags
    assert event.details["decisions"]["closure_in_nadir"]["decision"] == "cover_confirmed"
    assert key not in [e.key for e in overview(date(2026, 9, 1)).decisions]
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "calendar.decision")
    ).one()
    assert entry.actor == "user:nurse.wang" and "Dr Li on call" in entry.reason


def test_a_decision_without_a_reason_is_refused(english_nurse: FlaskClient) -> None:
    patient = enrol("JSCH-029", start=date(2026, 8, 20), enrolled_on=date(2026, 8, 1))
    key = "induction.c3.infusion"

    post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/decision",
        {"flag": "closure_in_nadir", "decision": "proceed", "note": ""},
    )

    assert (
        db.session.scalars(select(AuditEntry).where(AuditEntry.action == "calendar.decision")).all()
        == []
    )
    assert key in [e.key for e in overview(date(2026, 9, 1)).decisions]


def _flag_open_events(flag: str, days: int) -> None:
    """Flag every open event from today to `days` ahead."""
    today = clinic_today()
    for event in db.session.scalars(select(CalendarEvent)):
        if event.status in sq.OPEN_STATUSES and today <= event.date <= today + timedelta(days=days):
            event.flags = [flag]
    db.session.commit()


def _expected(days: int) -> list[tuple[date, str]]:
    today = clinic_today()
    return sorted(
        (e.date, e.patient.study_id)
        for e in db.session.scalars(select(CalendarEvent))
        if e.status in sq.OPEN_STATUSES
        and today <= e.date <= today + timedelta(days=days)
        and e.patient.status not in ("withdrawn", "off_study")
    )


def test_decisions_and_flagged_lists_are_the_first_by_date_and_study_id_with_every_one_counted(
    english_nurse: FlaskClient,
) -> None:
    """The first rows come from events up to the last one's date; withdrawn patients are left
    out of the rows and the counts; a limit above the matches lists them all."""
    today = clinic_today()
    for offset, study_id in enumerate(("JSCH-054", "JSCH-053", "JSCH-052", "JSCH-051")):
        enrol(study_id, start=today + timedelta(days=1 + offset))
    withdrawn = enrol("JSCH-050", start=today + timedelta(days=1))
    withdrawn.status = "withdrawn"
    db.session.commit()
    for flag, days, query in (
        ("closure_in_nadir", 120, sq.decisions_waiting),
        ("outside_window", 42, sq.flagged),
    ):
        _flag_open_events(flag, days)
        expected = _expected(days)
        assert len(expected) > 20 and len({d for d, _s in expected[:10]}) > 1
        for limit in (7, 10, len(expected) + 5):
            rows, total = query(today, limit=limit)
            assert [(r.date, r.study_id) for r in rows] == expected[:limit]
            assert total == len(expected)
            assert "JSCH-050" not in {r.study_id for r in rows}
