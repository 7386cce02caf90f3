"""JobsHeartbeat: the last sign of life of each jobs process, so readiness works across hosts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime

MAX_PROCESS_CHARS = 160


class JobsHeartbeat(db.Model):
    """One row per jobs process (host:pid), its start and its latest beat."""

    __tablename__ = "jobs_heartbeat"

    process: Mapped[str] = mapped_column(String(MAX_PROCESS_CHARS), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
