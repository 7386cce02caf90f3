"""Recording changes in the append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.extensions import db
from app.models import AuditEntry, utcnow


def record(
    actor: str,
    action: str,
    *,
    entity_type: str,
    entity_id: object | None = None,
    patient_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Add an audit row to the current transaction; the calling service commits."""
    if not actor:
        raise ValueError("an audit entry needs an actor")
    entry = AuditEntry(
        at=at or utcnow(),
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        patient_id=patient_id,
        before=before,
        after=after,
        reason=reason,
    )
    db.session.add(entry)
    return entry
