"""Retention: old final outbox messages and their status history leave the database, archived.

A message whose life is over (``TERMINAL_STATUSES``: delivered, undelivered, failed, expired,
blocked, cancelled) and that has not changed for ``RETENTION_DAYS`` days is written, with its
status history, to a gzipped JSON-lines file in ``RETENTION_ARCHIVE_DIR`` (one file per batch,
flushed to disk before anything is deleted), then deleted from the database with its history.
Audit rows are never deleted. Each batch records one audit row (who, when, how many, which
file, why). Batches are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several job
processes archive disjoint rows; if a delete fails after its file was written, the rows stay and
a later run archives them again (an archive may then hold a message twice; nothing is lost).
``RETENTION_DAYS`` = 0 (the default) keeps everything.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, inspect, select

from app.configuration import retention_problems
from app.extensions import db
from app.models import OutboxMessage, OutboxStatusChange, utcnow
from app.models.messages import TERMINAL_STATUSES
from app.services.shared import audit

BATCH = 2000


class RetentionError(ValueError):
    """A retention setting that cannot be used (too short, or the archive not writable)."""


@dataclass(frozen=True)
class RetentionSettings:
    """How long final messages stay, where their archive goes, how many per batch."""

    days: int
    archive_dir: Path
    batch: int = BATCH

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetentionSettings:
        """RETENTION_DAYS (0: keep everything; else at least 30) and RETENTION_ARCHIVE_DIR."""
        problems = retention_problems(config)
        if problems:
            raise RetentionError(problems[0])
        days = int(config.get("RETENTION_DAYS") or 0)
        folder = Path(str(config.get("RETENTION_ARCHIVE_DIR") or "instance/archive"))
        return cls(days=days, archive_dir=folder, batch=int(config.get("RETENTION_BATCH") or BATCH))


@dataclass
class RetentionReport:
    """What one retention run did."""

    messages: int = 0
    history: int = 0
    files: list[str] | None = None

    def summary(self) -> str:
        """One line for logs and the CLI."""
        names = ", ".join(self.files or []) or "no file"
        return (
            f"archived and deleted {self.messages} messages, {self.history} status rows ({names})"
        )


def cutoff(settings: RetentionSettings, now: datetime) -> datetime | None:
    """Messages last changed before this instant go (None: retention is off)."""
    return now - timedelta(days=settings.days) if settings.days else None


def archive_old_messages(
    settings: RetentionSettings,
    *,
    now: datetime | None = None,
    actor: str,
    should_stop: Callable[[], bool] = lambda: False,
) -> RetentionReport:
    """Archive and delete every final message older than the setting, batch by batch."""
    now = now or utcnow()
    report = RetentionReport(files=[])
    before = cutoff(settings, now)
    if before is None:
        return report
    settings.archive_dir.mkdir(parents=True, exist_ok=True)
    while not should_stop():
        messages, history, path = _one_batch(settings, before, now, actor)
        if not messages:
            break
        report.messages += messages
        report.history += history
        assert report.files is not None
        report.files.append(path.name)
    return report


def _one_batch(
    settings: RetentionSettings, before: datetime, now: datetime, actor: str
) -> tuple[int, int, Path]:
    """One batch in one transaction: lock, write the file, delete, audit, commit."""
    messages = list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status.in_(TERMINAL_STATUSES), OutboxMessage.updated_at < before)
            .order_by(OutboxMessage.id)
            .limit(settings.batch)
            .with_for_update(skip_locked=True)
        )
    )
    if not messages:
        db.session.commit()
        return 0, 0, settings.archive_dir
    ids = [m.id for m in messages]
    history = list(
        db.session.scalars(
            select(OutboxStatusChange)
            .where(OutboxStatusChange.message_id.in_(ids))
            .order_by(OutboxStatusChange.message_id, OutboxStatusChange.id)
        )
    )
    path = _write_archive(settings.archive_dir, now, messages, history)
    db.session.execute(delete(OutboxStatusChange).where(OutboxStatusChange.message_id.in_(ids)))
    db.session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    audit.record(
        actor,
        "outbox.archived",
        entity_type="outbox",
        entity_id=f"{ids[0]}-{ids[-1]}",
        after={"messages": len(ids), "status_rows": len(history), "file": path.name},
        reason=f"retention: final messages unchanged for {settings.days} days (RETENTION_DAYS)",
        at=now,
    )
    db.session.commit()
    return len(ids), len(history), path


def _write_archive(
    folder: Path, now: datetime, messages: list[OutboxMessage], history: list[OutboxStatusChange]
) -> Path:
    """The batch as gzipped JSON lines (one message with its history a line), synced to disk."""
    by_message: dict[int, list[dict[str, Any]]] = {}
    for change in history:
        by_message.setdefault(change.message_id, []).append(_row(change))
    path = folder / f"outbox-{now:%Y%m%dT%H%M%S}-{messages[0].id}-{messages[-1].id}.jsonl.gz"
    partial = path.with_suffix(".part")
    with open(partial, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb") as out:
            for message in messages:
                line = _row(message) | {"history": by_message.get(message.id, [])}
                out.write(json.dumps(line, ensure_ascii=False, default=_json).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    partial.replace(path)
    return path


def _row(obj: Any) -> dict[str, Any]:
    """Every column of a model row."""
    return {c.key: getattr(obj, c.key) for c in inspect(obj).mapper.column_attrs}


def _json(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot archive {type(value).__name__}")


def read_archive(path: Path) -> list[dict[str, Any]]:
    """The messages of one archive file (with their history), as stored."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]
