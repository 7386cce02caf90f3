"""The signed check-in link: expiry, binding to one patient and one check-in, tampering, the page
(no sign-in, no JavaScript, initials only), answers through the same service as SMS."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer

from app.extensions import db
from app.models import AuditEntry, CheckinSession, Patient, utcnow
from app.services.conversations.checkins.links import (
    LINK_SALT,
    LinkError,
    link_lifetime,
    link_url,
    make_token,
    read_token,
)
from app.services.conversations.checkins.schedule import start_checkin
from app.services.conversations.checkins.sessions import session_items
from tests.checkins.conftest import add_rota, alerts, checkin_events, enrol, fresh, full_answers


def started_now(patient: Patient, index: int = 0) -> CheckinSession:
    """The patient's check-in issued at the real current time (the page reads the clock)."""
    session = start_checkin(checkin_events(patient)[index], now=utcnow(), actor="test")
    assert session is not None
    db.session.commit()
    return session


# -- tokens ---------------------------------------------------------------------------------------


def test_a_token_names_its_session_and_patient(app_ctx: Flask) -> None:
    now = utcnow()
    token = make_token(12, 34, now=now)
    target = read_token(token, now=now + timedelta(hours=1))
    assert (target.session_id, target.patient_id) == (12, 34)
    assert len(token) < 60  # short enough for an SMS
    assert link_url(12, 34, now=now) == "https://cadence.example.org/c/" + token


def test_a_token_expires(app_ctx: Flask) -> None:
    now = utcnow()
    token = make_token(1, 2, now=now)
    assert read_token(token, now=now + link_lifetime()).session_id == 1
    with pytest.raises(LinkError) as failure:
        read_token(token, now=now + link_lifetime() + timedelta(seconds=1))
    assert failure.value.code == "expired"


@pytest.mark.parametrize("position", [0, 5, 12, -6, -1])
def test_a_tampered_token_is_refused(app_ctx: Flask, position: int) -> None:
    token = make_token(1, 2)
    # +16 in the base64url alphabet changes the high bits too (the last character's low bits are
    # padding, so a smaller change could decode to the same signature)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    swapped = alphabet[(alphabet.index(token[position]) + 16) % 64]
    forged = token[:position] + swapped + (token[position + 1 :] if position != -1 else "")
    with pytest.raises(LinkError) as failure:
        read_token(forged)
    assert failure.value.code == "invalid"


def test_tokens_of_another_salt_or_key_or_shape_are_refused(app_ctx: Flask) -> None:
    other_salt = URLSafeTimedSerializer(app_ctx.config["SECRET_KEY"], salt="something-else")
    other_key = URLSafeTimedSerializer("another-secret", salt=LINK_SALT)
    same_key = URLSafeTimedSerializer(app_ctx.config["SECRET_KEY"], salt=LINK_SALT)
    for token in (
        other_salt.dumps([1, 2]),
        other_key.dumps([1, 2]),
        same_key.dumps({"s": 1, "p": 2}),
        same_key.dumps([1, 2, 3]),
        same_key.dumps([True, 2]),
        "",
        "x" * 300,
    ):
        with pytest.raises(LinkError):
            read_token(token)


# -- the page -------------------------------------------------------------------------------------


def test_the_page_works_without_sign_in_and_shows_only_initials(
    app_ctx: Flask, client: FlaskClient
) -> None:
    patient = enrol(locale="zh")
    session = started_now(patient)
    response = client.get("/c/" + make_token(session.id, patient.id))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "症状随访" in html and "改编自PRO-CTCAE" in html and "WL" in html
    assert patient.study_id not in html and patient.phone_e164[-8:] not in html
    assert "<script" not in html and not re.search(r"\son[a-z]+\s*=", html)
    assert 'name="csrf_token"' not in html  # no sign-in session to protect
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert 'class="followup"' in html and 'id="q-NS"' in html  # branching done in CSS
    english = client.get("/c/" + make_token(session.id, patient.id) + "?lang=en")
    assert "Symptom check-in" in english.get_data(as_text=True)


def test_a_link_cannot_be_reused_for_another_patient(app_ctx: Flask, client: FlaskClient) -> None:
    first, second = enrol("JSCH-101"), enrol("JSCH-102")
    mine, theirs = started_now(first), started_now(second)
    crossed = make_token(theirs.id, first.id)  # validly signed, but the pair does not match
    for url in ("/c/" + crossed,):
        assert client.get(url).status_code == 404
        posted = client.post(url, data={"F": "0"})
        assert posted.status_code == 404
    assert fresh(theirs).answers == {} and fresh(mine).answers == {}


