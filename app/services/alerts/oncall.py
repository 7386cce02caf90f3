"""The on-call rota (rows of OnCallShift) and paging staff by SMS through the outbox.

``on_call(role, now)`` answers who is on duty; ``recipients(role, now)`` adds the fallbacks a
page must never lack (the other clinical role on duty, then ESCALATION_FALLBACK_PHONE);
``page(...)`` queues one outbox row per recipient (kind ``page``, no patient, UNIQUE natural key
``page:<purpose>:<recipient>``), so paging is sent exactly once by the same dispatcher as every
other SMS and reconciled the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import event, or_, select
from sqlalchemy.orm import Session

from app.domain import oncall as rota
from app.domain.oncall import IsHoliday, RotaError, Shift
from app.domain.patients import InvalidPhoneNumber, normalise_phone
from app.domain.working_days import is_public_holiday
from app.extensions import db
from app.models import OnCallShift, OutboxMessage, User
from app.services.messaging.outbox import add_history
from app.services.shared import audit
from app.services.shared.clinic import clinic_zone
from app.services.shared.protocols import clinic_working_days
from app.services.shared.reply_texts import signed
from app.sms.segments import count_segments

FALLBACK_ROLES = {
    "clinician": ("clinician", "investigator"),
    "investigator": ("investigator", "clinician"),
    "nurse": ("nurse",),
}
PAGE_EXPIRY = timedelta(hours=24)


@dataclass(frozen=True)
class Recipient:
    """Someone to page: number, language, and why they were chosen."""

    phone: str
    locale: str
    name: str
    role: str
    source: str  # rota | fallback | user


# -- the rota ------------------------------------------------------------------------------------


def holiday_predicate() -> IsHoliday:
    """The clinic's public holidays as a predicate on local dates."""
    calendar = clinic_working_days()
    return lambda day: is_public_holiday(calendar, day)


def to_shift(row: OnCallShift) -> Shift:
    """A database row as a domain shift."""
    weekdays, holidays = rota.parse_days(row.weekdays)
    return Shift(
        role=row.role,
        name=row.name,
        phone=row.phone_e164,
        weekdays=weekdays,
        holidays=holidays,
        start=row.start_time,
        end=row.end_time,
        priority=row.priority,
        locale=row.locale,
        id=row.id,
    )


_ROTA = select(OnCallShift).order_by(OnCallShift.role, OnCallShift.priority, OnCallShift.id)
_ACTIVE_ROTA = _ROTA.where(OnCallShift.active.is_(True))


def shifts(*, active_only: bool = True) -> list[OnCallShift]:
    """The rota, by role, priority and id."""
    return list(db.session.scalars(_ACTIVE_ROTA if active_only else _ROTA))


_ROTA_KEY = "cadence.active_rota"


def active_rota() -> list[Shift]:
    """The active rota as domain shifts, read once per transaction (an inbound SMS reads it for
    the alert's escalation time, the amber promise and the red page).

    Read again when the transaction changes, or when this session has rota rows to write or
    has written any since (``forget_rota``: the flush listener below)."""
    session = db.session()
    cached = session.info.get(_ROTA_KEY)
    transaction = session.get_transaction()
    if cached is not None and cached[0] is transaction and not _rota_pending(session):
        return list(cached[1])
    found = [to_shift(row) for row in shifts()]
    session.info[_ROTA_KEY] = (session.get_transaction(), tuple(found))
    return found


def _rota_pending(session: Session) -> bool:
    return any(
        isinstance(obj, OnCallShift) for obj in (*session.new, *session.dirty, *session.deleted)
    )


@event.listens_for(Session, "before_flush")
def forget_rota(session: Session, *_args: Any) -> None:
    """A flush writing rota rows makes the transaction's remembered rota stale."""
    if _ROTA_KEY in session.info and _rota_pending(session):
        del session.info[_ROTA_KEY]


