"""Issuing check-ins from the calendar, reminders and nurse call tasks, with a fixed clock."""

from __future__ import annotations

import threading
from datetime import date, time

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.clock import FrozenClock
from app.extensions import db
from app.models import Alert, AuditEntry, CheckinSession, Patient
from app.services.conversations.checkins import schedule as schedule
from app.services.conversations.checkins.sessions import (
    CheckinSettings,
    record_answers,
    session_items,
)
from jobs import checkins as checkins_job
from tests.checkins.conftest import (
    alerts,
    checkin_events,
    checkin_messages,
    days,
    enrol,
    fresh,
    full_answers,
    local,
    mark_checkin_messages_sent,
)


def sessions() -> list[CheckinSession]:
    return list(
        db.session.scalars(
            select(CheckinSession)
            .order_by(CheckinSession.id)
            .execution_options(populate_existing=True)
        )
    )


def test_a_check_in_is_issued_at_the_send_time_of_its_day_and_only_once(app_ctx: Flask) -> None:
    patient = enrol()
    event = checkin_events(patient)[0]

    assert schedule.start_due(local(event.date, 9, 59)) == []
    assert schedule.due_events(local(event.date - days(1), 23, 0)) == []
    started = schedule.start_due(local(event.date, 10, 0))
    again = schedule.start_due(local(event.date, 10, 5))

    assert [s.event_key for s in started] == [event.key] and again == []
    (session,) = sessions()
    assert (session.status, session.phase, session.event_date) == (
        "scheduled",  # until its first question is handed to the provider
        "induction",
        event.date,
    )
    assert session.items[0] == "F" and session.current_question == "F"
    (message,) = checkin_messages(session)
    assert message.kind == "checkin" and message.dedupe_key == f"checkin:{session.id}:start"
    assert message.due_at == local(event.date, 10, 0)
    assert message.expires_at == session.expires_at == local(event.date, 10, 0) + days(4)
    assert "https://cadence.example.org/c/" in message.body
    assert "体温" in message.body and "改编自PRO-CTCAE" in message.body
    assert message.items[0]["question"] == "F" and message.items[0]["awaiting_temperature"]


def test_the_job_issues_late_in_the_window_but_not_after_it(app_ctx: Flask) -> None:
    patient = enrol()
    event = checkin_events(patient)[0]
    assert schedule.due_events(local(event.window_end + days(1), 10, 0)) == []
    started = schedule.start_due(local(event.window_end, 20, 0))
    assert [s.event_key for s in started] == [event.key]
    (message,) = checkin_messages(started[0])
    assert message.due_at == local(event.window_end, 20, 0)  # the dispatcher holds it if quiet


def test_the_questionnaire_follows_the_arm_and_the_phase(app_ctx: Flask) -> None:
    irinotecan = enrol("JSCH-101", chemo="irinotecan", pd1="camrelizumab")
    docetaxel = enrol("JSCH-102", chemo="docetaxel", pd1="sintilimab")
    first = schedule.start_checkin(checkin_events(irinotecan)[0], now=local(
        checkin_events(irinotecan)[0].date, 10), actor="test")  # fmt: skip
    second = schedule.start_checkin(checkin_events(docetaxel)[0], now=local(
        checkin_events(docetaxel)[0].date, 10), actor="test")  # fmt: skip
    assert first is not None and second is not None
    assert "K" in first.items and "T" not in first.items  # camrelizumab nodules, no taxane
    assert "T" in second.items and "K" not in second.items
    assert "CP" not in first.items  # chest pain is asked during salvage only
    diarrhoea = next(i for i in session_items(first) if i.code == "D")
    assert [g.code for g in diarrhoea.guidance] == ["loperamide_reminder"]


def test_an_unanswered_check_in_is_reminded_once_then_becomes_a_call_task(app_ctx: Flask) -> None:
    patient = enrol()
    event = checkin_events(patient)[0]
    sent = local(event.date, 10, 0)
    (session,) = schedule.start_due(sent)
    assert schedule.remind_due(sent + days(1)) == 0  # scheduled: its question has not gone out
    mark_checkin_messages_sent(sent)  # the reminder counts from the handover

    assert schedule.remind_due(sent + days(1) - days(1 / 1440)) == 0
    assert schedule.remind_due(sent + days(1)) == 1
    assert schedule.remind_due(sent + days(1.5)) == 0
    reminder = checkin_messages(session)[-1]
    assert reminder.dedupe_key == f"checkin:{session.id}:reminder"
    assert "提醒" in reminder.body and "/c/" in reminder.body
    assert fresh(session).reminded_at == sent + days(1)

    assert schedule.call_tasks_due(sent + days(2) - days(1 / 1440)) == 0
    assert schedule.call_tasks_due(sent + days(2)) == 1
    assert schedule.call_tasks_due(sent + days(3)) == 0
    assert fresh(session).status == "call_task"
    (task,) = alerts()
    assert (task.kind, task.level, task.status, task.patient_id) == (
        "call_task", "green", "open", patient.id,
    )  # fmt: skip
    assert task.next_escalation_at is None


def test_an_answer_after_the_call_task_closes_it(app_ctx: Flask) -> None:
    patient = enrol()
    sent = local(checkin_events(patient)[0].date, 10, 0)
    (session,) = schedule.start_due(sent)
    schedule.call_tasks_due(sent + days(2))
    answers = full_answers(session_items(session))
    record_answers(session.id, answers, channel="web", now=sent + days(2.5), actor="test")
    db.session.commit()
    assert fresh(session).status == "answered"
    task = next(a for a in alerts() if a.kind == "call_task")
    assert (task.status, task.resolved_by) == ("resolved", "system")
    assert task.resolution_note == "The patient answered the check-in."


