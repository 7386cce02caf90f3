"""The audit log page: filters, pages, read-only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from app.extensions import db
from app.services.shared import audit
from app.web.helpers import clinic_today
from tests.web.conftest import enrol, post


def _rows(html: str) -> int:
    table = re.search(r'<table class="data" id="audit">(.*?)</table>', html, re.S)
    return 0 if table is None else table.group(1).count("<tr>") - 1


def test_audit_log_lists_changes_with_reason_and_patient(english_nurse: FlaskClient) -> None:
    enrol("JSCH-001")
    html = english_nurse.get("/audit/").get_data(as_text=True)
    assert "Enrolled" in html
    assert 'href="/patients/JSCH-001"' in html
    assert "user:nurse.wang" in html  # the sign-in of this test


def test_audit_filters(english_nurse: FlaskClient) -> None:
    enrol("JSCH-001")
    enrol("JSCH-002")
    assert _rows(english_nurse.get("/audit/?patient=JSCH-002").get_data(as_text=True)) == 1
    by_actor = english_nurse.get("/audit/?actor=test").get_data(as_text=True)
    assert _rows(by_actor) == 5  # three accounts and two enrolments
    both = english_nurse.get("/audit/?actor=test&action=patient.enrol").get_data(as_text=True)
    assert _rows(both) == 2
    by_action = english_nurse.get("/audit/?action=user.sign_in").get_data(as_text=True)
    assert _rows(by_action) == 1
    tomorrow = (clinic_today() + timedelta(days=1)).isoformat()
    assert "No entries match" in english_nurse.get(f"/audit/?from={tomorrow}").get_data(
        as_text=True
    )
    today = clinic_today().isoformat()
    assert _rows(english_nurse.get(f"/audit/?from={today}&to={today}").get_data(as_text=True)) >= 3


def test_date_filter_uses_the_clinic_day(english_nurse: FlaskClient) -> None:
    # 23:30 UTC on 1 March is 07:30 on 2 March in Shanghai.
    audit.record("test", "x.late", entity_type="test", at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    db.session.commit()
    assert (
        _rows(english_nurse.get("/audit/?from=2026-03-02&to=2026-03-02").get_data(as_text=True))
        == 1
    )
    assert (
        _rows(english_nurse.get("/audit/?from=2026-03-01&to=2026-03-01").get_data(as_text=True))
        == 0
    )


def test_audit_log_is_paginated(english_nurse: FlaskClient) -> None:
    for i in range(60):
        audit.record("test", "x.bulk", entity_type="test", entity_id=i)
    db.session.commit()
    first = english_nurse.get("/audit/?action=x.bulk").get_data(as_text=True)
    assert _rows(first) == 50
    assert "1–50 of 60" in first
    second = english_nurse.get("/audit/?action=x.bulk&page=2").get_data(as_text=True)
    assert _rows(second) == 10


def test_audit_log_is_read_only(english_nurse: FlaskClient) -> None:
    assert post(english_nurse, "/audit/", {"id": "1"}).status_code == 405
