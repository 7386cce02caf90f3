"""A `limits` storage in the application's own database, so every web worker shares one count.

The limits library (used by Flask-Limiter) has memory, Redis, Memcached and MongoDB storages but
none for SQL databases. This one supports the fixed-window strategy (the one Cadence configures):
each key is one row of `rate_limit_counter`, incremented by a single atomic upsert
(INSERT ... ON CONFLICT DO UPDATE ... RETURNING, on PostgreSQL and SQLite alike). It works on its
own connection and commits at once, independent of the request's session. Select it with
RATELIMIT_STORAGE_URI=database:// (the default); use redis://... where Redis is available.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from limits.storage import Storage
from sqlalchemy import case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models import RateLimitCounter

COUNTERS = RateLimitCounter.__table__
SCHEME = "database"


class DatabaseStorage(Storage):
    """Fixed-window counters in the `rate_limit_counter` table of the app's database."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        """Errors of the database driver, as SQLAlchemy raises them."""
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add `amount` to the key's count (a new window of `expiry` seconds when none is open)."""
        now = time.time()
        with db.engine.begin() as conn:
            conn.execute(delete(COUNTERS).where(COUNTERS.c.expires_at <= now))
            expired = COUNTERS.c.expires_at <= now
            statement = (
                _insert_for(conn)
                .values(key=key, count=amount, expires_at=now + expiry)
                .on_conflict_do_update(
                    index_elements=[COUNTERS.c.key],
                    set_={
                        "count": case((expired, amount), else_=COUNTERS.c.count + amount),
                        "expires_at": case((expired, now + expiry), else_=COUNTERS.c.expires_at),
                    },
                )
                .returning(COUNTERS.c.count)
            )
            return int(conn.execute(statement).scalar_one())

    def get(self, key: str) -> int:
        """The key's count in its open window (0 when none is open)."""
        row = self._live_row(key)
        return int(row.count) if row is not None else 0

    def get_expiry(self, key: str) -> float:
        """When the key's window ends (now when none is open), in seconds since the epoch."""
        row = self._live_row(key)
        return float(row.expires_at) if row is not None else time.time()

    def check(self) -> bool:
        """True when the database answers."""
        try:
            with db.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        """Remove every counter; returns how many there were."""
        with db.engine.begin() as conn:
            return conn.execute(delete(COUNTERS)).rowcount

    def clear(self, key: str) -> None:
        """Remove one key's counter."""
        with db.engine.begin() as conn:
            conn.execute(delete(COUNTERS).where(COUNTERS.c.key == key))

    def _live_row(self, key: str) -> Any:
        query = select(COUNTERS.c.count, COUNTERS.c.expires_at).where(
            COUNTERS.c.key == key, COUNTERS.c.expires_at > time.time()
        )
        with db.engine.connect() as conn:
            return conn.execute(query).first()


def _insert_for(conn: Connection) -> Any:
    """The dialect's INSERT, which has on_conflict_do_update (PostgreSQL and SQLite)."""
    dialects: dict[str, Callable[..., Any]] = {
        "postgresql": postgresql.insert,
        "sqlite": sqlite.insert,
    }
    name = conn.dialect.name
    if name not in dialects:
        raise RuntimeError(f"the database rate-limit storage does not support {name}")
    return dialects[name](COUNTERS)
