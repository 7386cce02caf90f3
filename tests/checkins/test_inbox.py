"""The triage inbox: ordering by urgency then age, acknowledge, assignment, resolution with a
structured action; the web page and the Today counts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Alert, AuditEntry, Patient
from app.services.alerts import alerts as alert_service
from app.services.alerts.alerts import AlertError, NewAlert, create_alert
from app.services.conversations import inbox
from app.services.conversations.checkins.schedule import call_tasks_due, start_due
from app.services.conversations.inbound.replies import receive
from tests.checkins.conftest import (
    ENROLLED_ON,
    checkin_events,
    days,
    enrol,
    fresh,
    local,
    post,
)

T0 = local(ENROLLED_ON, 9)


def raise_item(patient: Patient | None, kind: str, level: str, at: datetime, key: str) -> Alert:
    alert = create_alert(
        NewAlert(dedupe_key=key, kind=kind, level=level, summary=key, reasons=[f"{key} reason"],
                 patient_id=patient.id if patient else None),
        now=at,
    )  # fmt: skip
    db.session.commit()
    return alert


@pytest.fixture
def known_items(app_ctx: Flask) -> dict[str, Alert]:
    """One item of every category, raised in an order unrelated to their urgency."""
    patient = enrol()
    specs = [
        ("note-old", "symptom", "green", 0),
        ("optout", "opt_out", "green", 1),
        ("resched", "reschedule", "amber", 2),
        ("unknown", "review", "green", 3),
        ("call", "call_task", "green", 4),
        ("amber-new", "symptom", "amber", 9),
        ("amber-old", "symptom", "amber", 5),
        ("red-new", "symptom", "red", 8),
        ("red-review", "review", "red", 6),
        ("amber-review", "review", "amber", 7),
    ]
    return {
        key: raise_item(patient, kind, level, T0 + timedelta(minutes=m), key)
        for key, kind, level, m in specs
    }


def test_items_come_most_urgent_first_then_oldest(known_items: dict[str, Alert]) -> None:
    order = [item.alert.dedupe_key for item in inbox.open_items()]
    assert order == [
        "red-review", "red-new",
        "amber-old", "amber-review", "amber-new",
        "call", "unknown", "resched", "optout", "note-old",
    ]  # fmt: skip
    categories = [item.category for item in inbox.open_items()]
    assert categories == sorted(categories, key=inbox.CATEGORIES.index)
    assert [i.alert.dedupe_key for i in inbox.open_items(category="amber")] == [
        "amber-old", "amber-review", "amber-new",
    ]  # fmt: skip


def test_counts_by_category(known_items: dict[str, Alert]) -> None:
    inbox.acknowledge(known_items["red-new"].id, actor="user:nurse.chen", now=T0 + days(0.1))
    counts = inbox.counts()
    assert (counts["red"], counts["amber"], counts["call_task"], counts["unknown"]) == (2, 3, 1, 1)
    assert (counts["reschedule"], counts["opt_out"], counts["note"]) == (1, 1, 1)
    assert (counts["total"], counts["open"]) == (10, 9)


def test_assignment_is_checked_and_audited(
    known_items: dict[str, Alert], staff: dict[str, str]
) -> None:
    alert = known_items["amber-old"]
    assigned = inbox.assign(alert.id, staff["nurse2"].upper(), actor="user:nurse.chen")
    assert assigned.assigned_to == staff["nurse2"] and assigned.assigned_at is not None
    assert [i.alert.id for i in inbox.open_items(assignee=staff["nurse2"])] == [alert.id]
    assert alert.id not in [i.alert.id for i in inbox.open_items(assignee="-")]
    with pytest.raises(AlertError) as refused:
        inbox.assign(alert.id, staff["admin"], actor="user:nurse.chen")
    assert refused.value.code == "bad_assignee"
    assert inbox.assign(alert.id, "", actor="user:nurse.chen").assigned_to is None
    audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "alert.assign")).all()
    assert [(a.before, a.after) for a in audit] == [
        ({"assigned_to": None}, {"assigned_to": staff["nurse2"]}),
        ({"assigned_to": staff["nurse2"]}, {"assigned_to": None}),
    ]


def test_resolution_needs_an_action_and_a_note_unless_nothing_was_needed(
    known_items: dict[str, Alert],
) -> None:
    red = known_items["red-new"]
    with pytest.raises(AlertError) as missing:
        inbox.resolve(red.id, action="", note="called", actor="user:nurse.chen")
    assert missing.value.code == "action_required"
    with pytest.raises(AlertError) as no_note:
        inbox.resolve(red.id, action="called_patient", note=" ", actor="user:nurse.chen")
    assert no_note.value.code == "note_required"
    done = inbox.resolve(
        red.id, action="advised_emergency", note="Told to go to the ED; wife drove him.",
        actor="user:nurse.chen", now=T0 + days(0.01),
    )  # fmt: skip
    assert (done.status, done.resolution_action, done.resolved_by) == (
        "resolved", "advised_emergency", "user:nurse.chen",
    )  # fmt: skip
    assert done.acknowledged_at == T0 + days(0.01)  # resolving acknowledges
    note = inbox.resolve(known_items["note-old"].id, action="no_action_needed", note="",
                         actor="user:nurse.chen")  # fmt: skip
    assert note.status == "resolved" and note.resolution_note is None
    with pytest.raises(AlertError):
        inbox.assign(red.id, "", actor="user:nurse.chen")
    assert red.id not in [i.alert.id for i in inbox.open_items()]
    assert [i.alert.id for i in inbox.resolved_items()][:2] == [note.id, red.id]


def test_resolving_a_call_task_closes_its_check_in(app_ctx: Flask) -> None:
    patient = enrol()
    sent = local(checkin_events(patient)[0].date, 10)
    (session,) = start_due(sent)
    call_tasks_due(sent + days(2))
    (item,) = inbox.open_items()
    assert item.category == "call_task" and item.checkin is not None
    inbox.resolve(item.alert.id, action="called_patient", note="No answer; voicemail left.",
                  actor="user:nurse.chen", now=sent + days(2.2))  # fmt: skip
    row = fresh(session)
    assert (row.status, row.closed_at) == ("missed", sent + days(2.2))


def test_resolving_a_call_task_on_the_alerts_page_closes_its_check_in(
    nurse: FlaskClient,
) -> None:
    patient = enrol()
    sent = local(checkin_events(patient)[0].date, 10)
    (session,) = start_due(sent)
    call_tasks_due(sent + days(2))
    (item,) = inbox.open_items()
    response = post(nurse, f"/alerts/{item.alert.id}/resolve", {"note": "Called; she is well."})
    assert response.status_code == 302
    assert db.session.get(Alert, item.alert.id).status == "resolved"
    row = fresh(session)
    assert row.status == "missed" and row.closed_at is not None


def test_a_call_task_is_not_resolved_without_closing_its_check_in(app_ctx: Flask) -> None:
    patient = enrol()
    sent = local(checkin_events(patient)[0].date, 10)
    (session,) = start_due(sent)
    call_tasks_due(sent + days(2))
    (item,) = inbox.open_items()
    with pytest.raises(TypeError, match="on_call_task"):
        alert_service.resolve(item.alert.id, actor="user:nurse.chen", note="called")
    db.session.rollback()
    assert db.session.get(Alert, item.alert.id).status == "open"
    assert fresh(session).closed_at is None


def test_an_opt_out_by_sms_becomes_an_inbox_item(app_ctx: Flask) -> None:
    patient = enrol()
    form = {"MessageSid": "SM" + "1" * 32, "From": patient.phone_e164, "To": "+8610655299880",
            "Body": "退订", "NumMedia": "0"}  # fmt: skip
    receive(form, T0)
    (item,) = inbox.open_items()
    assert (item.category, item.alert.level, item.alert.patient_id) == (
        "opt_out", "green", patient.id,
    )  # fmt: skip
    assert item.alert.next_escalation_at is None


# -- the page -------------------------------------------------------------------------------------


def test_the_inbox_page_lists_and_works_the_items(
    known_items: dict[str, Alert], nurse: FlaskClient, staff: dict[str, str]
) -> None:
    html = nurse.get("/inbox/").get_data(as_text=True)
    positions = [html.index(f'id="item-{known_items[k].id}"') for k in ("red-review", "red-new",
                 "amber-old", "call", "optout")]  # fmt: skip
    assert positions == sorted(positions)
    assert "Urgent" in html and "red-new reason" in html
    red = known_items["red-new"].id

    response = post(nurse, f"/inbox/{red}/acknowledge")
    assert response.status_code == 302
    assert db.session.get(Alert, red).status == "acknowledged"
    post(nurse, f"/inbox/{red}/assign", {"assignee": staff["nurse2"]})
    assert db.session.get(Alert, red).assigned_to == staff["nurse2"]
    refused = post(
        nurse, f"/inbox/{red}/resolve", {"action": "", "note": "x"}, follow_redirects=True
    )
    assert "Choose what was done." in refused.get_data(as_text=True)
    post(nurse, f"/inbox/{red}/resolve", {"action": "earlier_visit", "note": "Seen tomorrow 9:00."})
    row = db.session.get(Alert, red)
    assert (row.status, row.resolution_action, row.resolution_note) == (
        "resolved", "earlier_visit", "Seen tomorrow 9:00.",
    )  # fmt: skip
    resolved = nurse.get("/inbox/?show=resolved").get_data(as_text=True)
    assert "Arranged an earlier visit" in resolved
    assert nurse.post(f"/inbox/{red}/acknowledge").status_code == 400  # no CSRF token


def test_the_inbox_is_read_only_for_administrators(
    known_items: dict[str, Alert], client: FlaskClient, staff: dict[str, str]
) -> None:
    from tests.support import sign_in

    sign_in(client, staff["admin"])
    page = client.get("/inbox/")
    assert page.status_code == 200 and "Acknowledge" not in page.get_data(as_text=True)
    red = known_items["red-new"].id
    assert post(client, f"/inbox/{red}/acknowledge").status_code == 403


def test_the_today_page_counts_inbox_items(
    known_items: dict[str, Alert], nurse: FlaskClient
) -> None:
    html = nurse.get("/").get_data(as_text=True)
    block = html[
        html.index('id="inbox-counts"') : html.index("</section>", html.index('id="inbox-counts"'))
    ]
    assert "10 items to handle" in block
    tiles = dict(re.findall(r'id="today-inbox-(\w+)"[^>]*><div class="n">(\d+)</div>', block))
    assert (tiles["red"], tiles["amber"], tiles["call_task"]) == ("2", "3", "1")


def test_the_inbox_searches_by_study_id_or_text_and_says_when_nothing_matches(
    known_items: dict[str, Alert], nurse: FlaskClient
) -> None:
    study_id = known_items["red-new"].patient.study_id
    html = nurse.get(f"/inbox/?q={study_id.lower()}").get_data(as_text=True)
    assert f'id="item-{known_items["red-new"].id}"' in html
    only = nurse.get("/inbox/?q=amber-old").get_data(as_text=True)
    assert f'id="item-{known_items["amber-old"].id}"' in only
    assert f'id="item-{known_items["red-new"].id}"' not in only
    none = nurse.get("/inbox/?q=nothing-like-this").get_data(as_text=True)
    assert 'id="inbox-empty"' in none and "No item matches these filters." in none


def test_the_inbox_remembers_each_nurses_filters_until_cleared(
    known_items: dict[str, Alert], nurse: FlaskClient
) -> None:
    nurse.get("/inbox/?category=amber&q=amber")
    back = nurse.get("/inbox/")
    assert back.status_code == 302
    assert "category=amber" in back.headers["Location"] and "q=amber" in back.headers["Location"]
    cleared = nurse.get("/inbox/?reset=1")
    assert cleared.status_code == 302
    assert nurse.get("/inbox/").status_code == 200


def test_the_inbox_offers_keyboard_shortcuts(
    known_items: dict[str, Alert], nurse: FlaskClient
) -> None:
    html = nurse.get("/inbox/").get_data(as_text=True)
    assert "js/inbox.js" in html and 'id="inbox-keys"' in html
    assert f'id="item-{known_items["red-new"].id}" data-category="red" tabindex="-1"' in html
    assert nurse.get("/static/js/inbox.js").status_code == 200
