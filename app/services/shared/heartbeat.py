"""Jobs heartbeat: each jobs process records a row; readiness reads the freshest one."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from app.extensions import db
from app.models import JobsHeartbeat
from app.models.heartbeat import MAX_PROCESS_CHARS

# Rows of processes that stopped beating are removed after this long.
FORGET_AFTER = timedelta(days=7)


def record_heartbeat(process: str, started_at: datetime, now: datetime) -> None:
    """Insert or refresh this process's row, forget long-dead processes; commits."""
    process = process[:MAX_PROCESS_CHARS]
    row = db.session.get(JobsHeartbeat, process)
    if row is None:
        db.session.add(JobsHeartbeat(process=process, started_at=started_at, beat_at=now))
    else:
        row.beat_at = now
    db.session.execute(delete(JobsHeartbeat).where(JobsHeartbeat.beat_at < now - FORGET_AFTER))
    db.session.commit()


def latest_heartbeat() -> datetime | None:
    """When any jobs process last beat (None when none ever did)."""
    return db.session.scalar(select(func.max(JobsHeartbeat.beat_at)))
