"""`flask --app app sms ...`: preview, plan, send-due (dry run, progress), reconcile, status."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Flask
from sqlalchemy import select

from app.clock import utcnow
from app.extensions import db
from app.models import OutboxMessage
from tests.integration.sms_support import add_due_messages, enrol

START = date(2026, 3, 10)


def run(app: Flask, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["sms", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def statuses(patient_id: int) -> dict[str, int]:
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == patient_id))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def test_preview_prints_the_next_messages_as_sent(app_ctx: Flask) -> None:
    enrol("JSCH-301", start=START)

    output = run(app_ctx, "preview", "JSCH-301", "--limit", "2")

    assert "JSCH-301  locale zh  time zone Asia/Shanghai" in output
    assert "2026-03-08 Sun 18:00  reminder planned" in output
    assert "【江苏省肿瘤医院】提醒：您3月9日周一需到院抽血化验。" in output
    assert "2 planned message(s) shown" in output


def test_preview_of_an_unknown_patient_fails_clearly(app_ctx: Flask) -> None:
    result = app_ctx.test_cli_runner().invoke(args=["sms", "preview", "NOPE-1"])

    assert result.exit_code != 0 and "no patient 'NOPE-1'" in result.output


def test_send_due_dry_run_lists_and_sends_nothing(app_ctx: Flask) -> None:
    patient = enrol("JSCH-302", start=START)
    before = statuses(patient.id)

    output = run(app_ctx, "send-due", "--now", "2026-03-09T09:00", "--dry-run")

    assert "1 message(s) due; nothing sent (dry run)" in output
    assert "JSCH-302" in output and "治疗前用药（3月9日周一 08:00）" in output
    assert statuses(patient.id) == before


def test_send_due_sends_what_is_due_at_the_given_time(app_ctx: Flask) -> None:
    patient = enrol("JSCH-303", start=START)

    evening = run(app_ctx, "send-due", "--now", "2026-03-08T18:30+08:00")
    next_evening = run(app_ctx, "send-due", "--now", "2026-03-09T18:10+08:00")

    assert "Sending" in evening
    assert "claimed 1, sent 1" in evening and "claimed 1, sent 1" in next_evening
    assert statuses(patient.id).get("sent") == 2
    assert "claimed 0" in run(app_ctx, "send-due", "--now", "2026-03-09T18:10+08:00")


def test_a_reminder_long_overdue_is_not_sent_late(app_ctx: Flask) -> None:
    patient = enrol("JSCH-306", start=START)

    output = run(app_ctx, "send-due", "--now", "2026-03-09T09:00")

    assert "claimed 1, sent 0" in output and "expired 1" in output  # 18:00 the day before
    assert statuses(patient.id).get("expired") == 1


def test_reconcile_and_status_report(app_ctx: Flask) -> None:
    enrol("JSCH-304", start=START)

    assert "expired leases 0, checked 0" in run(app_ctx, "reconcile")
    assert "planned" in run(app_ctx, "status")


def test_plan_is_idempotent(app_ctx: Flask) -> None:
    enrol("JSCH-305", start=START)

    output = run(app_ctx, "plan", "JSCH-305")

    assert output.startswith("0 new,") and " 0 cancelled" in output


def test_health_fails_when_due_messages_wait_too_long(app_ctx: Flask) -> None:
    runner = app_ctx.test_cli_runner()
    assert runner.invoke(args=["sms", "health"]).exit_code == 0
    add_due_messages(2, due=utcnow() - timedelta(minutes=10))

    result = runner.invoke(args=["sms", "health"])

    assert result.exit_code == 1
    assert "healthy              False" in result.output
    values = dict(line.split(maxsplit=1) for line in result.output.splitlines())
    assert 600 <= int(values["oldest_due_seconds"]) < 700
