"""Bulk work started from a page, run by a jobs process with progress the page polls.

Kinds: ``replan_all`` (every patient's reminders, one transaction per patient) and
``symptom_reports`` (the symptom-report CSV, built patient by patient). A request records a
queued BulkJob (or returns the unfinished one of the same kind: no double run); ``run_pending``
(the jobs process, every few seconds) claims it with a lease, works one patient at a time,
commits `done` after each, keeps each patient's error and goes on. A patient's work is all or
nothing (rolled back on error); an export's file exists only once every patient is read.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update

from app.extensions import db
from app.models import BulkJob, Patient
from app.models.bulk import BULK_KINDS, UNFINISHED_BULK_STATUSES
from app.services.alerts.alerts import alert_replan_failure
from app.services.conversations.checkins.queries import (
    CSV_COLUMNS,
    csv_safe,
    symptom_report_rows,
)
from app.services.messaging.reminders import planning_run, replan_patient
from app.services.shared import audit

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_ERRORS_KEPT = 200


class BulkError(ValueError):
    """A bulk job cannot be requested or read as asked (code: unknown_kind, not_found, ...)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def request_job(kind: str, *, actor: str, params: dict[str, Any] | None = None) -> BulkJob:
    """Queue a job (audited), or return the unfinished one of the same kind; commit."""
    if kind not in BULK_KINDS:
        raise BulkError(f"unknown bulk job {kind!r}", "unknown_kind")
    running = db.session.scalar(
        select(BulkJob)
        .where(BulkJob.kind == kind, BulkJob.status.in_(UNFINISHED_BULK_STATUSES))
        .order_by(BulkJob.id)
    )
    if running is not None:
        return running
    job = BulkJob(kind=kind, requested_by=actor, params=dict(params or {}), errors=[], summary={})
    db.session.add(job)
    db.session.flush()
    audit.record(actor, f"bulk.{kind}", entity_type="bulk_job", entity_id=job.id,
                 after=dict(job.params))  # fmt: skip
    db.session.commit()
    return job


def get_job(job_id: int) -> BulkJob:
    """The job, or BulkError(not_found)."""
    job = db.session.get(BulkJob, job_id, populate_existing=True)
    if job is None:
        raise BulkError(f"no bulk job {job_id}", "not_found")
    return job


def recent_jobs(kind: str, *, limit: int = 5) -> list[BulkJob]:
    """The latest jobs of a kind, newest first."""
    return list(
        db.session.scalars(
            select(BulkJob).where(BulkJob.kind == kind).order_by(BulkJob.id.desc()).limit(limit)
        )
    )


