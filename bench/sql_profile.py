"""Where a benchmark's database time goes: statements by kind and table, commits, connections.

    with SqlProfile(db.engine) as profile:
        ...
    print(profile.table(wall_seconds, per=n, unit="message"))

Listens to SQLAlchemy's engine events (cursor executes, commits, pool check-outs); the time of a
statement is the driver's execute call, so it includes the round trip to the server.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)
READ = re.compile(r"^\s*SELECT\b.*?\bFROM\s+\"?(\w+)", re.IGNORECASE | re.DOTALL)


def statement_kind(sql: str) -> str:
    """'UPDATE outbox_message', 'INSERT outbox_status_change', 'SELECT patient', ..."""
    if match := WRITE.match(sql):
        return f"{match.group(1).split()[0].upper()} {match.group(2).lower()}"
    if match := READ.match(sql):
        return f"SELECT {match.group(1).lower()}"
    return sql.split(None, 1)[0].upper() if sql.strip() else "?"


@dataclass
class SqlProfile:
    """Sums of statement time by kind, commit time, connection check-outs."""

    engine: Engine
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    checkouts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    def __enter__(self) -> SqlProfile:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        event.listen(self.engine.pool, "checkout", self._checkout)
        self._wrap_commit()
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)
        event.remove(self.engine.pool, "checkout", self._checkout)
        self.engine.dialect.do_commit = self._original_commit  # type: ignore[method-assign]

    def _wrap_commit(self) -> None:
        """Time the driver's COMMIT (WAL flush / fsync on the server)."""
        original = self._original_commit = self.engine.dialect.do_commit

        def timed(dbapi_connection: Any) -> None:
            started = time.perf_counter()
            try:
                original(dbapi_connection)
            finally:
                self._add("COMMIT", time.perf_counter() - started)

        self.engine.dialect.do_commit = timed  # type: ignore[method-assign]

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._local.started = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._add(statement_kind(statement), time.perf_counter() - self._local.started)

    def _checkout(self, *args: Any) -> None:
        with self._lock:
            self.checkouts += 1

    def _add(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.seconds[kind] += seconds
            self.counts[kind] += 1

    @property
    def total(self) -> float:
        """Seconds spent in the database (statements and commits)."""
        return sum(self.seconds.values())

    def table(self, wall: float, *, per: int, unit: str) -> str:
        """A text table: each kind's count, total, per-``unit`` cost and share of ``wall``."""
        lines = [f"  {'statement':<34}{'count':>8}{'total s':>9}{'ms/' + unit:>14}{'% of run':>10}"]
        for kind, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            lines.append(
                f"  {kind:<34}{self.counts[kind]:>8}{seconds:>9.2f}"
                f"{1000 * seconds / max(per, 1):>14.3f}{100 * seconds / wall:>9.1f}%"
            )
        lines.append(
            f"  {'database, all':<34}{sum(self.counts.values()):>8}{self.total:>9.2f}"
            f"{1000 * self.total / max(per, 1):>14.3f}{100 * self.total / wall:>9.1f}%"
        )
        lines.append(f"  connection check-outs from the pool: {self.checkouts}")
        return "\n".join(lines)
