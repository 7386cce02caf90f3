"""Helpers shared by the web, replies and check-in test folders: a production-like app (CSRF on),
a client whose requests each get their own app context, and sign-in through the real form."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.test import TestResponse

from app import create_app
from app.domain.patients import EnrolmentRequest
from app.extensions import db

PASSWORD = "correct-horse-battery"
CSRF_PATTERN = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)
# Cheap argon2 parameters: the tests exercise the logic, not the cost.
FAST_HASHING = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}


@contextmanager
def postgres_schema(base_url: str, prefix: str = "test") -> Iterator[str]:
    """A new empty schema in the PostgreSQL database at base_url, dropped afterwards; yields a URL
    whose connections use it (options=-csearch_path), also in subprocesses given that URL."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def production_like_app(database_url: str, **overrides: Any) -> Iterator[Flask]:
    """The app with CSRF protection ON (as in production), cheap hashing and a fresh schema."""
    application = create_app(
        "test",
        SQLALCHEMY_DATABASE_URI=database_url,
        WTF_CSRF_ENABLED=True,
        **(FAST_HASHING | overrides),
    )
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


class FreshContextClient(FlaskClient):
    """A test client whose every request gets its own app context, as in production.

    The tests hold an app context for direct database access; without this, requests would share
    its `g` (Flask-Login's cached user, Flask-Babel's cached locale) and its database session.
    """

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        """Run the request in a fresh app context, then expire the test's cached rows."""
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        db.session.expire_all()
        return response


def fresh_client(app: Flask) -> FlaskClient:
    """A FreshContextClient for the app."""
    app.test_client_class = FreshContextClient
    return app.test_client()


def csrf_token(client: FlaskClient, url: str = "/sign-in") -> str:
    """The CSRF token of the client's session, read from a form on `url`."""
    html = client.get(url).get_data(as_text=True)
    match = CSRF_PATTERN.search(html)
    assert match, f"no CSRF token on {url}"
    return match.group(1) or match.group(2)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> FlaskClient:
    """Sign a test client in through the real form (CSRF included)."""
    token = csrf_token(client, "/sign-in")
    response = client.post(
        "/sign-in", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def cohort_enrolment(i: int, study_id: str, today: date) -> EnrolmentRequest:
    """The i-th patient of a varied benchmark cohort: both PD-1 drugs, three chemotherapies, first
    infusion within two weeks, three in four Chinese; consenting, recurrence a month ago."""
    return EnrolmentRequest(
        study_id=study_id,
        initials="AB",
        phone=f"139{i:08d}",
        choices={
            "pd1": ("sintilimab", "camrelizumab")[i % 2],
            "chemo": ("docetaxel", "paclitaxel", "irinotecan")[i % 3],
        },
        start_date=today + timedelta(days=1 + i % 14),
        sms_consent=True,
        health_consent=True,
        sms_consent_date=today,
        locale="zh" if i % 4 else "en",
        recurrence_date=today - timedelta(days=30),
    )
