"""Readiness: /healthz answers 503 with reasons when not ready; pages show a configuration error."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.extensions import db
from app.models import JobsHeartbeat, utcnow
from app.services.shared.heartbeat import latest_heartbeat, record_heartbeat
from tests.support import sign_in
from tests.web.conftest import Staff


@pytest.fixture
def broken_protocol(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PROTOCOL_PATH points at a file that is not a valid protocol."""
    path = tmp_path / "broken.yaml"
    path.write_text("code: [unclosed\n", encoding="utf-8")
    monkeypatch.setitem(app.config, "PROTOCOL_PATH", str(path))
    return path


@pytest.fixture
def heartbeat_required(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in production: a fresh jobs heartbeat is required."""
    monkeypatch.setitem(app.config, "JOBS_HEARTBEAT_REQUIRED", True)


def test_healthz_is_ok_with_every_check_listed(client: FlaskClient) -> None:
    response = client.get("/healthz")

    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "protocol", "catalogs", "jobs"}
    assert body["checks"]["jobs"] == {
        "ok": False,
        "required": False,
        "detail": "no jobs process has recorded a heartbeat",
    }


def test_livez_touches_nothing_else(client: FlaskClient, broken_protocol: Path) -> None:
    response = client.get("/livez")

    assert response.status_code == 200 and response.get_json() == {"status": "alive"}


def test_a_broken_protocol_makes_healthz_503_with_the_reason(
    client: FlaskClient, broken_protocol: Path
) -> None:
    response = client.get("/healthz")

    body = response.get_json()
    assert response.status_code == 503
    assert body["status"] == "not ready"
    assert len(body["problems"]) == 1
    assert body["problems"][0].startswith(f"protocol: PROTOCOL_PATH={broken_protocol}")


def test_a_missing_protocol_file_is_reported_too(
    client: FlaskClient, app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "PROTOCOL_PATH", str(tmp_path / "gone.yaml"))

    response = client.get("/healthz")

    assert response.status_code == 503
    assert "gone.yaml" in response.get_json()["problems"][0]


def test_pages_show_a_translated_configuration_error_not_a_bare_500(
    client: FlaskClient, staff: Staff, broken_protocol: Path
) -> None:
    sign_in(client, staff.nurse)

    response = client.get("/patients/new")

    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "配置错误" in html and "请通知管理员" in html
    assert "Traceback" not in html and "unclosed" not in html


def test_missing_catalogs_make_healthz_503(
    client: FlaskClient, app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "BABEL_TRANSLATION_DIRECTORIES", str(tmp_path))

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["problems"][0].startswith("catalogs: missing ")


def test_a_required_heartbeat_must_be_fresh(client: FlaskClient, heartbeat_required: None) -> None:
    now = utcnow()
    record_heartbeat("host-a:1", now - timedelta(hours=1), now - timedelta(seconds=600))

    stale = client.get("/healthz")
    record_heartbeat("host-b:2", now - timedelta(minutes=5), now)
    fresh = client.get("/healthz")

    assert stale.status_code == 503
    assert stale.get_json()["problems"][0].startswith("jobs: last heartbeat 6")
    assert fresh.status_code == 200
    assert fresh.get_json()["checks"]["jobs"]["ok"] is True


def test_no_heartbeat_at_all_is_503_when_required(
    client: FlaskClient, heartbeat_required: None
) -> None:
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["problems"] == ["jobs: no jobs process has recorded a heartbeat"]


def test_heartbeats_refresh_one_row_per_process_and_forget_dead_ones(app_ctx: Flask) -> None:
    now = utcnow()
    record_heartbeat("old-host:9", now - timedelta(days=9), now - timedelta(days=8))
    record_heartbeat("host-a:1", now - timedelta(minutes=1), now - timedelta(seconds=30))
    record_heartbeat("host-a:1", now - timedelta(minutes=1), now)

    rows = {row.process: row.beat_at for row in db.session.query(JobsHeartbeat)}
    assert rows == {"host-a:1": now}
    assert latest_heartbeat() == now


def test_an_unmigrated_database_is_503_not_a_500(tmp_path: Path) -> None:
    application = create_app("test", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'empty.db'}")

    response = application.test_client().get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["problems"] == [
        "jobs: cannot read jobs_heartbeat: run `flask --app app db upgrade`"
    ]
    with application.app_context():
        db.engine.dispose()