def on_call(role: str, now: datetime) -> list[Shift]:
    """Who of ``role`` is on duty at ``now`` (by priority)."""
    local = now.astimezone(clinic_zone())
    return rota.on_call(active_rota(), local, role, holiday_predicate())


def add_shift(
    *,
    role: str,
    name: str,
    phone: str,
    weekdays: str | Sequence[str],
    hours: str,
    actor: str,
    priority: int = 0,
    locale: str = "zh",
    note: str | None = None,
) -> OnCallShift:
    """Add a rota entry (validated: role, E.164 number, days, HH:MM-HH:MM); audit, commit.

    ``weekdays`` is text ('mon-fri', 'sat,sun,hol') or the ticked day boxes ('0'..'6', 'hol').
    """
    rota.check_role(role)
    if not (name or "").strip():
        raise RotaError("name: required")
    try:
        e164 = normalise_phone(phone, str(current_app.config.get("DEFAULT_PHONE_REGION", "CN")))
    except InvalidPhoneNumber as exc:
        raise RotaError(f"phone: {exc}") from exc
    if isinstance(weekdays, str):
        days, holidays = rota.parse_days(weekdays)
    else:
        days, holidays = rota.days_from_choices(weekdays)
    start, end = rota.parse_time_range(hours)
    if locale not in ("zh", "en"):
        raise RotaError(f"locale: expected zh or en, got {locale!r}")
    row = OnCallShift(
        role=role,
        name=name.strip()[:120],
        phone_e164=e164,
        weekdays=rota.format_weekdays(days, holidays),
        start_time=start,
        end_time=end,
        priority=int(priority),
        locale=locale,
        active=True,
        note=(note or "").strip() or None,
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        actor,
        "oncall.add",
        entity_type="oncall_shift",
        entity_id=row.id,
        after=describe(row),
    )
    db.session.commit()
    return row


def remove_shift(shift_id: int, *, actor: str) -> None:
    """Delete a rota entry; audit (with what it was) and commit."""
    row = db.session.get(OnCallShift, shift_id)
    if row is None:
        raise RotaError(f"no rota entry {shift_id}")
    before = describe(row)
    db.session.delete(row)
    audit.record(
        actor, "oncall.remove", entity_type="oncall_shift", entity_id=shift_id, before=before
    )
    db.session.commit()


def describe(row: OnCallShift) -> dict[str, object]:
    """A rota entry as plain data (audit, CLI)."""
    return {
        "id": row.id,
        "role": row.role,
        "name": row.name,
        "phone": row.phone_e164,
        "weekdays": row.weekdays,
        "hours": rota.format_time_range(row.start_time, row.end_time),
        "priority": row.priority,
        "locale": row.locale,
        "active": row.active,
    }


# -- who gets paged ------------------------------------------------------------------------------


def recipients(role: str, now: datetime) -> list[Recipient]:
    """Who to page for ``role`` at ``now``, never empty while any fallback exists.

    Clinician pages fall back to the investigator on duty and investigator pages to the
    clinician on duty; then ESCALATION_FALLBACK_PHONE. Nurse reminders go to the nurses on the
    rota, else to active nurse accounts with a mobile number, else to the fallback number.
    """
    for candidate_role in FALLBACK_ROLES.get(role, (role,)):
        found = on_call(candidate_role, now)
        if found:
            source = "rota" if candidate_role == role else "fallback"
            return [Recipient(s.phone, s.locale, s.name, s.role, source) for s in found]
    if role == "nurse":
        nurses = _nurse_accounts()
        if nurses:
            return nurses
    fallback = current_app.config.get("ESCALATION_FALLBACK_PHONE")
    if fallback:
        return [Recipient(str(fallback), "zh", "fallback", role, "fallback")]
    return []


def _nurse_accounts() -> list[Recipient]:
    users = db.session.scalars(
        select(User).where(
            User.role == "nurse", User.active.is_(True), User.phone_e164.is_not(None)
        )
    )
    return [
        Recipient(u.phone_e164 or "", u.locale or "zh", u.display_name, "nurse", "user")
        for u in users
        if u.phone_e164
    ]


