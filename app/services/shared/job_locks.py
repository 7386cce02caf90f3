"""Jobs that must run in one process at a time, however many jobs processes there are.

On PostgreSQL a singleton job holds a transaction-level advisory lock
(``pg_try_advisory_xact_lock``) on a connection of its own for as long as it runs; a second
process that finds the lock taken skips that tick (the holder is doing the work). The lock is
released when the job ends, and by PostgreSQL itself when the holder's connection dies (a killed
process), so the next tick anywhere takes over: no process is "the" singleton by convention.

Transaction-level rather than session-level: a transaction keeps its server connection under
PgBouncer in transaction mode, so the lock means the same there as on a direct connection. The
lock's transaction runs no other statement, so it holds no snapshot (READ COMMITTED) and keeps
no row versions from vacuum. Its key hashes the database, the schema and the job's name:
deployments in two schemas of one database (or parallel test runs) never block each other.

SQLite is the embedded single-process setup (one jobs process): there the lock is always granted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from app.extensions import db

logger = logging.getLogger("cadence.jobs.locks")

TRY_LOCK = text(
    "SELECT pg_try_advisory_xact_lock("
    "hashtextextended(current_database() || ':' || current_schema() || ':' || :name, 0))"
)


@contextmanager
def single_run(name: str) -> Iterator[bool]:
    """Yield True when this process may run job ``name`` now (it holds the lock until the block
    ends), False when another process is running it."""
    engine = db.engine
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        held = bool(conn.scalar(TRY_LOCK, {"name": f"cadence:{name}"}))
        try:
            if not held:
                logger.debug("job %s is running in another process: skipped here", name)
            yield held
        finally:
            conn.rollback()  # ends the lock's transaction: the lock is released
