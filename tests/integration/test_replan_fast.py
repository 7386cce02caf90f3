"""Re-planning costs a few statements per patient and writes only what changed (both DBs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

from flask import Flask
from sqlalchemy import delete, event, select

from app.extensions import db
from app.models import CalendarEvent, OutboxMessage, OutboxStatusChange, Patient, ReminderPlanState
from app.services.messaging import reminders
from tests.integration.sms_support import TODAY, enrol

START = date(2026, 3, 10)
WRITES = ("INSERT", "UPDATE", "DELETE")


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement the session's engine runs inside the block."""
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement.lstrip().upper())

    engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def writes(seen: list[str]) -> list[str]:
    return [s for s in seen if s.startswith(WRITES)]


def snapshot(patient_id: int) -> dict[int, tuple]:
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.patient_id == patient_id)
        .execution_options(populate_existing=True)
    )
    return {r.id: (r.status, r.body, r.send_after, r.updated_at, tuple(r.event_keys)) for r in rows}


def now() -> object:
    return reminders.planning_moment(TODAY)


def test_a_second_re_plan_with_nothing_changed_writes_nothing(app_ctx: Flask) -> None:
    patient = enrol("JSCH-801", start=START)
    before = snapshot(patient.id)
    assert len(before) > 20

    with statements() as seen:
        totals = reminders.replan_all(now=now(), source="job:replan")
    assert totals["skipped"] == 1 and totals["patients"] == 1
    assert writes(seen) == []
    assert len(seen) <= 12  # the fingerprint's reads, whatever the number of rows

    with statements() as seen:  # forced: planned again in full, still nothing to write
        reminders.replan_all(now=now(), source="job:replan", skip_unchanged=False)
    assert writes(seen) == []
    assert snapshot(patient.id) == before


def test_a_change_of_input_is_not_skipped(app_ctx: Flask) -> None:
    patient = enrol("JSCH-802", start=START)
    row = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.patient_id == patient.id,
            OutboxMessage.status == "planned",
            OutboxMessage.send_after >= now(),
        )
    ).first()
    reminders._cancel_rows([row], "staff cancelled", "user:nurse1", error=None)
    db.session.commit()

    totals = reminders.replan_all(now=now(), source="job:replan")

    assert totals["skipped"] == 0  # the outbox changed: planned again (the row comes back)
    assert db.session.get(OutboxMessage, row.id, populate_existing=True).status == "planned"
    patient.locale = "en"
    db.session.commit()
    assert reminders.replan_all(now=now(), source="job:replan")["skipped"] == 0
    assert reminders.replan_all(now=now(), source="job:replan")["skipped"] == 1


def test_a_change_inside_an_events_details_is_not_skipped(app_ctx: Flask) -> None:
    # The fingerprint reads JSON columns as stored text: a change there must still count.
    patient = enrol("JSCH-804", start=START)
    assert reminders.replan_all(now=now(), source="job:replan")["skipped"] == 1
    event_row = db.session.scalars(
        select(CalendarEvent).where(CalendarEvent.patient_id == patient.id)
    ).first()
    event_row.details = {**(event_row.details or {}), "note": "bring the blue card"}
    db.session.commit()

    assert reminders.replan_all(now=now(), source="job:replan")["skipped"] == 0
    assert reminders.replan_all(now=now(), source="job:replan")["skipped"] == 1


def test_a_moved_event_rewrites_only_its_rows(app_ctx: Flask) -> None:
    patient = enrol("JSCH-803", start=START)
    before = snapshot(patient.id)
    moved = db.session.scalars(
        select(CalendarEvent)
        .where(CalendarEvent.patient_id == patient.id, CalendarEvent.kind == "imaging")
        .order_by(CalendarEvent.date)
    ).first()
    key = moved.key
    assert any(key in keys for *_, keys in before.values())
    moved.date = moved.date + timedelta(days=3)
    db.session.commit()

    with statements() as seen:
        totals = reminders.replan_all(now=now(), source="job:replan")

    assert totals["skipped"] == 0 and totals["created"] >= 1 and totals["cancelled"] >= 1
    after = snapshot(patient.id)
    changed = {i for i in before if after[i] != before[i]}
    new = set(after) - set(before)
    assert new and all(key in after[i][4] for i in new)
    merged_at = {after[i][2] for i in new}  # a reminder merged into the moved event's one
    assert changed and all(key in before[i][4] or before[i][2] in merged_at for i in changed)
    assert all(after[i][0] == "cancelled" for i in changed)
    assert len(changed) + len(new) <= 4 < len(before)
    # one bulk insert of the rows and one of their history rows, whatever their number
    inserts = [s for s in writes(seen) if s.startswith("INSERT INTO OUTBOX_MESSAGE ")]
    assert len(inserts) <= 1 + len(new) // 1000


