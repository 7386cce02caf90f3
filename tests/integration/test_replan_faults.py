"""Re-planning with the real renderer (zh and en): body variants, language changes, failures."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Alert, OutboxMessage, Patient
from app.services.alerts.alerts import alert_replan_failure
from app.services.messaging import reminders
from app.services.schedule import calendar as calendar_service
from tests.integration.sms_support import TODAY, enrol

START = date(2026, 3, 10)


def planned(patient: Patient) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.patient_id == patient.id, OutboxMessage.status == "planned")
            .order_by(OutboxMessage.send_after, OutboxMessage.id)
        )
    )


def copy_as_sent(row: OutboxMessage) -> None:
    """A message with the same body, already sent at the same time (forces a body variant)."""
    db.session.add(
        OutboxMessage(
            patient_id=row.patient_id,
            dedupe_key="sent-copy:" + row.dedupe_key,
            kind="staff",
            status="sent",
            body=row.body,
            locale=row.locale,
            segments=row.segments,
            encoding=row.encoding,
            send_after=row.send_after,
            due_at=row.due_at,
            expires_at=row.expires_at,
        )
    )
    db.session.commit()


@pytest.mark.parametrize(
    ("locale", "stamp"),
    [("en", "(Mar 9, 18:00)"), ("zh", "（3月9日 18:00）")],
)
def test_a_body_variant_is_rendered_with_the_real_renderer(
    app_ctx: Flask, locale: str, stamp: str
) -> None:
    patient = enrol(start=START, locale=locale)
    premed = next(
        r for r in planned(patient) if r.send_after == datetime(2026, 3, 9, 10, tzinfo=UTC)
    )
    copy_as_sent(premed)

    reminders.plan_patient(patient, now=reminders.planning_moment(TODAY), source="test")
    db.session.commit()

    again = [r for r in planned(patient) if r.send_after == premed.send_after]
    assert len(again) == 1 and again[0].body != premed.body
    assert stamp in again[0].body
    assert "body_variant" in again[0].notes


def test_marking_an_event_done_re_plans_with_variants(app_ctx: Flask) -> None:
    patient = enrol(start=START, locale="en")
    premed = next(
        r for r in planned(patient) if r.send_after == datetime(2026, 3, 9, 10, tzinfo=UTC)
    )
    copy_as_sent(premed)
    labs = next(e for e in patient.events if e.kind == "labs" and e.date == date(2026, 3, 9))

    calendar_service.mark_event(labs, "done", actor="user:nurse1", reason="seen")
    reminders.plan_patient(patient, now=reminders.planning_moment(TODAY), source="user:nurse1")
    db.session.commit()

    assert any("(Mar 9, 18:00)" in r.body for r in planned(patient))


def test_a_language_correction_re_renders_due_rows_and_pending_notices(app_ctx: Flask) -> None:
    patient = enrol(start=START, locale="en")
    c2 = next(e for e in patient.events if e.kind == "infusion" and e.cycle == 2)
    calendar_service.reschedule_event(
        patient.id, c2.key, c2.date + timedelta(days=2), "patient request", actor="user:nurse1",
        today=TODAY,
    )  # fmt: skip
    first = planned(patient)[0]
    assert "Schedule change" in first.body or "Reminder" in first.body
    patient.locale = "zh"
    db.session.commit()

    later = first.send_after + timedelta(minutes=1)  # the first row is due, not yet sent
    reminders.plan_patient(patient, now=later, source="user:nurse1")
    db.session.commit()

    rows = planned(patient)
    assert rows and first.id in {r.id for r in rows}
    english = [r.body for r in rows if "Reply STOP" in r.body]
    assert english == []
    assert {r.locale for r in rows} == {"zh"}
    assert any(
        r.kind == "moved" and r.body.startswith("【江苏省肿瘤医院】日程变更：") for r in rows
    )


def test_replan_all_goes_on_past_a_failing_patient(
    app_ctx: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    broken = enrol("JSCH-201", start=START)
    fine = enrol("JSCH-202", start=START)
    broken.timezone = "Mars/Olympus_Mons"  # a corrupt row: planning it raises
    db.session.commit()

    with caplog.at_level(logging.ERROR, logger="app.services.messaging.reminders"):
        totals = reminders.replan_all(
            now=reminders.planning_moment(TODAY),
            source="job:replan",
            on_failure=alert_replan_failure,
        )

    assert totals["failed"] == 1 and totals["patients"] == 1
    assert f"re-planning patient {broken.id} failed" in caplog.text
    alert = db.session.scalar(select(Alert).where(Alert.patient_id == broken.id))
    assert alert is not None and alert.kind == "review" and alert.status == "open"
    assert db.session.scalar(select(Alert).where(Alert.patient_id == fine.id)) is None
    assert planned(fine)


def test_sms_plan_all_reports_failed_patients_and_exits_non_zero(app_ctx: Flask) -> None:
    broken = enrol("JSCH-211", start=START)
    enrol("JSCH-212", start=START)
    broken.timezone = "Mars/Olympus_Mons"
    db.session.commit()

    result = app_ctx.test_cli_runner().invoke(args=["sms", "plan", "--all"])

    assert result.exit_code == 1
    assert "1 patients:" in result.output
    assert "1 patient(s) could not be re-planned" in result.output
