"""The study team's triage inbox: every unresolved alert, most urgent category first, then oldest.

Built on the alerts of app.services.alerts.alerts (one row per item). Categories, in order of urgency:

1. ``red``: any red alert (symptom report, check-in or unread message with a red flag);
2. ``amber``: amber symptom reports and check-ins, and amber messages to read;
3. ``call_task``: a check-in left unanswered: a nurse calls the patient (PRO-TECT's backup call);
4. ``unknown``: messages nobody could interpret (unknown senders, unclear texts);
5. ``reschedule``: a patient asked to change a date;
6. ``opt_out``: a patient stopped SMS (so nobody is surprised by the silence);
7. ``note``: green notes (routine symptom reports and check-ins with mild symptoms).

Handling: acknowledge (stops escalation), assign to a nurse, resolve with a structured action
and a note. Every change is a conditional UPDATE and is audited.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, or_, select, update
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Alert, CheckinSession, InboundMessage, Patient, User, utcnow
from app.models.alerts import RESOLUTION_ACTIONS, UNRESOLVED_STATUSES
from app.services.alerts import alerts as alert_service
from app.services.alerts.alerts import AlertError
from app.services.conversations.checkins.sessions import call_task_resolved
from app.services.shared import audit
from app.services.shared.pagination import Page, paginate
from app.services.shared.users import has_permission

CATEGORIES = ("red", "amber", "call_task", "unknown", "reschedule", "opt_out", "note")
"""Inbox categories, most urgent first."""


def category_of(alert: Alert) -> str:
    """The inbox category of one alert (see the module docstring)."""
    if alert.level == "red":
        return "red"
    if alert.kind in ("call_task", "reschedule", "opt_out"):
        return alert.kind
    if alert.level == "amber":
        return "amber"
    if alert.kind == "review":
        return "unknown"
    return "note"


def _category_rank() -> Any:
    """SQL: the rank of an alert's category (0 = red ... 6 = note), as category_of()."""
    return case(
        (Alert.level == "red", 0),
        (Alert.kind == "call_task", 2),
        (Alert.kind == "reschedule", 4),
        (Alert.kind == "opt_out", 5),
        (Alert.level == "amber", 1),
        (Alert.kind == "review", 3),
        else_=6,
    )


@dataclass(frozen=True)
class InboxItem:
    """One inbox row: the alert, its category and the check-in it is about (if any)."""

    alert: Alert
    category: str
    checkin: CheckinSession | None

    @property
    def age_seconds(self) -> int:
        """Seconds since the item was raised."""
        return int((utcnow() - self.alert.created_at).total_seconds())


PER_PAGE = 50
"""Inbox items on one page (the page renders only these, whatever the number of open items)."""


def open_items(
    *,
    category: str | None = None,
    assignee: str | None = None,
    patient_id: int | None = None,
    limit: int = 300,
) -> list[InboxItem]:
    """Unresolved items: category (most urgent first), then oldest first."""
    stmt = _open_query(category=category, assignee=assignee).limit(limit)
    if patient_id is not None:
        stmt = stmt.where(Alert.patient_id == patient_id)
    return _items(list(db.session.scalars(stmt)))


