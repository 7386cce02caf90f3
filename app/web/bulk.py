"""Bulk work with progress: start a re-plan of every patient or an export, then watch it.

The POST only queues a job (app/services/bulk.py); a jobs process runs it while the page polls
/bulk/<id>.json and shows done / total, each patient's error, and the download when finished.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.domain.dates import DateInputError
from app.models import BulkJob, utcnow
from app.services import bulk as service
from app.services.shared.date_inputs import parse_date_input
from app.services.shared.heartbeat import latest_heartbeat
from app.web import audit_view, labels
from app.web.security import current_actor, require_login, requires

bp = Blueprint("bulk", __name__, url_prefix="/bulk")
bp.before_request(require_login)

KIND_LABELS = {
    "replan_all": _l("Re-plan every patient's reminders"),
    "symptom_reports": _l("Export of symptom reports (CSV)"),
}
STATUS_LABELS = {
    "queued": _l("Waiting to start"),
    "running": _l("Running"),
    "done": _l("Finished"),
    "failed": _l("Stopped by an error"),
}
ERROR_TEXTS = {
    "replan_all": _l("Could not be re-planned: the reminders stay as they were"),
    "symptom_reports": _l("Could not be read: left out of the file"),
}
AUDIT_FIELDS = {
    "patients": _l("Patients handled"),
    "patients_failed": _l("Patients with an error"),
    "created": _l("Reminders created"),
    "cancelled": _l("Reminders cancelled"),
    "rows": _l("Rows"),
    "from": _l("From"),
    "to": _l("To"),
    "job": _l("Bulk job"),
}
JOBS_PROCESS_STALE_SECONDS = 180


def register_bulk(app: Flask) -> None:
    """Register the blueprint, its filters and its audit action names."""
    app.register_blueprint(bp)
    app.jinja_env.filters.update(
        bulk_kind=lambda code: labels._lookup(KIND_LABELS, code),
        bulk_status=lambda code: labels._lookup(STATUS_LABELS, code),
    )
    labels.ACTION_LABELS.update(
        {
            "bulk.replan_all": _l("Re-plan of every patient started"),
            "bulk.replan_all.done": _l("Re-plan of every patient finished"),
            "bulk.replan_all.failed": _l("Re-plan of every patient stopped by an error"),
            "bulk.symptom_reports": _l("Export of symptom reports started"),
            "bulk.symptom_reports.done": _l("Export of symptom reports finished"),
            "bulk.symptom_reports.failed": _l("Export of symptom reports stopped by an error"),
        }
    )
    audit_view.FIELD_LABELS.update(AUDIT_FIELDS)


def _job_or_404(job_id: int) -> BulkJob:
    try:
        return service.get_job(job_id)
    except service.BulkError:
        abort(404)


def _jobs_process_alive() -> bool:
    beat = latest_heartbeat()
    return beat is not None and (utcnow() - beat).total_seconds() < JOBS_PROCESS_STALE_SECONDS


@bp.post("/replan-all")
@requires("patients.write")
def replan_all() -> Any:
    """Queue a re-plan of every patient's reminders and open its progress page."""
    job = service.request_job("replan_all", actor=current_actor())
    return redirect(url_for("bulk.show", job_id=job.id), code=303)


@bp.post("/symptom-reports")
@requires("patients.write")
def symptom_reports() -> Any:
    """Queue the symptom-report export (optional from / to dates) and open its progress page."""
    params = {}
    for key in ("from", "to"):
        raw = request.form.get(key, "").strip()
        if raw:
            try:
                params[key] = parse_date_input(raw).isoformat()
            except DateInputError:
                flash(_("Not a date the export can use: %(value)s", value=raw[:40]), "error")
                return redirect(url_for("metrics.index"))
    job = service.request_job("symptom_reports", actor=current_actor(), params=params)
    return redirect(url_for("bulk.show", job_id=job.id), code=303)


@bp.get("/<int:job_id>")
@requires("patients.view")
def show(job_id: int) -> Any:
    """The job's progress page (polls the JSON below while the job is unfinished)."""
    job = _job_or_404(job_id)
    return render_template(
        "bulk/show.html",
        job=job,
        jobs_alive=_jobs_process_alive(),
        error_text=labels._lookup(ERROR_TEXTS, job.kind),
    )


@bp.get("/<int:job_id>.json")
@requires("patients.view")
def progress(job_id: int) -> Any:
    """Status, done, total, failed and the per-patient errors, for the page to poll."""
    job = _job_or_404(job_id)
    response = jsonify(
        id=job.id,
        kind=job.kind,
        status=job.status,
        status_label=labels._lookup(STATUS_LABELS, job.status),
        finished=job.finished,
        done=job.done,
        total=job.total,
        failed=job.failed,
        errors=job.errors,
        summary=job.summary,
        jobs_alive=_jobs_process_alive(),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<int:job_id>/symptom-reports.csv")
@requires("patients.write")
def download(job_id: int) -> Any:
    """The finished export (audited download); 409 while it is still being built."""
    try:
        job = service.download(job_id, actor=current_actor())
    except service.BulkError as exc:
        abort(404 if exc.code in ("not_found", "no_result") else 409)
    response = Response("\ufeff" + (job.result or ""), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = 'attachment; filename="symptom-reports.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
