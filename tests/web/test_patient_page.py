"""The patient page: timeline, marking events, reschedule with preview, treatment decisions."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, CalendarEvent, OutboxMessage, Patient
from app.services.schedule import calendar as calendar_service
from app.web.helpers import clinic_today
from tests.web.conftest import enrol, post


def _event(patient: Patient, key: str) -> CalendarEvent:
    db.session.expire_all()
    return db.session.scalars(
        select(CalendarEvent).where(
            CalendarEvent.patient_id == patient.id, CalendarEvent.key == key
        )
    ).one()


def _snapshot(patient: Patient) -> list[tuple[str, date, str]]:
    db.session.expire_all()
    rows = db.session.execute(
        select(CalendarEvent.key, CalendarEvent.date, CalendarEvent.status)
        .where(CalendarEvent.patient_id == patient.id)
        .order_by(CalendarEvent.key)
    ).all()
    return [tuple(r) for r in rows]


def _audit_count(action: str) -> int:
    return (
        db.session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == action)) or 0
    )


def _fingerprint(html: str) -> str:
    match = re.search(r'name="fingerprint" value="([0-9a-f]+)"', html)
    assert match, "no confirm form in the preview"
    return match.group(1)


def test_patient_page_groups_by_phase_and_cycle(
    english_nurse: FlaskClient, patient: Patient
) -> None:
    page = english_nurse.get(f"/patients/{patient.study_id}").get_data(as_text=True)
    assert 'id="phase-induction"' in page
    assert 'id="phase-maintenance"' in page
    assert 'id="induction-c1"' in page and 'id="maintenance-c5"' in page
    assert "Cycle 1" in page
    assert "Window" in page
    assert "+86" in page and "13800138000" not in page  # the number is masked


def test_unknown_patient_and_event_are_404(english_nurse: FlaskClient, patient: Patient) -> None:
    assert english_nurse.get("/patients/NOPE-1").status_code == 404
    assert english_nurse.get(f"/patients/{patient.study_id}/events/nope").status_code == 404


def test_mark_done_and_undo(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    patient = enrol(start=today - timedelta(days=1), enrolled_on=today - timedelta(days=2))
    key = "induction.c1.infusion"
    response = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/status",
        {"status": "done", "note": "given at 10:30", "back": "patient"},
    )
    assert response.status_code == 302
    assert _event(patient, key).status == "done"
    assert _event(patient, key).note == "given at 10:30"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "event.status")).one()
    assert entry.actor == "user:nurse.wang"
    assert entry.before["status"] == "planned" and entry.after["status"] == "done"
    post(english_nurse, f"/patients/{patient.study_id}/events/{key}/status", {"status": "planned"})
    assert _event(patient, key).status == "planned"


def test_future_event_cannot_be_marked_done(english_nurse: FlaskClient, patient: Patient) -> None:
    key = "maintenance.c10.infusion"
    response = post(
        english_nurse, f"/patients/{patient.study_id}/events/{key}/status", {"status": "done"}
    )
    assert response.status_code == 302
    assert _event(patient, key).status == "planned"
    page = english_nurse.get(response.headers["Location"]).get_data(as_text=True)
    assert "once its window has opened" in page


def test_bad_status_and_missing_csrf_change_nothing(english_nurse: FlaskClient) -> None:
    patient = enrol(
        start=clinic_today() - timedelta(days=1),
        enrolled_on=clinic_today() - timedelta(days=2),
    )
    url = f"/patients/{patient.study_id}/events/induction.c1.infusion/status"
    post(english_nurse, url, {"status": "cancelled"})
    assert english_nurse.post(url, data={"status": "done"}).status_code == 400
    assert _event(patient, "induction.c1.infusion").status == "planned"
    assert _audit_count("event.status") == 0


def test_admin_cannot_mark_events(admin: FlaskClient) -> None:
    patient = enrol(
        start=clinic_today() - timedelta(days=1),
        enrolled_on=clinic_today() - timedelta(days=2),
    )
    url = f"/patients/{patient.study_id}/events/induction.c1.infusion/status"
    assert post(admin, url, {"status": "done"}).status_code == 403
    assert _event(patient, "induction.c1.infusion").status == "planned"
    page = admin.get(f"/patients/{patient.study_id}").get_data(as_text=True)
    assert "/status" not in page  # no action buttons for a role that cannot use them


def test_reschedule_preview_shows_the_cascade_and_saves_nothing(
    english_nurse: FlaskClient, patient: Patient
) -> None:
    key = "induction.c2.infusion"
    target = _event(patient, key)
    c3 = _event(patient, "induction.c3.infusion").date
    new_date = target.date + timedelta(days=7)
    before = _snapshot(patient)
    url = f"/patients/{patient.study_id}/events/{key}"
    form = {"new_date": new_date.isoformat(), "reason": "patient unwell"}

    response = post(english_nurse, f"{url}/preview", form)

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Confirm the reschedule" in page
    assert _snapshot(patient) == before
    assert _audit_count("calendar.reschedule") == 0
    said = re.search(r"Cycle 2 and (\d+) later events move \+7 days\.", page) or re.search(
        r"Cycle 2 moves \+7 days; (\d+) later events move", page
    )
    assert said, "no cascade line in the preview"
    # What the preview announced is what confirming does: count the rows that really moved.
    post(english_nurse, f"{url}/reschedule", {**form, "fingerprint": _fingerprint(page)})
    after = _snapshot(patient)
    moved = [b for b, a in zip(before, after, strict=True) if b[1] != a[1]]
    assert int(said.group(1)) == len(moved) - 1
    # By hand: cycle 3 follows cycle 2 by the protocol's 21 days, so it moves +7 with it.
    assert _event(patient, "induction.c3.infusion").date == c3 + timedelta(days=7)
    assert "Every event stays inside its window." in page


def test_reschedule_confirm_moves_events_and_audits(
    english_nurse: FlaskClient, patient: Patient
) -> None:
    key = "induction.c2.infusion"
    old = _event(patient, key).date
    new_date = old + timedelta(days=7)
    preview = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/preview",
        {"new_date": new_date.isoformat(), "reason": "patient unwell"},
    ).get_data(as_text=True)
    later = _event(patient, "induction.c3.infusion").date
    response = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/reschedule",
        {"new_date": new_date.isoformat(), "reason": "patient unwell",
         "fingerprint": _fingerprint(preview)},
    )  # fmt: skip
    assert response.status_code == 302
    moved = _event(patient, key)
    assert moved.date == new_date and moved.moved_from == old
    assert _event(patient, "induction.c3.infusion").date > later
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "calendar.reschedule")
    ).one()
    assert entry.reason == "patient unwell"
    assert entry.actor == "user:nurse.wang"
    assert any(c["key"] == key for c in entry.after["changes"])
    page = english_nurse.get(response.headers["Location"]).get_data(as_text=True)
    assert "Rescheduled." in page
    assert "patient unwell" in page  # in the patient's history


def test_reschedule_needs_a_reason(english_nurse: FlaskClient, patient: Patient) -> None:
    key = "induction.c2.infusion"
    new_date = _event(patient, key).window_end
    before = _snapshot(patient)
    preview = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/preview",
        {"new_date": new_date.isoformat(), "reason": ""},
    ).get_data(as_text=True)
    assert "Give the reason for the change, then confirm." in preview
    assert 'name="fingerprint"' not in preview
    response = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/reschedule",
        {"new_date": new_date.isoformat(), "reason": "  "},
    )
    assert response.status_code == 400
    assert "Give the reason for the change." in response.get_data(as_text=True)
    assert _snapshot(patient) == before


def test_stale_preview_is_refused(english_nurse: FlaskClient, patient: Patient) -> None:
    key = "induction.c2.infusion"
    new_date = _event(patient, key).date + timedelta(days=7)
    preview = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/preview",
        {"new_date": new_date.isoformat(), "reason": "holiday"},
    ).get_data(as_text=True)
    calendar_service.reschedule_event(
        patient.id, "induction.c3.infusion",
        _event(patient, "induction.c3.infusion").date + timedelta(days=2),
        "someone else", actor="user:other", today=clinic_today(),
    )  # fmt: skip
    before = _snapshot(patient)
    response = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/reschedule",
        {"new_date": new_date.isoformat(), "reason": "holiday",
         "fingerprint": _fingerprint(preview)},
    )  # fmt: skip
    assert response.status_code == 409
    assert "The calendar changed since the preview" in response.get_data(as_text=True)
    assert _snapshot(patient) == before


def test_engine_refusal_is_explained(english_nurse: FlaskClient, patient: Patient) -> None:
    key = "induction.c2.infusion"
    c1 = _event(patient, "induction.c1.infusion").date
    before = _snapshot(patient)
    response = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/preview",
        {"new_date": (c1 + timedelta(days=5)).isoformat(), "reason": "too early"},
    )
    assert response.status_code == 422
    assert "Two infusions would be only 5 days apart" in response.get_data(as_text=True)
    assert _snapshot(patient) == before


def test_preview_fragment_for_the_script(english_nurse: FlaskClient, patient: Patient) -> None:
    key = "induction.c2.infusion"
    new_date = _event(patient, key).date + timedelta(days=3)
    response = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/preview?fragment=1",
        {"new_date": new_date.isoformat(), "reason": "x"},
    )
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="preview-area"')
    assert "<html" not in html
    assert "+3" in html


def test_nurse_cannot_reschedule_without_permission(admin: FlaskClient, patient: Patient) -> None:
    key = "induction.c2.infusion"
    new_date = _event(patient, key).date + timedelta(days=7)
    before = _snapshot(patient)
    for action in ("preview", "reschedule"):
        response = post(
            admin,
            f"/patients/{patient.study_id}/events/{key}/{action}",
            {"new_date": new_date.isoformat(), "reason": "x", "fingerprint": "0"},
        )
        assert response.status_code == 403
    assert _snapshot(patient) == before


def test_progression_preview_then_confirm(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    patient = enrol(start=today - timedelta(days=60))
    url = f"/patients/{patient.study_id}/decisions/progression"
    assert "Record progression" in english_nurse.get(url).get_data(as_text=True)
    before = _snapshot(patient)
    data = {"on": today.isoformat(), "reason": "CT: wall thickening"}
    preview = post(english_nurse, url, {**data, "step": "preview"})
    assert preview.status_code == 200
    assert "Preview: nothing is saved yet" in preview.get_data(as_text=True)
    unconfirmed = post(english_nurse, url, {**data, "step": "confirm"})
    assert unconfirmed.status_code == 400
    assert "Tick the box to confirm." in unconfirmed.get_data(as_text=True)
    assert _snapshot(patient) == before
    assert _audit_count("patient.progression") == 0
    done = post(english_nurse, url, {**data, "step": "confirm", "confirm": "y"})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Patient, patient.id).progression_date == today
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "patient.progression")
    ).one()
    assert entry.reason == "CT: wall thickening"


def test_future_progression_is_refused(english_nurse: FlaskClient, patient: Patient) -> None:
    url = f"/patients/{patient.study_id}/decisions/progression"
    tomorrow = (clinic_today() + timedelta(days=1)).isoformat()
    response = post(
        english_nurse, url, {"on": tomorrow, "reason": "x", "confirm": "y", "step": "confirm"}
    )
    assert response.status_code == 422
    assert "future date" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Patient, patient.id).progression_date is None


def test_salvage_and_withdraw(english_nurse: FlaskClient) -> None:
    today = clinic_today()
    patient = enrol(start=today - timedelta(days=90))
    count = len(patient.events)
    salvage = f"/patients/{patient.study_id}/decisions/salvage"
    response = post(
        english_nurse,
        salvage,
        {"on": today.isoformat(), "reason": "salvage CRT", "confirm": "y", "step": "confirm"},
    )
    assert response.status_code == 302
    db.session.expire_all()
    refreshed = db.session.get(Patient, patient.id)
    assert refreshed.status == "salvage"
    assert len(refreshed.events) > count
    page = english_nurse.get(f"/patients/{patient.study_id}").get_data(as_text=True)
    assert "/decisions/salvage" not in page  # salvage cannot start twice
    withdraw = f"/patients/{patient.study_id}/decisions/withdraw"
    post(english_nurse, withdraw, {"on": today.isoformat(), "reason": "patient request",
                                   "confirm": "y", "step": "confirm"})  # fmt: skip
    db.session.expire_all()
    refreshed = db.session.get(Patient, patient.id)
    assert refreshed.status == "withdrawn"
    assert all(e.status != "planned" for e in refreshed.events if e.date > today)
    response = english_nurse.get(withdraw)
    assert response.status_code == 302  # no decision left for a withdrawn patient


def test_unknown_decision_is_404(english_nurse: FlaskClient, patient: Patient) -> None:
    assert english_nurse.get(f"/patients/{patient.study_id}/decisions/explode").status_code == 404


def test_event_page_shows_window_and_actions(english_nurse: FlaskClient, patient: Patient) -> None:
    page = english_nurse.get(f"/patients/{patient.study_id}/events/induction.c2.infusion").get_data(
        as_text=True
    )
    assert "Reschedule" in page
    assert "Preview the change" in page
    assert "Window" in page


def test_the_preview_and_the_schedule_change_sms_count_the_same_appointments(
    english_nurse: FlaskClient, patient: Patient
) -> None:
    key = "induction.c2.infusion"
    new_date = _event(patient, key).date + timedelta(days=7)
    preview = post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/preview",
        {"new_date": new_date.isoformat(), "reason": "patient unwell"},
    ).get_data(as_text=True)
    said = re.search(r"The patient gets one SMS about (\d+) moved appointments", preview)
    assert said is not None, preview
    announced = int(said.group(1))

    post(
        english_nurse,
        f"/patients/{patient.study_id}/events/{key}/reschedule",
        {"new_date": new_date.isoformat(), "reason": "patient unwell",
         "fingerprint": _fingerprint(preview)},
    )  # fmt: skip

    notice = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.patient_id == patient.id, OutboxMessage.kind == "moved"
        )
    ).one()
    assert len(notice.items) == announced
    rest = re.search(r"另有(\d+)项日程|(\d+) later appointments", notice.body)
    assert rest is not None and int(rest.group(1) or rest.group(2)) == announced - 2  # 2 named


def test_the_patient_page_opens_on_next_events_and_open_items(nurse, patient) -> None:
    """Next events and open inbox items come before the calendar; history is collapsible."""
    html = nurse.get(f"/patients/{patient.study_id}").get_data(as_text=True)
    first = html.index('id="next-events"')
    assert first < html.index('id="symptoms"') < html.index('id="full-calendar"')
    assert html.index('id="open-items"') < html.index('id="full-calendar"')
    assert '<details class="card spaced section" id="history">' in html
    upcoming = sorted((e for e in patient.events if e.status == "planned"), key=lambda e: e.date)
    assert f"/events/{upcoming[0].key}" in html[first : html.index('id="open-items"')]


def _said(page: str, pattern: str, *, required: bool = True) -> int:
    match = re.search(pattern, page)
    assert match or not required, f"{pattern!r} not in the preview"
    return int(match.group(1)) if match else 0


@pytest.mark.parametrize("decision", ["salvage", "stop", "withdraw"])
def test_decision_previews_save_nothing_and_announce_what_confirming_does(
    english_nurse: FlaskClient, decision: str
) -> None:
    today = clinic_today()
    patient = enrol(start=today - timedelta(days=60))
    url = f"/patients/{patient.study_id}/decisions/{decision}"
    data = {"on": today.isoformat(), "reason": f"bench {decision}"}
    before = _snapshot(patient)

    preview = post(english_nurse, url, {**data, "step": "preview"})

    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "Preview: nothing is saved yet" in page
    assert _snapshot(patient) == before
    action = "patient.stop_treatment" if decision == "stop" else f"patient.{decision}"
    assert _audit_count(action) == 0
    cancelled = _said(page, r"(\d+) events? (?:is|are) cancelled\.")
    added = _said(page, r"(\d+) events? (?:is|are) added\.", required=decision == "salvage")
    done = post(english_nurse, url, {**data, "step": "confirm", "confirm": "y"})
    assert done.status_code == 302
    assert _audit_count(action) == 1
    after = {key: status for key, _, status in _snapshot(patient)}
    was = {key: status for key, _, status in before}
    assert len(after) - len(was) == added
    assert sum(1 for k, s in was.items() if s != "cancelled" and after[k] == "cancelled") == (
        cancelled
    )
    assert cancelled > 0  # every one of them ends the planned treatment
