"""Alerts for the study team: create (inside the caller's transaction), acknowledge, resolve, list.

Red and amber alerts get ``next_escalation_at`` when they are created (app.services.alerts.cover:
red by wall-clock minutes, amber by the nurses' on-call cover);
acknowledging clears it and records the time to acknowledge. Acknowledge and resolve are
conditional UPDATEs, so two people clicking at once cannot both "first-acknowledge" an alert.
Every change is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, case, func, select, update

from app.extensions import db
from app.models import ALERT_LEVELS, Alert, utcnow
from app.models.alerts import RESOLUTION_ACTIONS, UNRESOLVED_STATUSES
from app.services.alerts.cover import first_escalation
from app.services.shared import audit

MAX_NOTE_CHARS = 2000

logger = logging.getLogger(__name__)


class AlertError(ValueError):
    """An alert action that cannot be done (unknown alert, already resolved, missing note)."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class NewAlert:
    """What the replies service knows when it raises an alert."""

    dedupe_key: str
    kind: str
    level: str
    summary: str
    reasons: Sequence[str] = ()
    symptoms: Sequence[dict[str, Any]] = ()
    patient_id: int | None = None
    inbound_message_id: int | None = None
    checkin_session_id: int | None = None


class CallTaskFollowUp(Protocol):
    """What a higher layer does in the same transaction when a call task is resolved."""

    def __call__(self, alert: Alert, *, now: datetime, actor: str) -> None:
        """Close the call task's check-in (or whatever the caller's layer owns)."""


# -- creating ------------------------------------------------------------------------------------


_BY_DEDUPE_KEY = select(Alert).where(Alert.dedupe_key == bindparam("p_key"))


def create_alert(
    new: NewAlert, *, now: datetime, actor: str = "system", known_new: bool = False
) -> Alert:
    """Add an alert (or return the one with the same dedupe key); flush, never commit.

    ``known_new``: the caller knows no alert has this key yet (it holds the only claim on its
    source), so the look-up is skipped; the UNIQUE key still refuses a duplicate.
    """
    if not known_new:
        existing = db.session.scalar(_BY_DEDUPE_KEY, {"p_key": new.dedupe_key})
        if existing is not None:
            return existing
    if new.level not in ALERT_LEVELS:
        raise AlertError(f"level must be one of {', '.join(ALERT_LEVELS)}")
    alert = Alert(
        dedupe_key=new.dedupe_key,
        kind=new.kind,
        level=new.level,
        summary=new.summary[:300],
        reasons=list(new.reasons),
        symptoms=[dict(s) for s in new.symptoms],
        patient_id=new.patient_id,
        inbound_message_id=new.inbound_message_id,
        checkin_session_id=new.checkin_session_id,
        status="open",
        created_at=now,
        updated_at=now,
        escalation_count=0,
        next_escalation_at=first_escalation(new.level, now),
    )
    db.session.add(alert)
    db.session.flush()
    audit.record(
        actor,
        "alert.create",
        entity_type="alert",
        entity_id=alert.id,
        patient_id=new.patient_id,
        after={"level": alert.level, "kind": alert.kind, "summary": alert.summary},
        reason="; ".join(new.reasons)[:500] or None,
        at=now,
    )
    return alert


# -- handling ------------------------------------------------------------------------------------


def get_alert(alert_id: int) -> Alert:
    """The alert with this id, or AlertError('not_found')."""
    alert = db.session.get(Alert, alert_id, populate_existing=True)
    if alert is None:
        raise AlertError(f"no alert {alert_id}", "not_found")
    return alert


def acknowledge(alert_id: int, *, actor: str, now: datetime | None = None) -> Alert:
    """Mark an open alert acknowledged (stops its escalation); audit and commit.

    Acknowledging an already acknowledged alert changes nothing; a resolved one is an error.
    """
    now = now or utcnow()
    alert = get_alert(alert_id)
    if alert.status == "resolved":
        raise AlertError(f"alert {alert_id} is already resolved", "resolved")
    if alert.status == "acknowledged":
        return alert
    if _mark_acknowledged(alert, actor, now):
        audit.record(
            actor,
            "alert.acknowledge",
            entity_type="alert",
            entity_id=alert.id,
            patient_id=alert.patient_id,
            before={"status": "open"},
            after={
                "status": "acknowledged",
                "time_to_acknowledge_seconds": alert.time_to_acknowledge_seconds,
            },
            at=now,
        )
    db.session.commit()
    return get_alert(alert_id)


