"""BulkJob: long work started from a page (re-plan every patient, an export), with its progress.

The web request only records the job; a jobs process claims it (with a lease, so a crashed run
is picked up again) and moves `done` towards `total`, one patient at a time, while the page
polls the row. Per-patient errors are kept; a result (an export) is stored only when complete.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow

BULK_KINDS = ("replan_all", "symptom_reports")
BULK_STATUSES = ("queued", "running", "done", "failed")
UNFINISHED_BULK_STATUSES = ("queued", "running")


class BulkJob(db.Model):
    """One bulk job: what, who asked, progress (done of total, failed), errors and result."""

    __tablename__ = "bulk_job"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    requested_by: Mapped[str] = mapped_column(String(80))
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    result: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def finished(self) -> bool:
        """Done or failed: nothing more will happen."""
        return self.status not in UNFINISHED_BULK_STATUSES
