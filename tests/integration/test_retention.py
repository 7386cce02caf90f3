"""Retention: old final messages are archived, then deleted with their history; audit stays."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from app.clock import utcnow
from app.configuration import retention_problems
from app.extensions import db
from app.models import AuditEntry, OutboxMessage, OutboxStatusChange
from app.services.messaging.outbox import add_history
from app.services.messaging.retention import (
    RetentionError,
    RetentionSettings,
    archive_old_messages,
    read_archive,
)
from jobs import retention as retention_job
from jobs.schedule import job_specs
from tests.integration.sms_support import add_due_messages


def make_messages(statuses_and_ages: list[tuple[str, int]]) -> list[int]:
    """One message per (status, days since its last change), each with two history rows."""
    ids = add_due_messages(len(statuses_and_ages))
    for message_id, (status, days) in zip(ids, statuses_and_ages, strict=True):
        changed = utcnow() - timedelta(days=days)
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(status=status, updated_at=changed, sent_at=changed)
        )
        add_history(message_id, "planned", "claimed", source="test", at=changed)
        add_history(message_id, "claimed", status, source="test", at=changed)
    db.session.commit()
    return ids


def remaining() -> set[int]:
    return set(db.session.scalars(select(OutboxMessage.id)))


def history_of(ids: list[int]) -> int:
    query = select(func.count()).where(OutboxStatusChange.message_id.in_(ids))
    return db.session.scalar(query.select_from(OutboxStatusChange)) or 0


def test_old_final_messages_are_archived_then_deleted_with_their_history(
    app_ctx: Flask, tmp_path: Path
) -> None:
    ids = make_messages(
        [
            ("delivered", 400),
            ("failed", 200),
            ("cancelled", 91),
            ("delivered", 10),
            ("unknown", 400),
            ("planned", 400),
            ("delivered", 89),
        ]
    )
    audit_before = db.session.scalar(select(func.count()).select_from(AuditEntry))
    settings = RetentionSettings(days=90, archive_dir=tmp_path)

    report = archive_old_messages(settings, actor="test:retention")

    gone = ids[:3]
    assert remaining() == set(ids[3:]), "only final messages older than 90 days go"
    assert history_of(gone) == 0 and history_of(ids[3:]) == 8
    assert (report.messages, report.history) == (3, 6)
    archived = read_archive(tmp_path / report.files[0])
    assert [row["id"] for row in archived] == gone
    assert archived[0]["status"] == "delivered" and archived[0]["body"].startswith("【测试】")
    assert [h["to_status"] for h in archived[1]["history"]] == ["claimed", "failed"]
    entries = list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert len(entries) == audit_before + 1, "audit rows are never deleted, one is added"
    assert entries[-1].action == "outbox.archived" and entries[-1].actor == "test:retention"
    assert entries[-1].after == {"messages": 3, "status_rows": 6, "file": report.files[0]}
    assert "RETENTION_DAYS" in (entries[-1].reason or "")


def test_large_backlogs_go_in_batches_each_with_its_file(app_ctx: Flask, tmp_path: Path) -> None:
    ids = make_messages([("delivered", 100 + n) for n in range(5)])

    report = archive_old_messages(
        RetentionSettings(days=30, archive_dir=tmp_path, batch=2), actor="test"
    )

    assert remaining() == set()
    assert len(report.files or []) == 3
    archived = [row["id"] for name in report.files or [] for row in read_archive(tmp_path / name)]
    assert archived == ids
    assert not list(tmp_path.glob("*.part"))


def test_a_stop_request_ends_the_run_between_batches(app_ctx: Flask, tmp_path: Path) -> None:
    make_messages([("delivered", 100 + n) for n in range(4)])
    calls = iter([False, True])

    report = archive_old_messages(
        RetentionSettings(days=30, archive_dir=tmp_path, batch=2),
        actor="test",
        should_stop=lambda: next(calls),
    )

    assert report.messages == 2 and len(remaining()) == 2


def test_retention_off_keeps_everything(app_ctx: Flask, tmp_path: Path) -> None:
    ids = make_messages([("delivered", 4000)])

    report = archive_old_messages(RetentionSettings(days=0, archive_dir=tmp_path), actor="t")

    assert report.messages == 0 and remaining() == set(ids)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("days", ["7", "29"])
def test_a_retention_too_short_for_replies_and_reports_is_refused(days: str) -> None:
    with pytest.raises(RetentionError, match="at least 30"):
        RetentionSettings.from_config({"RETENTION_DAYS": days})


def test_production_refuses_to_start_with_a_too_short_retention() -> None:
    assert retention_problems({"RETENTION_DAYS": 7}) == [
        "RETENTION_DAYS must be 0 (keep everything) or at least 30 (replies, budgets and "
        "reports read recent messages), got 7"
    ]
    assert retention_problems({"RETENTION_DAYS": 0}) == []
    assert retention_problems({"RETENTION_DAYS": 365}) == []


def test_the_daily_job_uses_the_settings(app_ctx: Flask, tmp_path: Path) -> None:
    ids = make_messages([("delivered", 60), ("delivered", 20)])
    app_ctx.config.update(RETENTION_DAYS=45, RETENTION_ARCHIVE_DIR=str(tmp_path))
    try:
        retention_job.run(app_ctx, threading.Event())
    finally:
        app_ctx.config.update(RETENTION_DAYS=0)

    assert remaining() == {ids[1]}
    assert len(list(tmp_path.glob("outbox-*.jsonl.gz"))) == 1
    spec = {s.id: s for s in job_specs(app_ctx.config)}["sms-retention"]
    assert spec.misfire_grace_time == 3600 and spec.max_instances == 1
