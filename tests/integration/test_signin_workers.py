"""Two web worker PROCESSES share the sign-in rate limits: in the database (the default) and in
Redis. Each test starts two real gunicorn servers on the suite's database and alternates failed
sign-ins between them; with per-process memory each would allow its own five."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask

from app.services.shared import users as user_service

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
USERNAME = "nurse.zhao"
PASSWORD = "quiet-harbour-lantern"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(base_url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.communicate()[0])
        try:
            if requests.get(f"{base_url}/sign-in", timeout=10).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    raise AssertionError(f"{base_url} did not start")


def _start_workers(database_url: str, **settings: str) -> Iterator[list[str]]:
    env = dict(os.environ)
    env.update(
        {
            "CADENCE_ENV": "development",
            "DATABASE_URL": database_url,
            "SECRET_KEY": "two-workers-test-key",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **settings,
        }
    )
    env.pop("TEST_DATABASE_URL", None)
    ports = [_free_port(), _free_port()]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                "1",
                "-b",
                f"127.0.0.1:{port}",
                "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes, strict=True):
            _wait_until_up(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.communicate(timeout=30)


def _sign_in(browser: requests.Session, base_url: str, password: str) -> int:
    token = CSRF.search(browser.get(f"{base_url}/sign-in", timeout=10).text)
    assert token, "no CSRF token on the sign-in page"
    response = browser.post(
        f"{base_url}/sign-in",
        data={"username": USERNAME, "password": password, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    return response.status_code


def _assert_shared_limit(urls: list[str]) -> None:
    browser = requests.Session()
    statuses = [_sign_in(browser, urls[i % 2], "wrong-guess") for i in range(8)]
    # LOGIN_USER_RATE_LIMIT is 5 per 15 minutes per (username, address), counted once for both.
    assert statuses == [401] * 5 + [429] * 3
    assert [_sign_in(browser, url, PASSWORD) for url in urls] == [429, 429]


@pytest.fixture
def account(app_ctx: Flask) -> str:
    """A nurse account in the suite's database."""
    user_service.create_user(
        USERNAME, display_name="Zhao", role="nurse", password=PASSWORD, actor="test"
    )
    return USERNAME


def test_two_workers_share_the_limit_in_the_database(account: str, database_url: str) -> None:
    for urls in _start_workers(database_url, RATELIMIT_STORAGE_URI="database://"):
        _assert_shared_limit(urls)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this run only; its keys are deleted afterwards."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"cadence-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(match=f"*{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_two_workers_share_the_limit_in_redis(
    account: str, database_url: str, redis_prefix: str
) -> None:
    settings = {"RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": redis_prefix}
    for urls in _start_workers(database_url, **settings):
        _assert_shared_limit(urls)
    redis = pytest.importorskip("redis")
    leftover = redis.Redis.from_url(REDIS_URL)
    assert list(leftover.scan_iter(match=f"*{redis_prefix}*")), "nothing was counted in Redis"
    leftover.close()