def test_a_partly_answered_check_in_is_reminded_and_still_handed_to_a_nurse(app_ctx: Flask) -> None:
    patient = enrol()
    sent = local(checkin_events(patient)[0].date, 10, 0)
    (session,) = schedule.start_due(sent)
    record_answers(session.id, {"F": 36.9}, channel="sms", now=sent + days(0.1), actor="test")
    db.session.commit()
    assert schedule.remind_due(sent + days(1)) == 1
    assert schedule.call_tasks_due(sent + days(2)) == 1
    row = fresh(session)
    assert row.status == "call_task" and row.answers == {"F": 36.9}
    assert "partly answered" in alerts()[0].summary


def test_expiry_closes_an_unanswered_check_in_when_call_tasks_are_off(app_ctx: Flask) -> None:
    app_ctx.config["CHECKIN_CALL_TASK_DAYS"] = 0
    try:
        patient = enrol()
        sent = local(checkin_events(patient)[0].date, 10, 0)
        (session,) = schedule.start_due(sent)
        assert schedule.call_tasks_due(sent + days(3)) == 0
        assert schedule.expire_due(sent + days(4) - days(1 / 1440)) == 0
        assert schedule.expire_due(sent + days(4)) == 1
        row = fresh(session)
        assert (row.status, row.closed_at) == ("missed", sent + days(4))
    finally:
        app_ctx.config.pop("CHECKIN_CALL_TASK_DAYS")


def test_a_patient_who_opted_out_goes_straight_to_the_call_list(app_ctx: Flask) -> None:
    patient = enrol()
    event = checkin_events(patient)[0]
    patient.sms_opted_out_at = local(event.date, 8, 0)
    db.session.commit()
    (session,) = schedule.start_due(local(event.date, 10, 0))
    assert (session.status, session.delivery_blocked) == ("call_task", "opted_out")
    assert checkin_messages(session) == []
    (task,) = alerts()
    assert task.kind == "call_task" and "opted_out" in task.reasons[0]
    assert schedule.remind_due(local(event.date, 10, 0) + days(2)) == 0


def test_a_newer_check_in_closes_the_older_one(app_ctx: Flask) -> None:
    patient = enrol()
    first, second = checkin_events(patient)[:2]
    schedule.start_due(local(first.date, 10, 0))
    schedule.start_due(local(second.date, 10, 0))
    older, newer = sessions()
    assert older.closed_at == local(second.date, 10, 0) and older.status == "missed"
    assert newer.closed_at is None and newer.status == "scheduled"


def a_day_without_check_ins(patient: Patient, after: date) -> date:
    """The first day after ``after`` on which none of the patient's check-ins can start."""
    windows = [(e.date - days(1), e.window_end + days(1)) for e in checkin_events(patient)]
    day = after + days(1)
    while any(first <= day <= last for first, last in windows):
        day += days(1)
    return day


def test_the_job_runs_every_step_and_is_audited(app_ctx: Flask, clock: FrozenClock) -> None:
    patient = enrol()
    event = checkin_events(patient)[0]
    report = schedule.run_due(local(event.date, 10, 0))
    assert (report.started, report.errors) == (1, [])
    assert "checkin.start" in set(db.session.scalars(select(AuditEntry.action)))
    # The job reads the app clock: weeks later, on a day when no other check-in is due.
    clock.set(local(a_day_without_check_ins(patient, event.date + days(7)), 12, 0))
    checkins_job.run(app_ctx, threading.Event())
    (session,) = sessions()
    assert session.status == "call_task"  # never answered: a nurse calls
    assert db.session.scalar(select(func.count()).select_from(Alert)) == 1
    stopped = threading.Event()
    stopped.set()
    checkins_job.run(app_ctx, stopped)  # a stopping process does nothing


def test_an_unfinished_item_alerts_when_the_check_in_goes_to_a_nurse(app_ctx: Flask) -> None:
    patient = enrol()
    sent = local(checkin_events(patient)[0].date, 10, 0)
    (session,) = schedule.start_due(sent)
    record_answers(session.id, {"E": 4}, channel="sms", now=sent + days(0.1), actor="test")
    db.session.commit()
    assert alerts() == []  # fatigue's interference question is still to come
    schedule.call_tasks_due(sent + days(2))
    symptom = next(a for a in alerts() if a.kind == "symptom")
    assert symptom.level == "amber" and any("fatigue" in r for r in symptom.reasons)


def test_settings_come_from_the_config_or_the_environment(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = CheckinSettings.from_config({})
    assert (default.send_at, default.reminder_after, default.call_task_after) == (
        time(10, 0), days(1), days(2),
    )  # fmt: skip
    monkeypatch.setenv("CHECKIN_SEND_AT", "09:30")
    monkeypatch.setenv("CHECKIN_REMINDER_HOURS", "0")
    monkeypatch.setitem(app_ctx.config, "CHECKIN_LINK_HOURS", 48)
    tuned = CheckinSettings.from_config({"CHECKIN_CALL_TASK_DAYS": "3"})
    assert (tuned.send_at, tuned.reminder_after, tuned.call_task_after) == (
        time(9, 30), None, days(3),
    )  # fmt: skip
    assert tuned.link_valid == days(2)
    with pytest.raises(ValueError, match="CHECKIN_CALL_TASK_DAYS"):
        CheckinSettings.from_config({"CHECKIN_CALL_TASK_DAYS": "two"})