def open_items_page(
    *,
    category: str | None = None,
    assignee: str | None = None,
    query: str = "",
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Page:
    """One page of unresolved items (filtered and searched in SQL); items are InboxItems."""
    stmt = _search(_open_query(category=category, assignee=assignee), query)
    return _item_page(stmt, page, per_page)


def resolved_items_page(*, query: str = "", page: int = 1, per_page: int = PER_PAGE) -> Page:
    """One page of resolved items, most recently resolved first; items are InboxItems."""
    stmt = _search(_resolved_query(), query)
    return _item_page(stmt, page, per_page)


def resolved_items(*, limit: int = 50) -> list[InboxItem]:
    """The most recently resolved items."""
    return _items(list(db.session.scalars(_resolved_query().limit(limit))))


def _open_query(*, category: str | None, assignee: str | None) -> Select[Any]:
    stmt = (
        select(Alert)
        .options(selectinload(Alert.patient), selectinload(Alert.inbound_message))
        .where(Alert.status.in_(UNRESOLVED_STATUSES))
        .order_by(_category_rank(), Alert.created_at, Alert.id)
    )
    if category in CATEGORIES:
        stmt = stmt.where(_category_rank() == CATEGORIES.index(category))
    if assignee == "-":
        stmt = stmt.where(Alert.assigned_to.is_(None))
    elif assignee:
        stmt = stmt.where(Alert.assigned_to == assignee)
    return stmt


def _resolved_query() -> Select[Any]:
    return (
        select(Alert)
        .options(selectinload(Alert.patient), selectinload(Alert.inbound_message))
        .where(Alert.status == "resolved")
        .order_by(Alert.resolved_at.desc(), Alert.id.desc())
    )


def _search(stmt: Select[Any], query: str) -> Select[Any]:
    """Items whose study id, message, summary, note or assignee contains ``query`` (any case)."""
    needle = query.strip().casefold()
    if not needle:
        return stmt
    fields = (Patient.study_id, InboundMessage.body, Alert.summary, Alert.resolution_note,
              Alert.assigned_to)  # fmt: skip
    return (
        stmt.outerjoin(Patient, Alert.patient_id == Patient.id)
        .outerjoin(InboundMessage, Alert.inbound_message_id == InboundMessage.id)
        .where(or_(*(func.lower(f).contains(needle, autoescape=True) for f in fields)))
    )


def _item_page(stmt: Select[Any], page: int, per_page: int) -> Page:
    result = paginate(stmt, page, per_page)
    return replace(result, items=_items(result.items))


def _items(alerts: list[Alert]) -> list[InboxItem]:
    ids = {a.checkin_session_id for a in alerts if a.checkin_session_id}
    sessions = (
        {
            s.id: s
            for s in db.session.scalars(select(CheckinSession).where(CheckinSession.id.in_(ids)))
        }
        if ids
        else {}
    )
    return [InboxItem(a, category_of(a), sessions.get(a.checkin_session_id or -1)) for a in alerts]


def counts() -> dict[str, int]:
    """Unresolved items by category, with 'total' and 'open' (nobody acknowledged yet)."""
    rank = _category_rank().label("rank")
    rows = db.session.execute(
        select(rank, Alert.status, func.count())
        .where(Alert.status.in_(UNRESOLVED_STATUSES))
        .group_by(rank, Alert.status)
    ).all()
    result = dict.fromkeys(CATEGORIES, 0) | {"total": 0, "open": 0}
    for position, status, number in rows:
        result[CATEGORIES[int(position)]] += int(number)
        result["total"] += int(number)
        if status == "open":
            result["open"] += int(number)
    return result


def raised_counts(since: datetime | None) -> dict[str, int]:
    """Items raised since ``since`` (None: ever), resolved or not, by category, with 'total'."""
    rank = _category_rank().label("rank")
    stmt = select(rank, func.count())
    if since is not None:
        stmt = stmt.where(Alert.created_at >= since)
    result = dict.fromkeys(CATEGORIES, 0) | {"total": 0}
    for position, number in db.session.execute(stmt.group_by(rank)).all():
        result[CATEGORIES[int(position)]] += int(number)
        result["total"] += int(number)
    return result


def assignable_users() -> list[User]:
    """Active staff who may handle items (nurses and investigators), by name."""
    users = db.session.scalars(
        select(User).where(User.active.is_(True)).order_by(User.display_name)
    )
    return [u for u in users if has_permission(u.role, "patients.write")]


def assign(alert_id: int, username: str, *, actor: str, now: datetime | None = None) -> Alert:
    """Give an unresolved item to a nurse ('' to unassign); audit and commit."""
    now = now or utcnow()
    alert = alert_service.get_alert(alert_id)
    if alert.status == "resolved":
        raise AlertError(f"alert {alert_id} is already resolved", "resolved")
    name = (username or "").strip().lower() or None
    if name is not None and name not in {u.username for u in assignable_users()}:
        raise AlertError(f"{name!r} cannot be assigned items", "bad_assignee")
    before = alert.assigned_to
    if before == name:
        return alert
    changed = db.session.execute(
        update(Alert)
        .where(Alert.id == alert_id, Alert.status.in_(UNRESOLVED_STATUSES))
        .values(assigned_to=name, assigned_at=now if name else None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        raise AlertError(f"alert {alert_id} is already resolved", "resolved")
    audit.record(
        actor,
        "alert.assign",
        entity_type="alert",
        entity_id=alert_id,
        patient_id=alert.patient_id,
        before={"assigned_to": before},
        after={"assigned_to": name},
        at=now,
    )
    db.session.commit()
    return alert_service.get_alert(alert_id)


def acknowledge(alert_id: int, *, actor: str, now: datetime | None = None) -> Alert:
    """I have seen this item (stops its escalation)."""
    return alert_service.acknowledge(alert_id, actor=actor, now=now)


def resolve(
    alert_id: int, *, action: str, note: str, actor: str, now: datetime | None = None
) -> Alert:
    """Close an item with a structured action and a note (a resolved call task closes its
    check-in in the same transaction: conversations.checkins.sessions.call_task_resolved)."""
    if action not in RESOLUTION_ACTIONS:
        raise AlertError("choose what was done", "action_required")
    return alert_service.resolve(
        alert_id,
        actor=actor,
        note=note,
        action=action,
        now=now,
        on_call_task=call_task_resolved,
    )