# -- paging --------------------------------------------------------------------------------------


def page(
    purpose: str,
    people: Sequence[Recipient],
    render: Callable[[str], str],
    *,
    now: datetime,
    actor: str,
    patient_id: int | None = None,
    known_new: bool = False,
) -> list[OutboxMessage]:
    """Queue one page per recipient (kind 'page', due now); flush, never commit.

    ``purpose`` names the occasion (e.g. 'alert:12:0'); with the recipient it forms the UNIQUE
    natural key, so paging twice for the same occasion queues nothing new. ``render(locale)``
    returns the text (no patient name, no diagnosis or drug). ``patient_id`` is only recorded in
    the audit row: the outbox row itself is not the patient's message. ``known_new``: the caller
    knows the occasion is new (its alert was created in this transaction): no look-up.
    """
    rows = []
    for person in people:
        key = f"page:{purpose}:{person.phone}"[:160]
        existing = (
            None
            if known_new
            else db.session.scalar(
                select(OutboxMessage).where(
                    OutboxMessage.recipient == person.phone, OutboxMessage.dedupe_key == key
                )
            )
        )
        if existing is not None:
            rows.append(existing)
            continue
        rows.append(
            _queue_page(key, person, render(person.locale), now, actor, purpose, patient_id)
        )
    return rows


def _queue_page(
    key: str,
    person: Recipient,
    text: str,
    now: datetime,
    actor: str,
    purpose: str,
    patient_id: int | None,
) -> OutboxMessage:
    body = signed(text)
    info = count_segments(body)
    row = OutboxMessage(
        patient_id=None,
        recipient=person.phone,
        dedupe_key=key,
        kind="page",
        status="planned",
        send_after=now,
        due_at=now,
        expires_at=now + PAGE_EXPIRY,
        body=body,
        locale=person.locale,
        segments=info.segments,
        encoding=info.encoding,
        event_keys=[],
        items=[],
        notes=[f"{person.role} ({person.source}): {person.name}"],
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(row)
    db.session.flush()
    add_history(row.id, None, "planned", source=actor, detail=f"page {purpose}", at=now)
    audit.record(
        actor,
        "alert.page",
        entity_type="outbox_message",
        entity_id=row.id,
        patient_id=patient_id,
        after={
            "purpose": purpose,
            "role": person.role,
            "source": person.source,
            "to": _mask(person.phone),
        },
        at=now,
    )
    return row


def _mask(phone: str) -> str:
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:] if len(phone) > 7 else "***"


def pages_for(purpose_prefix: str) -> list[OutboxMessage]:
    """The pages queued for an occasion prefix (e.g. 'alert:12:'), oldest first."""
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.kind == "page",
            OutboxMessage.dedupe_key.startswith(f"page:{purpose_prefix}", autoescape=True),
        )
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    )
    return list(db.session.scalars(stmt))


def pages_for_alerts(alert_ids: Iterable[int]) -> dict[int, list[OutboxMessage]]:
    """The pages queued for each of these alerts (one query), oldest first (alerts without pages are absent)."""
    prefixes = {alert_id: f"page:alert:{alert_id}:" for alert_id in set(alert_ids)}
    if not prefixes:
        return {}
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.patient_id.is_(None),  # pages have no patient: the indexed narrowing
            OutboxMessage.kind == "page",
            or_(
                *(
                    OutboxMessage.dedupe_key.startswith(p, autoescape=True)
                    for p in prefixes.values()
                )
            ),
        )
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    )
    found: dict[int, list[OutboxMessage]] = {}
    for row in db.session.scalars(stmt):
        alert_id = next(a for a, p in prefixes.items() if row.dedupe_key.startswith(p))
        found.setdefault(alert_id, []).append(row)
    return found
