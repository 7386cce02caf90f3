"""Fixtures for the hardening tests: the production-like app (CSRF on) of tests/web."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support import fresh_client, production_like_app
from tests.web.conftest import Staff, staff  # noqa: F401  (the `staff` fixture)


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    """The app as in production (CSRF on), see tests/support.py."""
    yield from production_like_app(database_url)


@pytest.fixture
def client(app_ctx: Flask) -> FlaskClient:
    """A test client on a clean database (requests in their own app contexts)."""
    return fresh_client(app_ctx)