def claim_next(now: datetime) -> BulkJob | None:
    """Take the oldest queued job (or one whose runner's lease ran out); None if there is none."""
    candidates = db.session.scalars(
        select(BulkJob.id)
        .where(
            or_(
                BulkJob.status == "queued",
                (BulkJob.status == "running") & (BulkJob.lease_until < now),
            )
        )
        .order_by(BulkJob.id)
        .limit(5)
    ).all()
    for job_id in candidates:
        claimed = db.session.execute(
            update(BulkJob)
            .where(
                BulkJob.id == job_id,
                or_(
                    BulkJob.status == "queued",
                    (BulkJob.status == "running") & (BulkJob.lease_until < now),
                ),
            )
            .values(
                status="running",
                started_at=now,
                lease_until=now + LEASE,
                done=0,
                failed=0,
                errors=[],
            )
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            return get_job(job_id)
    return None


def run_pending(now: Callable[[], datetime], *, tz: ZoneInfo, limit: int = 3) -> int:
    """Claim and run queued jobs one after the other (the jobs process); return how many ran."""
    ran = 0
    while ran < limit:
        job = claim_next(now())
        if job is None:
            break
        run_job(job, now=now, tz=tz)
        ran += 1
    return ran


def run_job(job: BulkJob, *, now: Callable[[], datetime], tz: ZoneInfo) -> None:
    """Run a claimed job to the end; an unexpected error marks it failed (never half a result)."""
    try:
        RUNNERS[job.kind](job, now, tz)
    except Exception:  # the job's row must say it stopped
        db.session.rollback()
        logger.exception("bulk job %s (%s) failed", job.id, job.kind)
        _finish(job.id, now(), status="failed", summary={})


def _patients() -> list[tuple[int, str]]:
    return [
        (row.id, row.study_id)
        for row in db.session.execute(select(Patient.id, Patient.study_id).order_by(Patient.id))
    ]


def _replan_all(job: BulkJob, now: Callable[[], datetime], tz: ZoneInfo) -> None:
    patients = _patients()
    _set_total(job.id, len(patients), now())
    totals = {"created": 0, "cancelled": 0}
    source = job.requested_by
    with planning_run():
        for patient_id, study_id in patients:
            at = now()
            try:
                result = replan_patient(patient_id, now=at, source=source)
            except Exception as exc:  # one patient's failure must not stop the others
                db.session.rollback()
                logger.exception("bulk re-plan of patient %s failed", patient_id)
                alert_replan_failure(patient_id, exc, at, source)
                _progress(job.id, at, error={"study_id": study_id, "error": _error_text(exc)})
                continue
            totals["created"] += result.created + result.reactivated
            totals["cancelled"] += result.cancelled
            _progress(job.id, at)
    _finish(job.id, now(), status="done", summary=totals)


def _symptom_reports(job: BulkJob, now: Callable[[], datetime], tz: ZoneInfo) -> None:
    since, until = _date(job.params.get("from")), _date(job.params.get("to"))
    patients = _patients()
    _set_total(job.id, len(patients), now())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    rows = 0
    for patient_id, study_id in patients:
        try:
            lines = [
                {key: csv_safe(value) for key, value in row.items()}
                for row in symptom_report_rows(
                    since=since, until=until, tz=tz, patient_id=patient_id
                )
            ]
        except Exception as exc:  # this patient's rows are left out and said so
            db.session.rollback()
            logger.exception("symptom-report export of patient %s failed", patient_id)
            _progress(job.id, now(), error={"study_id": study_id, "error": _error_text(exc)})
            continue
        writer.writerows(lines)
        rows += len(lines)
        _progress(job.id, now())
    _finish(job.id, now(), status="done", summary={"rows": rows}, result=buffer.getvalue())


RUNNERS: dict[str, Callable[[BulkJob, Callable[[], datetime], ZoneInfo], None]] = {
    "replan_all": _replan_all,
    "symptom_reports": _symptom_reports,
}


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def _error_text(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _set_total(job_id: int, total: int, now: datetime) -> None:
    db.session.execute(
        update(BulkJob)
        .where(BulkJob.id == job_id)
        .values(total=total, lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _progress(job_id: int, now: datetime, *, error: dict[str, str] | None = None) -> None:
    """One more patient handled (with its error, if any); extends the lease; commit."""
    job = get_job(job_id)
    job.done += 1
    job.lease_until = now + LEASE
    if error is not None:
        job.failed += 1
        if len(job.errors) < MAX_ERRORS_KEPT:
            job.errors = [*job.errors, error]
    db.session.commit()


def _finish(
    job_id: int,
    now: datetime,
    *,
    status: str,
    summary: dict[str, Any],
    result: str | None = None,
) -> None:
    job = get_job(job_id)
    job.status = status
    job.finished_at = now
    job.lease_until = None
    job.summary = summary
    job.result = result
    audit.record(job.requested_by, f"bulk.{job.kind}.{status}", entity_type="bulk_job",
                 entity_id=job.id, at=now,
                 after={"patients": job.done, "patients_failed": job.failed, **summary})  # fmt: skip
    db.session.commit()


def download(job_id: int, *, actor: str) -> BulkJob:
    """A finished export for download (audited: who, which job, how many rows)."""
    job = get_job(job_id)
    if job.kind != "symptom_reports":
        raise BulkError(f"bulk job {job_id} has nothing to download", "no_result")
    if job.status != "done" or job.result is None:
        raise BulkError(f"bulk job {job_id} is not finished", "not_finished")
    audit.record(actor, "export.symptom_reports", entity_type="export",
                 entity_id="symptom-reports.csv",
                 after={"job": job.id, **job.params, "rows": job.summary.get("rows", 0),
                        "patients_failed": job.failed})  # fmt: skip
    db.session.commit()
    return job
