"""The database storage of the limits library: fixed windows counted in `rate_limit_counter`."""

from __future__ import annotations

import time

from flask import Flask
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import update

from app.extensions import db
from app.models import RateLimitCounter
from app.rate_limit_storage import DatabaseStorage


def _expire(key: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            update(RateLimitCounter)
            .where(RateLimitCounter.key == key)
            .values(expires_at=time.time() - 1)
        )


def test_the_uri_selects_the_database_storage(app_ctx: Flask) -> None:
    storage = storage_from_string("database://")
    assert isinstance(storage, DatabaseStorage)
    assert storage.check()


def test_counts_add_up_within_a_window_and_restart_after_it(app_ctx: Flask) -> None:
    storage = DatabaseStorage()
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3
    assert time.time() < storage.get_expiry("k") <= time.time() + 60
    _expire("k")
    assert storage.get("k") == 0
    assert storage.incr("k", 60, amount=2) == 2
    storage.clear("k")
    assert storage.get("k") == 0


def test_expired_counters_are_removed_and_reset_empties_all(app_ctx: Flask) -> None:
    storage = DatabaseStorage()
    storage.incr("old", 60)
    _expire("old")
    storage.incr("new", 60)
    assert db.session.get(RateLimitCounter, "old") is None
    assert storage.reset() == 1
    assert storage.get("new") == 0


def test_the_fixed_window_strategy_refuses_the_sixth_hit(app_ctx: Flask) -> None:
    limiter = FixedWindowRateLimiter(DatabaseStorage())
    limit = parse("5 per 15 minutes")
    assert [limiter.hit(limit, "user:a@198.51.100.7") for _ in range(6)] == [True] * 5 + [False]
    assert limiter.hit(limit, "user:a@203.0.113.9")
