"""Browser tests: the app in a background werkzeug server on the test database, driven by
Playwright with Debian's chromium. Screenshots go to test-output/screenshots/ (TEST_OUTPUT_DIR)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import BaseWSGIServer, make_server

from app import create_app
from app.extensions import db, limiter
from app.services.shared import users as user_service

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NURSE, PASSWORD = "nurse.e2e", "e2e-secret-passphrase"
FAST_HASHING = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    """The application as in production (CSRF on), on this run's test database."""
    application = create_app("test", SQLALCHEMY_DATABASE_URI=database_url, **FAST_HASHING)
    with application.app_context():
        db.create_all()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def server(app: Flask) -> Iterator[str]:
    """The app served on 127.0.0.1 on a free port; yields its base URL."""
    httpd: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: run scripts/ensure_browser.py (make test does)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Folder for the screenshots of this run."""
    folder = Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-output")) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def nurse_account(app_ctx: Flask) -> str:
    """A nurse who reads the interface in English; returns the username."""
    limiter.reset()
    user_service.create_user(
        NURSE, display_name="Nurse Chen", role="nurse", password=PASSWORD, actor="test",
        locale="en",
    )  # fmt: skip
    return NURSE


@pytest.fixture
def page(browser: Browser, server: str, nurse_account: str) -> Iterator[Page]:
    """A tablet-sized browser page, signed in as the nurse; fails the test on any page error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    tab.goto("/sign-in")
    tab.fill("#username", nurse_account)
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{server}/")
    yield tab
    context.close()
    assert errors == [], errors