def plan_from_scratch(patient_id: int, *, days_later: int = 0) -> tuple[int, int, int]:
    """Drop the patient's outbox and plan it again: (statements, writes, rows planned)."""
    ids = select(OutboxMessage.id).where(OutboxMessage.patient_id == patient_id)
    db.session.execute(delete(OutboxStatusChange).where(OutboxStatusChange.message_id.in_(ids)))
    db.session.execute(delete(OutboxMessage).where(OutboxMessage.patient_id == patient_id))
    db.session.execute(delete(ReminderPlanState).where(ReminderPlanState.patient_id == patient_id))
    db.session.commit()
    patient = db.session.get(Patient, patient_id)
    with statements() as seen:
        at = now() + timedelta(days=days_later)
        result = reminders.plan_patient(patient, now=at, source="test")
        db.session.commit()
    return len(seen), len(writes(seen)), result.created


def test_statements_per_patient_do_not_grow_with_its_rows(app_ctx: Flask) -> None:
    long = enrol("JSCH-804", start=START)
    short = enrol("JSCH-805", start=START)

    many = plan_from_scratch(long.id)
    few = plan_from_scratch(short.id, days_later=400)  # most of its calendar is past

    assert many[2] >= few[2] + 30 and few[2] > 0
    assert many[0] == few[0] and many[1] == few[1]
    assert many[0] <= 20 and many[1] <= 4  # rows, their history, the fingerprint


def test_sms_plan_all_skips_unchanged_patients_unless_forced(app_ctx: Flask) -> None:
    enrol("JSCH-806", start=START)
    changed = enrol("JSCH-807", start=START)
    changed.sms_opted_out_at = reminders.planning_moment(TODAY)
    db.session.commit()
    runner = app_ctx.test_cli_runner()

    first = runner.invoke(args=["sms", "plan", "--all"])
    again = runner.invoke(args=["sms", "plan", "--all"])
    forced = runner.invoke(args=["sms", "plan", "--all", "--force"])

    assert first.exit_code == 0 and "1 unchanged (skipped)" in first.output
    assert "cancelled, 2 unchanged (skipped)" in again.output
    assert "0 unchanged (skipped)" in forced.output and "0 new, 0 cancelled" in forced.output
    assert (
        db.session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.patient_id == changed.id, OutboxMessage.status == "planned"
            )
        )
        is None
    )  # the opted-out patient was planned again: nothing left to send


def test_sms_plan_all_shows_its_progress(app_ctx: Flask) -> None:
    enrol("JSCH-808", start=START)
    enrol("JSCH-809", start=START)

    result = app_ctx.test_cli_runner().invoke(args=["sms", "plan", "--all", "--force"])

    assert result.exit_code == 0
    assert "Re-planning" in result.output  # the progress bar (stderr), then the totals
    assert "2 patients: 0 new, 0 cancelled, 0 unchanged (skipped)" in result.output


def test_a_planning_run_renders_each_body_as_one_plan_does(app_ctx: Flask) -> None:
    # Inside a run a body is rendered once per message, variant, language and time zone:
    # two patients on the same dates, one in each language, must still get their own words.
    chinese = enrol("JSCH-810", start=START)
    english = enrol("JSCH-811", start=START, locale="en")
    alone = {}
    for patient in (chinese, english):
        ctx = reminders.context_for(patient)
        messages = reminders.preview_plan(patient, now=now())
        alone[patient.id] = [reminders.render_message(m, v, ctx) for m in messages for v in (0, 2)]
    assert alone[chinese.id] and len(alone[chinese.id]) == len(alone[english.id])

    with reminders.planning_run():
        for _ in range(2):  # the second time from the run's memo
            for patient in (chinese, english):
                ctx = reminders.context_for(patient)
                messages = reminders.preview_plan(patient, now=now())
                bodies = [reminders.render_message(m, v, ctx) for m in messages for v in (0, 2)]
                assert bodies == alone[patient.id]
    assert alone[chinese.id] != alone[english.id]
