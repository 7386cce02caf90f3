"""Claiming due messages on PostgreSQL: SKIP LOCKED never waits, and only planned rows are taken.

SQLite has one writer at a time, so neither guard can be seen there: these tests run in the
PostgreSQL pass (`make test-postgres`), where several dispatchers claim from one table.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select, text

from app.extensions import db
from app.models import OutboxMessage
from app.services.messaging.dispatch import Dispatcher, DispatchSettings
from app.sms import ConsoleGateway
from tests.integration.sms_support import add_due_messages, is_postgres

NOW = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
SETTINGS = DispatchSettings(
    batch_size=10,
    workers=1,
    lease=timedelta(minutes=2),
    min_lease_left=timedelta(seconds=5),
    max_attempts=6,
    retry_base=timedelta(0),
    retry_cap=timedelta(0),
    settle=timedelta(0),
)


@pytest.fixture(autouse=True)
def _postgres_only(database_url: str) -> None:
    if not is_postgres(database_url):
        pytest.skip(
            "row locks and SKIP LOCKED exist on PostgreSQL only (run by make test-postgres)"
        )


def dispatcher() -> Dispatcher:
    return Dispatcher(ConsoleGateway(), SETTINGS, actor="test", clock=lambda: NOW, name="b")


def claim_with_lock_timeout(limit: int) -> tuple[list[int], float]:
    """Claim in this session; a lock wait fails after 3 s instead of hanging the test."""
    db.session.execute(text("SET LOCAL lock_timeout = '3s'"))
    started = time.monotonic()
    claimed = dispatcher().claim(NOW, limit)
    return sorted(c.id for c in claimed), time.monotonic() - started


def test_rows_locked_by_another_claim_are_skipped_at_once(app_ctx: Flask) -> None:
    ids = add_due_messages(4, due=NOW - timedelta(minutes=1))
    held = sorted(ids)[:2]
    with db.engine.connect() as other:
        other.execute(
            text("SELECT id FROM outbox_message WHERE id = ANY(:ids) FOR UPDATE"), {"ids": held}
        )

        claimed, seconds = claim_with_lock_timeout(limit=10)

        assert claimed == sorted(ids)[2:]
        assert seconds < 2.0
        other.rollback()
    assert sorted(c.id for c in dispatcher().claim(NOW, 10)) == held


def test_a_row_moved_on_by_another_transaction_is_never_claimed(app_ctx: Flask) -> None:
    ids = sorted(add_due_messages(3, due=NOW - timedelta(minutes=1)))
    with db.engine.connect() as other:
        other.execute(
            text("UPDATE outbox_message SET status = 'sent' WHERE id = :id"), {"id": ids[0]}
        )

        claimed, _ = claim_with_lock_timeout(limit=10)
        assert claimed == ids[1:]
        other.commit()

    assert dispatcher().claim(NOW, 10) == []
    statuses = db.session.execute(
        select(OutboxMessage.id, OutboxMessage.status)
        .order_by(OutboxMessage.id)
        .execution_options(populate_existing=True)
    ).all()
    assert [s for _, s in statuses] == ["sent", "claimed", "claimed"]