def test_an_expired_or_forged_link_shows_a_safe_page(app_ctx: Flask, client: FlaskClient) -> None:
    patient = enrol()
    session = started_now(patient)
    old = make_token(session.id, patient.id, now=utcnow() - link_lifetime() - timedelta(minutes=1))
    expired = client.get("/c/" + old + "?lang=en")
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    assert "120" in expired.get_data(as_text=True)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tampered = old[:-3] + alphabet[(alphabet.index(old[-3]) + 16) % 64] + old[-2:]
    forged = client.get("/c/" + tampered + "?lang=en")
    assert forged.status_code == 404 and "not valid" in forged.get_data(as_text=True)
    assert client.post("/c/" + old, data={"F": "0"}).status_code == 410
    assert fresh(session).answers == {}


def test_posted_answers_go_through_the_check_in_service(
    app_ctx: Flask, client: FlaskClient
) -> None:
    patient = enrol()
    session = started_now(patient)
    url = "/c/" + make_token(session.id, patient.id) + "?lang=en"
    partial = client.post(url, data={"F": "0", "F_c": "37.4", "HB": "0", "N": "2"})
    html = partial.get_data(as_text=True)
    assert partial.status_code == 200 and "Please answer the questions marked below" in html
    row = fresh(session)
    assert row.answers == {"F": 37.4, "HB": 0, "N": 2} and row.channel == "web"
    assert row.status == "partial"
    assert 'id="q-NS"' in html and "Your answer:" in html  # asked now that N > 0

    rest = full_answers(session_items(row), {"N": 2, "NS": 1})
    rest = {k: str(v) for k, v in rest.items() if k not in row.answers}
    done = client.post(url, data=rest)
    assert done.status_code == 303
    thanks = client.get(done.headers["Location"])
    assert "Thank you" in thanks.get_data(as_text=True)
    assert fresh(session).status == "answered"
    answers = [e for e in db.session.query(AuditEntry).all() if e.action == "checkin.answer"]
    assert len(answers) == 2 and all(e.actor == f"patient:{patient.study_id}" for e in answers)
    again = client.post(url, data={"F": "1"})
    assert again.status_code == 200 and fresh(session).answers["F"] == 37.4  # no re-answering


def test_a_follow_up_after_a_zero_and_tampered_values_are_ignored(
    app_ctx: Flask, client: FlaskClient
) -> None:
    patient = enrol()
    session = started_now(patient)
    url = "/c/" + make_token(session.id, patient.id) + "?lang=en"
    response = client.post(url, data={"N": "0", "NS": "3", "D": "9", "HB": "yes", "F_c": "99"})
    assert response.status_code == 200
    assert fresh(session).answers == {"N": 0}
    assert "could not be read" in response.get_data(as_text=True)


def test_a_red_answer_on_the_page_shows_the_emergency_message_and_pages(
    app_ctx: Flask, client: FlaskClient
) -> None:
    add_rota()
    patient = enrol()
    session = started_now(patient)
    url = "/c/" + make_token(session.id, patient.id) + "?lang=en"
    response = client.post(url, data={"F": "0", "HB": "1"})
    html = response.get_data(as_text=True)
    assert 'id="emergency"' in html and "Call 120 or go to the emergency department now" in html
    assert html.index('id="emergency"') < html.index("checkin-form")  # at the top
    assert [a.level for a in alerts()] == ["red"]
    assert fresh(session).priority == "red"
    chinese = client.get("/c/" + make_token(session.id, patient.id))
    assert "请立即拨打120或去急诊" in chinese.get_data(as_text=True)


def test_a_closed_check_in_cannot_be_answered(app_ctx: Flask, client: FlaskClient) -> None:
    patient = enrol()
    first = started_now(patient, 0)
    token = make_token(first.id, patient.id)
    started_now(patient, 1)  # a newer check-in closes the first
    response = client.get("/c/" + token + "?lang=en")
    assert response.status_code == 410 and "This check-in is closed" in response.get_data(
        as_text=True
    )
    assert client.post("/c/" + token, data={"F": "0"}).status_code == 410
    assert fresh(first).answers == {}
