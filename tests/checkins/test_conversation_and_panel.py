"""Conversation view (every SMS in and out with delivery status, nurse replies), the patient
page's symptom trend chart, and the demo check-ins."""

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.clock import today_in
from app.extensions import db
from app.models import Alert, AuditEntry, CheckinSession, OutboxMessage, utcnow
from app.services.conversations import conversation
from app.services.conversations.checkins.schedule import start_checkin
from app.services.conversations.checkins.sessions import record_answers, session_items
from app.services.conversations.inbound.replies import receive
from app.services.demo import load_demo_checkins, load_demo_data
from tests.checkins.conftest import (
    SHANGHAI,
    checkin_events,
    enrol,
    full_answers,
    mark_checkin_messages_sent,
    post,
    start,
)


def test_the_conversation_shows_both_directions_in_order(app_ctx: Flask) -> None:
    patient = enrol(locale="en")
    session = start(patient)
    mark_checkin_messages_sent(session.sent_at + timedelta(minutes=1))
    form = {"MessageSid": "SM" + "2" * 32, "From": patient.phone_e164, "To": "+8610655299880",
            "Body": "36.9", "NumMedia": "0"}  # fmt: skip
    receive(form, session.sent_at + timedelta(minutes=20))
    record_answers(session.id, {"HB": 0}, channel="web", actor="test",
                   now=session.sent_at + timedelta(minutes=30))  # fmt: skip
    db.session.commit()
    entries = conversation.conversation(patient, now=session.sent_at + timedelta(hours=1))
    recent = [(e.direction, e.source, e.kind) for e in entries if e.at >= session.sent_at]
    assert recent[:4] == [
        ("out", "outbox", "checkin"),  # the check-in's first question
        ("in", "sms", None),  # the patient's "36.9"
        ("out", "outbox", "checkin"),  # the next question, planned
        ("in", "web", "checkin"),  # answered on the page
    ]
    statuses = [e.status for e in entries if e.source == "outbox" and e.kind == "checkin"]
    assert statuses == ["sent", "planned"]
    assert all(a.at <= b.at for a, b in itertools.pairwise(entries))


def test_a_nurse_reply_goes_through_the_outbox_once_in_the_patients_language(
    app_ctx: Flask, nurse: FlaskClient
) -> None:
    patient = enrol(locale="zh")
    page = nurse.get(f"/patients/{patient.study_id}/conversation").get_data(as_text=True)
    nonce = re.search(r'name="nonce" value="([^"]+)"', page)
    assert nonce and "谢谢您的信息。研究护士今天会给您打电话。" in page  # phrase in Chinese
    data = {"phrase": "will_call", "nonce": nonce.group(1)}
    assert post(nurse, f"/patients/{patient.study_id}/conversation", data).status_code == 302
    post(nurse, f"/patients/{patient.study_id}/conversation", data)  # a double click
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "reply")).all()
    assert len(rows) == 1
    assert rows[0].body == "【江苏省肿瘤医院】谢谢您的信息。研究护士今天会给您打电话。"
    assert rows[0].status == "planned" and rows[0].dedupe_key == f"nurse:{nonce.group(1)}"
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "message.nurse_reply"))
    assert audit is not None and audit.actor == "user:nurse.chen"
    shown = nurse.get(f"/patients/{patient.study_id}/conversation").get_data(as_text=True)
    assert "研究护士今天会给您打电话" in shown and "Planned" in shown


def test_own_words_win_and_empty_or_blocked_replies_are_refused(app_ctx: Flask) -> None:
    patient = enrol(locale="en")
    now = utcnow()
    row = conversation.send_nurse_reply(patient, text=" Please call us. ", phrase="will_call",
                                        nonce="abcdefgh12", actor="user:x", now=now)  # fmt: skip
    assert row.body.endswith("Please call us.")
    for kwargs, code in (
        ({"text": "", "phrase": ""}, "empty"),
        ({"text": "x" * 501}, "too_long"),
        ({"phrase": "nonsense"}, "invalid"),
    ):
        try:
            conversation.send_nurse_reply(patient, nonce="abcdefgh13", actor="user:x", now=now,
                                          **kwargs)  # fmt: skip
        except conversation.ConversationError as exc:
            assert exc.code == code
        else:
            raise AssertionError(f"{kwargs} was accepted")
    patient.sms_opted_out_at = now
    db.session.commit()
    try:
        conversation.send_nurse_reply(patient, text="hi", nonce="abcdefgh14", actor="u", now=now)
    except conversation.ConversationError as exc:
        assert exc.code == "blocked"
    else:
        raise AssertionError("an opted-out patient got an SMS")


def test_the_patient_page_shows_the_trend_chart_with_treatment_marked(
    app_ctx: Flask, nurse: FlaskClient
) -> None:
    patient = enrol(start=date(2026, 1, 13), today=date(2026, 1, 6))  # treated before FIXED_NOW
    for index, swallowing in enumerate((0, 1, 3)):
        event = checkin_events(patient)[index]
        session = start_checkin(event, now=utcnow() - timedelta(days=10 - 3 * index), actor="t")
        assert session is not None
        answers = full_answers(session_items(session), {"S": swallowing})
        record_answers(session.id, answers, channel="web", now=session.sent_at, actor="t")
        db.session.commit()
    html = nurse.get(f"/patients/{patient.study_id}?trend=all").get_data(as_text=True)
    chart = html[html.index('id="trend-chart"') :]
    chart = chart[: chart.index("</figure>")]
    assert "<svg" in chart and "Difficulty swallowing" in chart
    assert "Infusion" in chart  # treatment dates marked
    assert "Always grade 0" in html and "Recent check-ins" in html
    assert html.count('id="checkin-') == 3


def test_demo_check_ins_are_graded_with_one_red_alert_and_idempotent(app_ctx: Flask) -> None:
    today = today_in(SHANGHAI)
    load_demo_data(today=today)
    created = load_demo_checkins(today=today)
    assert created >= 5 and load_demo_checkins(today=today) == 0
    sessions = db.session.scalars(select(CheckinSession)).all()
    assert any(s.status == "answered" and s.results for s in sessions)
    alerts = db.session.scalars(select(Alert)).all()
    assert [a.level for a in alerts if a.kind == "symptom"].count("red") == 1
    assert any(a.kind == "call_task" for a in alerts)


def test_control_characters_are_removed_and_line_break_runs_become_one_newline(
    app_ctx: Flask,
) -> None:
    patient = enrol(locale="en")
    typed = (
        "  Hello\x1b[31m red\x1b[0m\x07 there\r\n\r\n\r\nCall us\r\r  on\t\tMonday\x00\x7f\u202e "
    )

    row = conversation.send_nurse_reply(
        patient, text=typed, nonce="abcdefgh21", actor="user:x", now=utcnow()
    )

    assert row.body.endswith("Hello red there\nCall us\non Monday")
    assert not any(ord(ch) < 32 and ch != "\n" for ch in row.body)
    assert "\x7f" not in row.body and "\u202e" not in row.body
    try:
        conversation.send_nurse_reply(
            patient, text="\x1b\x07\r\n", nonce="abcdefgh22", actor="user:x", now=utcnow()
        )
    except conversation.ConversationError as exc:
        assert exc.code == "empty"
    else:
        raise AssertionError("a reply of control characters only was queued")
