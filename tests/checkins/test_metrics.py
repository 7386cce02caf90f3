"""Metrics from a known data set, and the symptom-report CSV export."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.domain import metrics as dm
from app.extensions import db
from app.models import AuditEntry, CheckinSession, utcnow
from app.services.alerts.alerts import NewAlert, acknowledge, create_alert, resolve
from app.services.conversations.checkins import metrics as checkin_metrics
from app.services.conversations.checkins.queries import (
    checkin_records,
    metrics_status,
    response_rates_page,
    symptom_reports_csv,
)
from app.services.conversations.checkins.sessions import record_answers, session_items
from tests.checkins.conftest import SHANGHAI, days, enrol, fresh, full_answers, post, start
from tests.support import sign_in


def _answer(session: CheckinSession, overrides: dict, *, complete: bool = True) -> None:
    answers = full_answers(session_items(session), overrides) if complete else overrides
    record_answers(session.id, answers, channel="web", now=session.sent_at + timedelta(hours=1),
                   actor="test")  # fmt: skip
    db.session.commit()


def test_check_in_statuses_count_as_the_metrics_define(app_ctx: Flask) -> None:
    patient = enrol()
    sessions = [start(patient, index=0)]
    _answer(sessions[0], {})
    sessions.append(start(patient, index=1))
    _answer(sessions[1], {"F": 37.0}, complete=False)  # partial, then superseded: closed
    sessions += [start(patient, index=2), start(patient, index=3)]
    # sessions[2] never answered, superseded: missed; sessions[3] still open: pending
    now = sessions[-1].sent_at + days(1)
    statuses = [metrics_status(fresh(s), now) for s in sessions]
    assert statuses == ["answered", "partial", "missed", "pending"]
    assert metrics_status(fresh(sessions[3]), sessions[3].expires_at) == "missed"


def test_metrics_from_a_known_data_set(app_ctx: Flask) -> None:
    first, second = enrol("JSCH-101"), enrol("JSCH-102")
    a = [start(first, index=0)]
    _answer(a[0], {})
    a.append(start(first, index=1))
    _answer(a[1], {"F": 36.9}, complete=False)
    a.append(start(first, index=2))  # open: pending
    b = [start(second, index=0), start(second, index=1)]  # the first missed (superseded)
    _answer(b[1], {"E": 1, "EI": 1})
    now = a[2].sent_at + days(1)

    # Alerts: red acknowledged after 10 min and resolved after 60; amber after 30/120;
    # another amber after 50 min and never resolved; a call task (not an alert).
    t0 = a[0].sent_at
    timings = [("red", 10, 60), ("amber", 30, 120), ("amber", 50, None)]
    for index, (level, ack, res) in enumerate(timings):
        alert = create_alert(NewAlert(f"m{index}", "symptom", level, "x", patient_id=first.id),
                             now=t0)  # fmt: skip
        db.session.commit()
        acknowledge(alert.id, actor="test", now=t0 + timedelta(minutes=ack))
        if res is not None:
            resolve(alert.id, actor="test", note="done", now=t0 + timedelta(minutes=res))
    create_alert(NewAlert("task", "call_task", "green", "x", patient_id=second.id), now=t0)
    db.session.commit()

    data = checkin_metrics.overview(now)
    rates = {r.patient_id: r for r in data.per_patient}
    assert (rates["JSCH-101"].due, rates["JSCH-101"].responded, rates["JSCH-101"].completed) == (
        2, 2, 1,
    )  # fmt: skip
    assert (rates["JSCH-102"].due, rates["JSCH-102"].responded) == (2, 1)
    assert (data.overall.due, data.overall.responded, data.overall.completed) == (4, 3, 2)
    assert data.overall.rate == 0.75
    assert data.alerts.by_level == {"red": 1, "amber": 2, "green": 1}  # the check-in note
    ack = data.alerts.acknowledge_by_level["amber"]
    assert (ack.median, ack.p90) == (timedelta(minutes=40), timedelta(minutes=50))
    res = data.alerts.resolve_by_level["amber"]
    assert (res.count, res.pending, res.median) == (1, 1, timedelta(minutes=120))
    assert (data.call_tasks, data.call_tasks_open) == (1, 1)


def test_the_metrics_page_renders_numbers_and_charts(app_ctx: Flask, nurse: FlaskClient) -> None:
    patient = enrol()
    _answer(start(patient), {"N": 2, "NS": 2})
    html = nurse.get("/metrics/?days=all").get_data(as_text=True)
    assert 'id="inbox-by-category"' in html and 'id="response-rates"' in html
    assert "<svg" in html and "JSCH-101" in html
    assert "Check-in response rate" in html


def test_the_symptom_report_export_has_one_row_per_answer(app_ctx: Flask) -> None:
    patient = enrol()
    session = start(patient)
    _answer(session, {"N": 3, "NS": 2, "F": 38.2})
    text = symptom_reports_csv(since=None, until=None, tz=SHANGHAI)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(fresh(session).answers)
    nausea = {r["question_code"]: r for r in rows if r["item_code"] == "N"}
    assert nausea["N"]["answer"] == "3" and nausea["N"]["answer_label"] == "frequently"
    assert nausea["NS"]["answer_label"] == "moderate"
    assert nausea["N"]["composite_grade"] == "2" and nausea["N"]["ctcae_term"] == "Nausea"
    assert nausea["N"]["study_id"] == "JSCH-101" and nausea["N"]["checkin_date"] == str(
        session.event_date
    )
    fever = next(r for r in rows if r["item_code"] == "F")
    assert fever["answer"] == "38.2" and fever["composite_grade"] == "" and fever["grade"] == "1"
    later = symptom_reports_csv(since=session.event_date + days(1), until=None, tz=SHANGHAI)
    assert later.count("\r\n") == 1  # header only


def test_the_export_is_audited_and_needs_a_nurse_or_investigator(
    app_ctx: Flask, client: FlaskClient, staff: dict[str, str]
) -> None:
    patient = enrol()
    _answer(start(patient), {})
    sign_in(client, staff["admin"])
    assert client.get("/metrics/symptom-reports.csv").status_code == 403
    post(client, "/sign-out")
    sign_in(client, staff["investigator"])
    response = client.get("/metrics/symptom-reports.csv?from=2026-01-01")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.get_data(as_text=True).startswith("\ufeffstudy_id,checkin_id,")
    (entry,) = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "export.symptom_reports")
    )
    assert entry.actor == "user:dr.li" and entry.after["from"] == "2026-01-01"
    assert entry.after["rows"] > 0


def test_csv_cells_cannot_become_formulas() -> None:
    from app.services.conversations.checkins.queries import csv_safe

    assert csv_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_safe("@SUM") == "'@SUM" and csv_safe("-2") == "'-2"
    assert csv_safe("JSCH-001") == "JSCH-001" and csv_safe(3) == 3


def test_the_metrics_page_counts_inbox_categories_with_links(
    app_ctx: Flask, nurse: FlaskClient
) -> None:
    patient = enrol()
    t0 = utcnow() - timedelta(days=3)
    for key, kind, level in (("r1", "symptom", "red"), ("a1", "symptom", "amber"),
                             ("c1", "call_task", "green"), ("c2", "call_task", "green")):  # fmt: skip
        create_alert(NewAlert(key, kind, level, "x", patient_id=patient.id), now=t0)
    db.session.commit()
    old = create_alert(NewAlert("old", "opt_out", "green", "x", patient_id=patient.id),
                       now=utcnow() - timedelta(days=200))  # fmt: skip
    db.session.commit()
    resolve(old.id, actor="test", note="done")
    html = nurse.get("/metrics/?days=30").get_data(as_text=True)
    rows = dict(re.findall(r'<tr id="category-(\w+)">(.*?)</tr>', html, re.S))
    cells = {c: re.findall(r"<td>(?:<a [^>]*>)?(\d+)", row) for c, row in rows.items()}
    assert cells["red"] == ["1", "1"] and cells["call_task"] == ["2", "2"]
    assert cells["opt_out"] == ["0", "0"]  # raised 200 days ago, resolved
    assert 'href="/inbox/?category=call_task"' in rows["call_task"]
    everything = nurse.get("/metrics/?days=all").get_data(as_text=True)
    opt_out = re.search(r'<tr id="category-opt_out">(.*?)</tr>', everything, re.S)
    assert opt_out is not None and re.findall(r"<td>(?:<a [^>]*>)?(\d+)", opt_out.group(1)) == [
        "1", "0",
    ]  # fmt: skip


def test_response_rates_are_counted_in_sql_as_the_metrics_define(app_ctx: Flask) -> None:
    """Every status mapping (answered, partial closed / open, missed, pending, call task with
    and without answers), hand-counted; the SQL counts equal metrics_status over each session."""
    first, second, third = enrol("JSCH-101"), enrol("JSCH-102"), enrol("JSCH-103")
    a = [start(first, index=0)]
    _answer(a[0], {})  # answered
    a.append(start(first, index=1))
    _answer(a[1], {"F": 36.9}, complete=False)  # partial, closed when superseded: partial
    a.append(start(first, index=2))  # open: pending
    b = [start(second, index=0), start(second, index=1)]  # b[0] superseded unanswered: missed
    _answer(b[1], {"E": 1, "EI": 1})  # answered
    c = [start(third, index=0)]
    _answer(c[0], {"F": 36.9}, complete=False)
    c.append(start(third, index=1))
    for session, answers in ((c[0], None), (c[1], {})):  # call tasks: with / without answers
        row = fresh(session)
        row.status = "call_task"
        if answers is not None:
            row.answers = answers
    db.session.commit()
    now = a[2].sent_at + days(1)

    expected = {"JSCH-101": (2, 2, 1), "JSCH-102": (2, 1, 1), "JSCH-103": (2, 1, 0)}
    by_python = dm.response_rates(checkin_records(now))
    assert {k: (r.due, r.responded, r.completed) for k, r in by_python.items()} == expected
    page, overall = response_rates_page(now, per_page=50)
    assert {r.patient_id: (r.due, r.responded, r.completed) for r in page.items} == expected
    assert (overall.due, overall.responded, overall.completed) == (6, 4, 2)
    assert [r.patient_id for r in page.items] == ["JSCH-101", "JSCH-102", "JSCH-103"]


def test_response_rates_come_one_page_of_patients_at_a_time(
    app_ctx: Flask, nurse: FlaskClient
) -> None:
    for study_id in ("JSCH-101", "JSCH-102", "JSCH-103"):
        _answer(start(enrol(study_id)), {})
    now = utcnow() + days(30)
    second, overall = response_rates_page(now, page=2, per_page=2)
    assert [r.patient_id for r in second.items] == ["JSCH-103"]
    assert (second.total, second.pages, second.has_next) == (3, 2, False)
    assert (overall.due, overall.responded) == (3, 3)  # every patient, not only the page's
    data = checkin_metrics.overview(now, page=1, per_page=2)
    assert [r.patient_id for r in data.per_patient] == ["JSCH-101", "JSCH-102"]
    assert data.overall.due == 3 and data.rates_page.has_next

    html = nurse.get("/metrics/?days=all&page=1").get_data(as_text=True)
    assert all(s in html for s in ("JSCH-101", "JSCH-102", "JSCH-103"))  # 50 a page