def _mark_acknowledged(alert: Alert, actor: str, now: datetime) -> bool:
    seconds = max(int((now - alert.created_at).total_seconds()), 0)
    result = db.session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status == "open")
        .values(
            status="acknowledged",
            acknowledged_at=now,
            acknowledged_by=actor,
            time_to_acknowledge_seconds=seconds,
            next_escalation_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    claimed = result.rowcount == 1  # type: ignore[attr-defined]
    if claimed:
        db.session.refresh(alert)
    return claimed


def resolve(
    alert_id: int,
    *,
    actor: str,
    note: str,
    now: datetime | None = None,
    action: str | None = None,
    on_call_task: CallTaskFollowUp | None = None,
) -> Alert:
    """Resolve an alert with a note (acknowledging it first if nobody had); audit and commit.

    ``action`` records what was done (RESOLUTION_ACTIONS); with "no_action_needed" the note may
    be empty, otherwise a note is required. A call task belongs to a check-in, a higher layer:
    the caller passes ``on_call_task`` (conversations.checkins.sessions.call_task_resolved),
    which closes the check-in in the same transaction; resolving a call task without it is a
    programming error and writes nothing.
    """
    now = now or utcnow()
    text = (note or "").strip()
    if action is not None and action not in RESOLUTION_ACTIONS:
        raise AlertError(f"unknown action {action!r}", "action_required")
    if not text and action != "no_action_needed":
        raise AlertError("a resolution note is required", "note_required")
    if len(text) > MAX_NOTE_CHARS:
        raise AlertError(f"the note is longer than {MAX_NOTE_CHARS} characters", "note_too_long")
    alert = get_alert(alert_id)
    if alert.status == "resolved":
        raise AlertError(f"alert {alert_id} is already resolved", "resolved")
    if alert.kind == "call_task" and on_call_task is None:
        raise TypeError("resolving a call task needs on_call_task to close its check-in")
    before = {"status": alert.status}
    if alert.status == "open":
        _mark_acknowledged(alert, actor, now)
    result = db.session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status.in_(UNRESOLVED_STATUSES))
        .values(
            status="resolved",
            resolved_at=now,
            resolved_by=actor,
            resolution_note=text or None,
            resolution_action=action,
            next_escalation_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        raise AlertError(f"alert {alert_id} is already resolved", "resolved")
    audit.record(
        actor,
        "alert.resolve",
        entity_type="alert",
        entity_id=alert.id,
        patient_id=alert.patient_id,
        before=before,
        after={"status": "resolved", "action": action},
        reason=text[:500] or None,
        at=now,
    )
    if alert.kind == "call_task" and on_call_task is not None:
        on_call_task(alert, now=now, actor=actor)
    db.session.commit()
    return get_alert(alert_id)


# -- listing -------------------------------------------------------------------------------------


def _urgency() -> Any:
    return case(
        {level: rank for rank, level in enumerate(ALERT_LEVELS)}, value=Alert.level, else_=0
    )


def unresolved(*, limit: int = 200) -> list[Alert]:
    """Open and acknowledged alerts: most urgent level first, then open before acknowledged,
    then oldest first."""
    stmt = (
        select(Alert)
        .where(Alert.status.in_(UNRESOLVED_STATUSES))
        .order_by(
            _urgency(),
            case((Alert.status == "open", 0), else_=1),
            Alert.created_at,
            Alert.id,
        )
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def recently_resolved(*, limit: int = 50) -> list[Alert]:
    """The most recently resolved alerts."""
    stmt = (
        select(Alert)
        .where(Alert.status == "resolved")
        .order_by(Alert.resolved_at.desc(), Alert.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def for_patient(patient_id: int, *, limit: int = 50) -> list[Alert]:
    """A patient's alerts, newest first."""
    stmt = (
        select(Alert)
        .where(Alert.patient_id == patient_id)
        .order_by(Alert.created_at.desc(), Alert.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(stmt))


def unresolved_counts() -> dict[str, int]:
    """Unresolved alerts by level, with 'total' and 'open' (not yet acknowledged)."""
    rows = db.session.execute(
        select(Alert.level, Alert.status, func.count())
        .where(Alert.status.in_(UNRESOLVED_STATUSES))
        .group_by(Alert.level, Alert.status)
    ).all()
    counts = dict.fromkeys(ALERT_LEVELS, 0) | {"total": 0, "open": 0}
    for level, status, number in rows:
        counts[str(level)] = counts.get(str(level), 0) + int(number)
        counts["total"] += int(number)
        if status == "open":
            counts["open"] += int(number)
    return counts


def open_urgent_count() -> int:
    """Red and amber alerts nobody has acknowledged yet (the navigation badge)."""
    stmt = select(func.count()).where(Alert.status == "open", Alert.level.in_(("red", "amber")))
    return int(db.session.scalar(stmt) or 0)


def alert_replan_failure(patient_id: int, error: Exception, now: datetime, source: str) -> None:
    """Raise one staff review alert a day for a patient whose reminders could not be re-planned.

    Passed as ``on_failure`` to ``messaging.reminders.replan_all`` by the job and the CLI; an
    error here is logged, never raised, so re-planning the other patients goes on.
    """
    try:
        create_alert(
            NewAlert(
                dedupe_key=f"replan-failed:{patient_id}:{now:%Y-%m-%d}",
                kind="review",
                level="green",
                summary=(
                    "Reminders could not be re-planned for this patient "
                    f"({type(error).__name__}); check the calendar and the outbox."
                ),
                reasons=("replan_failed",),
                patient_id=patient_id,
            ),
            now=now,
            actor=source,
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        logger.exception("could not raise the alert for patient %s", patient_id)
