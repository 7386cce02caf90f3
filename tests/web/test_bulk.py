"""Bulk work with progress: re-plan every patient and the symptom-report export run as jobs
(a row with done / total the page polls), errors per patient, nothing half-written."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Alert, AuditEntry, BulkJob, OutboxMessage, utcnow
from app.services import bulk
from app.services.conversations.checkins.queries import symptom_reports_csv
from app.services.conversations.checkins.sessions import record_answers, session_items
from app.services.messaging import reminders
from jobs.schedule import job_specs
from tests.checkins.conftest import full_answers, start
from tests.web.conftest import enrol, post

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _job_id(response) -> int:
    assert response.status_code == 303
    found = re.search(r"/bulk/(\d+)$", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def _planned(patient_id: int) -> list[tuple[str, str]]:
    return sorted(
        (row.dedupe_key, row.status)
        for row in db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.patient_id == patient_id)
        )
    )


def test_replan_all_is_queued_then_run_with_progress(english_nurse: FlaskClient) -> None:
    patients = [enrol(f"JSCH-50{i}") for i in range(3)]
    for patient in patients:  # lose the plan: re-planning must bring it back
        assert reminders.cancel_unsent(patient, reason="test", source="test") > 0
    db.session.commit()
    job_id = _job_id(post(english_nurse, "/bulk/replan-all"))
    page = english_nurse.get(f"/bulk/{job_id}").get_data(as_text=True)
    assert "Waiting to start" in page and 'id="bulk-progress"' in page
    assert english_nurse.get(f"/bulk/{job_id}.json").get_json()["status"] == "queued"
    # A second click while it waits does not start a second run.
    assert _job_id(post(english_nurse, "/bulk/replan-all")) == job_id

    seen: list[tuple[int, int]] = []
    real_progress = bulk._progress

    def watching(job: int, now, *, error=None) -> None:
        real_progress(job, now, error=error)
        row = db.session.get(BulkJob, job, populate_existing=True)
        seen.append((row.done, row.total))

    bulk._progress = watching  # type: ignore[assignment]
    try:
        assert bulk.run_pending(utcnow, tz=SHANGHAI) == 1
    finally:
        bulk._progress = real_progress  # type: ignore[assignment]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    data = english_nurse.get(f"/bulk/{job_id}.json").get_json()
    assert (data["status"], data["done"], data["total"], data["failed"]) == ("done", 3, 3, 0)
    assert data["summary"]["created"] > 0
    for patient in patients:
        assert "planned" in {status for _, status in _planned(patient.id)}, patient.study_id
    page = english_nurse.get(f"/bulk/{job_id}").get_data(as_text=True)
    assert "Finished" in page and re.search(r"Reminders: [1-9]\d* new", page)
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"bulk.replan_all", "bulk.replan_all.done"} <= actions


def test_a_failing_patient_is_reported_and_left_unchanged(
    english_nurse: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = enrol("JSCH-511"), enrol("JSCH-512")
    before = _planned(bad.id)
    real_plan = reminders.plan_patient

    def breaks_for_bad(patient, **kwargs):
        result = real_plan(patient, **kwargs)  # writes, then fails: must be rolled back
        if patient.id == bad.id:
            assert reminders.cancel_unsent(patient, reason="test", source="test") > 0
            raise RuntimeError("template missing for this patient")
        return result

    monkeypatch.setattr(reminders, "plan_patient", breaks_for_bad)
    job_id = _job_id(post(english_nurse, "/bulk/replan-all"))
    bulk.run_pending(utcnow, tz=SHANGHAI)
    job = db.session.get(BulkJob, job_id, populate_existing=True)
    assert (job.status, job.done, job.total, job.failed) == ("done", 2, 2, 1)
    assert job.errors == [
        {"study_id": "JSCH-512", "error": "RuntimeError: template missing for this patient"}
    ]
    assert _planned(bad.id) == before  # rolled back: nothing half-written
    assert _planned(good.id)
    page = english_nurse.get(f"/bulk/{job_id}").get_data(as_text=True)
    errors = re.search(r'id="bulk-errors-card"(.*?)</section>', page, re.S).group(1)
    assert "JSCH-512" in errors and "template missing" in errors and "JSCH-511" not in errors
    # The failure is also a review item in the triage inbox.
    assert db.session.scalar(
        select(Alert).where(Alert.patient_id == bad.id, Alert.kind == "review")
    )


def test_the_symptom_report_export_runs_as_a_job_and_downloads_when_done(
    english_nurse: FlaskClient,
) -> None:
    first = enrol("JSCH-521")
    enrol("JSCH-522")
    session = start(first)
    record_answers(session.id, full_answers(session_items(session), {"N": 3, "NS": 2}),
                   channel="web", now=session.sent_at + timedelta(hours=1), actor="test")  # fmt: skip
    db.session.commit()
    job_id = _job_id(post(english_nurse, "/bulk/symptom-reports", {"from": "", "to": ""}))
    assert english_nurse.get(f"/bulk/{job_id}/symptom-reports.csv").status_code == 409
    bulk.run_pending(utcnow, tz=SHANGHAI)
    data = english_nurse.get(f"/bulk/{job_id}.json").get_json()
    assert (data["status"], data["done"], data["total"]) == ("done", 2, 2)
    page = english_nurse.get(f"/bulk/{job_id}").get_data(as_text=True)
    assert 'id="bulk-download"' in page
    response = english_nurse.get(f"/bulk/{job_id}/symptom-reports.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    body = response.get_data(as_text=True).lstrip("\ufeff")
    expected = symptom_reports_csv(since=None, until=None, tz=SHANGHAI)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert rows == list(csv.DictReader(io.StringIO(expected))) and len(rows) > 0
    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "export.symptom_reports")
    ).one()
    assert audit.after["job"] == job_id and audit.after["rows"] == len(rows)


def test_a_bad_export_date_is_refused_and_nothing_is_queued(english_nurse: FlaskClient) -> None:
    response = post(english_nurse, "/bulk/symptom-reports", {"from": "2026-02-31"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/metrics/")
    assert db.session.scalar(select(BulkJob)) is None
    page = english_nurse.get("/metrics/").get_data(as_text=True)
    assert "Not a date the export can use: 2026-02-31" in page


def test_a_job_is_claimed_once_and_a_dead_runner_is_taken_over(app_ctx) -> None:
    enrol("JSCH-531")
    job = bulk.request_job("replan_all", actor="user:test")
    now = utcnow()
    assert bulk.claim_next(now).id == job.id
    assert bulk.claim_next(now) is None  # running, lease not run out
    later = now + bulk.LEASE + timedelta(seconds=1)
    again = bulk.claim_next(later)
    assert again is not None and again.id == job.id and again.done == 0


def test_bulk_work_needs_the_right_role(admin: FlaskClient) -> None:
    assert post(admin, "/bulk/replan-all").status_code == 403
    assert admin.get("/bulk/999").status_code in (403, 404)


def test_the_pages_start_bulk_work_by_post(english_nurse: FlaskClient) -> None:
    messages = english_nurse.get("/messages/").get_data(as_text=True)
    assert re.search(r'<form method="post" action="/bulk/replan-all"', messages)
    metrics = english_nurse.get("/metrics/").get_data(as_text=True)
    assert re.search(r'<form method="post" action="/bulk/symptom-reports"', metrics)


def test_the_jobs_process_runs_bulk_work() -> None:
    specs = {spec.id: spec for spec in job_specs({})}
    assert "bulk-jobs" in specs
