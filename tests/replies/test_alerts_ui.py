"""The alerts pages: ordering by urgency and age, acknowledge, resolve with a note, roles, CSRF,
translations, the rota page and the Today counts."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Alert, AuditEntry, OnCallShift
from app.services.alerts.alerts import NewAlert, create_alert
from app.services.conversations.inbound.replies import receive
from tests.replies.conftest import MONDAY_10, alerts, inbound_form, patient
from tests.support import csrf_token, sign_in


def _alert(level: str, minutes_ago: int, key: str, patient_id: int | None = None) -> Alert:
    alert = create_alert(
        NewAlert(
            dedupe_key=key,
            kind="symptom",
            level=level,
            summary=f"{level} {key}",
            reasons=[f"rule_{key}: because"],
            patient_id=patient_id,
        ),
        now=MONDAY_10 - timedelta(minutes=minutes_ago),
    )
    db.session.commit()
    return alert


def _ids_in_page(html: str) -> list[int]:
    import re

    return [int(n) for n in re.findall(r'id="item-(\d+)"', html)]


def test_open_alerts_are_listed_by_urgency_then_age(client: FlaskClient, staff: dict) -> None:
    p = patient()
    green_old = _alert("green", 300, "g1", p.id)
    amber_new = _alert("amber", 5, "a1", p.id)
    red_new = _alert("red", 1, "r1", p.id)
    amber_old = _alert("amber", 90, "a2", p.id)
    red_old = _alert("red", 20, "r2", p.id)
    sign_in(client, staff["investigator"])
    html = client.get("/inbox/").get_data(as_text=True)
    expected = [red_old.id, red_new.id, amber_old.id, amber_new.id, green_old.id]
    assert _ids_in_page(html) == expected
    assert "JSCH-001" in html and "Urgent" in html


def test_a_nurse_acknowledges_and_resolves_with_a_note(client: FlaskClient, staff: dict) -> None:
    p = patient()
    receive(inbound_form(p.phone_e164, "今天拉了五次"), MONDAY_10)
    (alert,) = alerts()
    sign_in(client, staff["nurse"])
    html = client.get("/inbox/").get_data(as_text=True)
    assert "当日处理" in html and "确认" in html  # the nurse reads Chinese
    token = csrf_token(client, "/inbox/")
    response = client.post(f"/alerts/{alert.id}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 302
    (alert,) = alerts()
    assert alert.status == "acknowledged" and alert.acknowledged_by == "user:nurse.wang"
    assert alert.time_to_acknowledge_seconds is not None and alert.next_escalation_at is None

    response = client.post(f"/alerts/{alert.id}/resolve", data={"csrf_token": token, "note": " "})
    assert response.status_code == 302
    assert alerts()[0].status == "acknowledged"
    assert "解决警报前请填写处理情况" in client.get("/inbox/").get_data(as_text=True)

    note = "Called the patient: loperamide as prescribed, review tomorrow."
    client.post(f"/alerts/{alert.id}/resolve", data={"csrf_token": token, "note": note})
    (alert,) = alerts()
    assert (alert.status, alert.resolution_note, alert.resolved_by) == (
        "resolved",
        note,
        "user:nurse.wang",
    )
    assert _ids_in_page(client.get("/inbox/").get_data(as_text=True)) == []
    resolved = client.get("/inbox/?show=resolved").get_data(as_text=True)
    assert _ids_in_page(resolved) == [alert.id]
    actions = [a.action for a in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions[-2:] == ["alert.acknowledge", "alert.resolve"]


def test_resolving_an_open_alert_records_the_acknowledgement_too(
    client: FlaskClient, staff: dict
) -> None:
    alert = _alert("red", 7, "r1")
    sign_in(client, staff["investigator"])
    token = csrf_token(client, "/inbox/")
    client.post(f"/alerts/{alert.id}/resolve", data={"csrf_token": token, "note": "Sent to ED"})
    (alert,) = alerts()
    assert alert.status == "resolved" and alert.acknowledged_by == "user:dr.li"
    assert alert.time_to_acknowledge_seconds is not None
    assert alert.time_to_acknowledge_seconds >= 7 * 60


def test_roles_csrf_and_sign_in_are_enforced(client: FlaskClient, staff: dict) -> None:
    alert = _alert("red", 1, "r1")
    assert client.get("/alerts/").status_code == 302  # not signed in
    assert client.post(f"/alerts/{alert.id}/acknowledge").status_code in (302, 400)
    sign_in(client, staff["admin"])
    assert client.get("/inbox/").status_code == 200
    token = csrf_token(client, "/inbox/")
    assert (
        client.post(f"/alerts/{alert.id}/acknowledge", data={"csrf_token": token}).status_code
        == 403
    )
    client.post("/sign-out", data={"csrf_token": token})
    sign_in(client, staff["nurse"])
    assert client.post(f"/alerts/{alert.id}/acknowledge", data={}).status_code == 400  # no CSRF
    assert alerts()[0].status == "open"
    token = csrf_token(client, "/inbox/")
    assert client.post("/alerts/999999/acknowledge", data={"csrf_token": token}).status_code == 404


def test_the_navigation_badge_and_the_today_counts(client: FlaskClient, staff: dict) -> None:
    _alert("red", 3, "r1")
    _alert("amber", 3, "a1")
    _alert("green", 3, "g1")
    sign_in(client, staff["investigator"])
    html = client.get("/").get_data(as_text=True)
    assert 'href="/inbox/"' in html  # the Today card leads to the triage inbox
    for category in ("red", "amber", "note"):  # one count per inbox category, no count by level
        tile = re.search(rf'id="today-inbox-{category}"[^>]*><div class="n">(\d+)</div>', html)
        assert tile is not None and tile.group(1) == "1", category
    assert 'id="alerts"' not in html
    assert '<span class="badge">3</span>' in html  # the inbox badge: every open item
    inbox = client.get("/inbox/").get_data(as_text=True)
    assert 'href="/alerts/"' not in inbox and 'href="/alerts/rota"' in inbox


def test_the_alerts_page_is_the_inbox(client: FlaskClient, staff: dict) -> None:
    sign_in(client, staff["nurse"])
    assert client.get("/alerts/").headers["Location"].endswith("/inbox/")
    assert (
        client.get("/alerts/?show=resolved").headers["Location"].endswith("/inbox/?show=resolved")
    )


def test_the_rota_page_shows_who_is_on_duty_and_admins_edit_it(
    client: FlaskClient, staff: dict
) -> None:
    sign_in(client, staff["admin"])
    html = client.get("/alerts/rota").get_data(as_text=True)
    assert "Nobody" in html
    token = csrf_token(client, "/alerts/rota")
    form = {
        "csrf_token": token,
        "role": "clinician",
        "name": "Dr Zhang",
        "phone": "13900000001",
        "weekdays": "daily",
        "hours": "08:00-08:00",
        "priority": "0",
        "locale": "zh",
    }
    assert client.post("/alerts/rota", data=form).status_code == 302
    row = db.session.scalar(select(OnCallShift))
    assert row is not None and row.phone_e164 == "+8613900000001"
    html = client.get("/alerts/rota").get_data(as_text=True)
    assert "Dr Zhang" in html and "+8613900000001" in html
    bad = client.post("/alerts/rota", data={**form, "weekdays": "funday"}, follow_redirects=True)
    assert "was not added" in bad.get_data(as_text=True)
    client.post(f"/alerts/rota/{row.id}/delete", data={"csrf_token": token})
    assert db.session.scalar(select(OnCallShift)) is None


def test_nurses_may_read_the_rota_but_not_change_it(
    app_ctx: Flask, client: FlaskClient, staff: dict
) -> None:
    sign_in(client, staff["nurse"])
    assert client.get("/alerts/rota").status_code == 200
    token = csrf_token(client, "/alerts/rota")
    response = client.post("/alerts/rota", data={"csrf_token": token, "role": "clinician"})
    assert response.status_code == 403
