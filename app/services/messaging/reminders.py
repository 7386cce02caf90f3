"""Plan a patient's SMS reminders into the outbox, inside the caller's transaction.

``plan_patient(patient, now=..., moves=...)`` is called by enrolment and by every calendar
change before they commit: it asks app.domain.reminders what should be sent when, renders each
body in the patient's language and time zone (gettext + Babel), and makes the outbox match:
new rows inserted, unsent rows of moved or cancelled events cancelled, unchanged rows left
alone (natural keys make re-planning idempotent). Rows that reached the provider are never
touched. A patient who cannot receive SMS (no consent, opted out, invalid number, off study)
gets nothing planned and loses every unsent row.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton, format_time, get_datetime_format
from flask import current_app
from sqlalchemy import (
    JSON,
    ColumnElement,
    Row,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
    update,
)

from app.domain import reminders as rd
from app.domain.calendar import CalendarChange
from app.domain.protocol import Fasting
from app.domain.reminders import (
    EventMove,
    ExistingMessage,
    PlannedMessage,
    ReminderEvent,
    ReminderItem,
    ReminderPolicy,
)
from app.extensions import db
from app.models import (
    CalendarEvent,
    Contact,
    OutboxMessage,
    OutboxStatusChange,
    Patient,
    ReminderPlanState,
    utcnow,
)
from app.models.messages import COUNTED_STATUSES
from app.services.messaging import recipients
from app.services.messaging.invitations import to_confirm
from app.services.messaging.outbox import transition
from app.services.shared.patient_lookup import get_patient
from app.services.shared.protocols import current_protocol
from app.services.shared.speaking import catalogues_held, gettext, ngettext, speaking
from app.sms.segments import count_segments, with_signature

logger = logging.getLogger(__name__)

# A reschedule can move dozens of later events: name the first ones, count the rest.
MOVED_CLAUSES_SHOWN = 2

# The name of the one-at-a-time lock (app/services/shared/job_locks.py) of a re-plan of every
# patient: the daily job and `sms plan --all` take it, so no patient is planned twice at once
# (the two would race on the outbox's unique key and raise false failure alerts).
REPLAN_ALL_JOB = "sms-replan"
PLANNER_KINDS = ("reminder", "moved")
INVITING_KINDS = PLANNER_KINDS  # reminders and notices of a move say "Reply 1 to confirm"
KNOWN_TEMPLATES = (
    "treatment",
    "premedication",
    "labs",
    "imaging",
    "endoscopy",
    "followup",
    "visit",
)


class StoredMessage(Protocol):
    """An outbox row as planning reads it: a plain row of ``PLANNING_COLUMNS`` (no ORM object:
    loading 150 ORM rows was the largest single cost of a re-plan). Its JSON columns come as
    their stored text, decoded only for the rows that need them (``_items_of``, ``_notes_of``)."""

    id: int
    kind: str
    status: str
    send_after: datetime
    body: str
    dedupe_key: str
    contact_id: int | None
    locale: str
    items_json: str | None
    notes_json: str | None


@dataclass
class PlanResult:
    """What a planning run changed in the outbox."""

    created: int = 0
    updated: int = 0
    reactivated: int = 0
    cancelled: int = 0
    kept: int = 0
    moved_notice: StoredMessage | None = None
    blocked_reason: str | None = None
    message_ids: list[int] = field(default_factory=list)
    skipped: bool = False


# -- settings ----------------------------------------------------------------------------------


def reminder_policy() -> ReminderPolicy:
    """The protocol file's reminder rules; quiet hours and budget fall back to the settings.

    Inside ``planning_run`` they are read once for the whole run.
    """
    run = _run.get()
    if run is None:
        return _read_policy()
    if run.policy is None:
        run.policy = _read_policy()  # not kept when it raises: each patient fails on its own
    return run.policy


def _read_policy() -> ReminderPolicy:
    raw = dict(current_protocol().raw.get("reminders") or {})
    config = current_app.config
    raw.setdefault(
        "quiet_hours",
        {
            "start": config.get("QUIET_HOURS_START", "21:00"),
            "end": config.get("QUIET_HOURS_END", "08:00"),
        },
    )
    raw.setdefault("daily_budget", int(config.get("SMS_DAILY_BUDGET", 3)))
    policy = rd.parse_reminder_policy(raw)
    unknown = sorted({r.template for r in policy.rules} - set(KNOWN_TEMPLATES))
    if unknown:
        raise rd.ReminderConfigError(
            f"reminders: unknown template(s) {', '.join(unknown)}; "
            f"known: {', '.join(KNOWN_TEMPLATES)}"
        )
    return policy


def planning_moment(today: date | None) -> datetime:
    """The 'now' to plan from: the app clock, or the start of ``today`` when it is another day."""
    now = utcnow()
    if today is None:
        return now
    clinic = ZoneInfo(current_app.config.get("CLINIC_TIMEZONE", "Asia/Shanghai"))
    if now.astimezone(clinic).date() == today:
        return now
    return datetime.combine(today, time(0, 0), tzinfo=clinic).astimezone(UTC)


def blocked_reason(patient: Patient, kind: str = "reminder") -> str | None:
    """Why no SMS of ``kind`` may be planned or sent to the patient, or None when it may.

    A patient with contacts: None when any contact may get it (their consents and choices,
    app.services.messaging.recipients); without: the patient's own consent and number.
    """
    if recipients.has_contacts(patient.id):
        return recipients.contacts_block(patient, kind)
    return _own_number_block(patient)


def row_blocked_reason(
    patient: Patient,
    kind: str,
    contact_id: int | None,
    contacts: Sequence[Contact] | None = None,
) -> str | None:
    """Why one outbox row (of ``kind``, to ``contact_id``) may not go out now, or None.

    ``contacts``: every contact of the patient (``recipients.contacts_of``), when already loaded.
    """
    has = recipients.has_contacts(patient.id) if contacts is None else bool(contacts)
    if has:
        return recipients.row_block(patient, kind, contact_id, contacts)
    return _own_number_block(patient)


def _own_number_block(patient: Patient) -> str | None:
    """The rule before contacts: the patient's consent, opt-out, number and status."""
    return recipients.own_number_block(patient)


def _plan_blocked(patient: Patient, inputs: PlanInputs) -> str | None:
    """``blocked_reason(patient)`` for reminders, from the contacts planning read already."""
    if inputs.contacts:
        return recipients.contacts_block(patient, "reminder", inputs.active_contacts)
    return _own_number_block(patient)


# -- what planning reads -----------------------------------------------------------------------


@dataclass(frozen=True)
class PlanInputs:
    """What planning reads of one patient, read once per plan (not once per use).

    ``contacts``: every contact (active or not) with its consents, in fallback order;
    ``calendar``: every column of every calendar event, JSON columns as their stored text, in
    id order (the fingerprint hashes them as they are; the planner decodes ``details``).
    """

    contacts: tuple[Contact, ...]
    calendar: tuple[Row[Any], ...]

    @property
    def active_contacts(self) -> list[Contact]:
        """The active contacts in fallback order (``recipients.patient_contacts``)."""
        return [contact for contact in self.contacts if contact.active]

    def events(self) -> list[ReminderEvent]:
        """The calendar as the reminder planner sees it, in (date, id) order like
        ``patient.events``."""
        rows = sorted(self.calendar, key=lambda row: (row.date, row.id))
        return [ReminderEvent.of_columns(row._mapping, _decoded(row.details)) for row in rows]


def load_inputs(patient_id: int) -> PlanInputs:
    """Read the patient's contacts (two statements) and calendar (one) for planning."""
    contacts = recipients.contacts_of([patient_id]).get(patient_id, [])
    return PlanInputs(tuple(contacts), _calendar_rows(patient_id))


@lru_cache(maxsize=4096)
def _decoded(stored: str | None) -> Any:
    """A JSON column's stored text decoded as the column type decodes it (NULL: None).

    Cached: events of one protocol share a few dozen ``details`` texts (read-only here).
    """
    return None if stored is None else json.loads(stored)


# -- a run over many patients ------------------------------------------------------------------

# Bodies kept by a run: about 60 patients' worth. Patients enrolled together (neighbouring ids)
# share dates and so bodies; the memo is emptied when full, which bounds its memory.
RUN_BODIES_KEPT = 8192


@dataclass(frozen=True)
class RenderSettings:
    """The settings a body is rendered with (signature, its position, the opt-out hint)."""

    signature: str
    signature_position: str
    opt_out_hint: bool


def render_settings() -> RenderSettings:
    """The render settings now (inside ``planning_run``: as at its start)."""
    run = _run.get()
    return _read_render_settings() if run is None else run.settings


def _read_render_settings() -> RenderSettings:
    config = current_app.config
    return RenderSettings(
        signature=config.get("SMS_SIGNATURE") or "",
        signature_position=config.get("SMS_SIGNATURE_POSITION", "prefix"),
        opt_out_hint=bool(config.get("SMS_OPT_OUT_HINT", True)),
    )


@dataclass
class _PlanningRun:
    """What stays the same while one run plans many patients: the rules (read at first use),
    the render settings, and the bodies rendered so far (a body is a pure function of its
    message, variant, language and time zone once settings and wording are fixed)."""

    settings: RenderSettings
    policy: ReminderPolicy | None = None
    settings_state: list[Any] | None = None
    bodies: dict[tuple[Any, ...], str] = field(default_factory=dict)


_run: ContextVar[_PlanningRun | None] = ContextVar("cadence_planning_run", default=None)


@contextmanager
def planning_run() -> Iterator[None]:
    """Plan many patients in the block with the rules read once, each language's translations
    looked up once and each distinct body rendered once (settings and wording do not change
    during a run). A run inside a run is the outer one."""
    if _run.get() is not None:
        yield
        return
    token = _run.set(_PlanningRun(_read_render_settings()))
    try:
        with catalogues_held():
            yield
    finally:
        _run.reset(token)


# -- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderContext:
    """Who a body is for: language and time zone, and the contact it goes to (if any)."""

    locale: str
    tz: ZoneInfo
    recipient: str | None = None
    contact_id: int | None = None


def context_for(patient: Patient, inputs: PlanInputs | None = None) -> RenderContext:
    """The language and time zone of whoever gets the patient's reminders first.

    ``inputs``: the patient's contacts already read by planning (no query then).
    """
    tz = ZoneInfo(patient.timezone or "Asia/Shanghai")
    active = None if inputs is None else inputs.active_contacts
    first = recipients.primary_recipient(patient, "reminder", active)
    if first is None or first.contact_id is None:
        locale = patient.locale if patient.locale in ("zh", "en") else "zh"
        return RenderContext(locale=locale, tz=tz)
    return RenderContext(first.locale, tz, first.phone, first.contact_id)


def context_for_recipient(patient: Patient, recipient: recipients.Recipient) -> RenderContext:
    """The patient's time zone with one recipient's language and number."""
    tz = ZoneInfo(patient.timezone or "Asia/Shanghai")
    return RenderContext(recipient.locale, tz, recipient.phone, recipient.contact_id)


def render_message(message: PlannedMessage, variant: int, ctx: RenderContext) -> str:
    """The exact text sent for ``message`` (signature and opt-out hint included).

    Inside ``planning_run`` a body already rendered for the same message is reused.
    """
    run = _run.get()
    if run is None:
        return _rendered(message, variant, ctx, _read_render_settings())
    key = (message.kind, message.items, message.send_at, variant, ctx.locale, ctx.tz)
    body = run.bodies.get(key)
    if body is None:
        if len(run.bodies) >= RUN_BODIES_KEPT:
            run.bodies.clear()
        body = run.bodies[key] = _rendered(message, variant, ctx, run.settings)
    return body


def _rendered(
    message: PlannedMessage, variant: int, ctx: RenderContext, settings: RenderSettings
) -> str:
    """Render ``message`` (no memo)."""
    with speaking(ctx.locale):
        if message.kind == "moved":
            head = gettext("Schedule change:")
            clauses = _moved_clauses(message.items, ctx)
        else:
            head = gettext("Reminder:")
            clauses = [_day_clause(day, ctx) for day in rd.day_summaries(message.items)]
        parts = [head, *clauses]
        if variant:
            parts.append(_variant_suffix(message, variant, ctx))
        if settings.opt_out_hint:
            parts.append(gettext("Reply STOP to opt out."))
    return _signed(_joined(parts, ctx), settings)


def _signed(body: str, settings: RenderSettings) -> str:
    signature = settings.signature
    return with_signature(body, signature, settings.signature_position) if signature else body


def _date(day: date, ctx: RenderContext) -> str:
    return _formatted_date(day, ctx.locale)


@lru_cache(maxsize=4096)
def _formatted_date(day: date, locale: str) -> str:
    """Babel's month-day-weekday of ``day`` (a pure function: cached across patients)."""
    return format_skeleton("MMMEd", day, locale=locale)


def _date_and_time(moment: datetime, ctx: RenderContext) -> str:
    """Month, day and 24-hour time joined as the locale joins a date and a time.

    Babel has no "MMMdHm" skeleton: the date and the time are formatted separately.
    """
    day = format_skeleton("MMMd", moment, tzinfo=ctx.tz, locale=ctx.locale)
    clock = format_skeleton("Hm", moment, tzinfo=ctx.tz, locale=ctx.locale)
    pattern = get_datetime_format("short", locale=ctx.locale)
    return pattern.replace("{1}", day).replace("{0}", clock)


def _time(moment: datetime, ctx: RenderContext) -> str:
    return _formatted_time(moment, ctx.tz, ctx.locale)


@lru_cache(maxsize=4096)
def _formatted_time(moment: datetime, tz: ZoneInfo, locale: str) -> str:
    """Babel's short time of ``moment`` in ``tz`` (a pure function: cached across patients)."""
    return format_time(moment, "short", tzinfo=tz, locale=locale)


def _day_clause(summary: rd.DaySummary, ctx: RenderContext) -> str:
    """One day of a reminder: each visit once, the first arrival, one preparation."""
    parts = [_reminder_clause(item, ctx) for item in summary.clauses()]
    if summary.items[0].detail == "titles":
        titles = [i.title.get(ctx.locale) for i in summary.items if i.title is not None]
        parts.append(gettext("(%(title)s)", title="; ".join(dict.fromkeys(titles))))
    if summary.arrive_at is not None:
        arrive = datetime.combine(summary.day, summary.arrive_at, tzinfo=ctx.tz)
        parts.append(gettext("Please arrive by %(time)s.", time=_time(arrive, ctx)))
    if summary.fasting is not None:
        parts.append(_fasting_text(summary.fasting, "labs" in summary.templates))
    for text in summary.preparations:
        parts.append(gettext("Preparation: %(text)s", text=text.get(ctx.locale)))
    return _joined(parts, ctx)


def _fasting_text(fasting: Fasting, labs: bool) -> str:
    """The strictest fasting rule of the day, stated once."""
    food, water = fasting.food_hours, fasting.water_hours
    if not food and not water:
        if labs:
            return gettext("No need to fast for the blood test.")
        return gettext("No need to fast.")
    if food == water:
        return gettext("Do not eat or drink for %(hours)d hours before.", hours=food)
    if not water:
        return gettext("Do not eat for %(hours)d hours before; water is fine.", hours=food)
    return gettext(
        "Do not eat for %(food)d hours or drink for %(water)d hours before.",
        food=food,
        water=water,
    )


def _reminder_clause(item: ReminderItem, ctx: RenderContext) -> str:
    dose = item.dose_at or item.send_at
    values = {
        "date": _date(item.event_date, ctx),
        "day": _date(dose.astimezone(ctx.tz).date(), ctx),
        "time": _time(dose, ctx),
    }
    today = item.days_before == 0
    return _TEMPLATE_TEXT[item.template](today, values)


def _joined(parts: list[str], ctx: RenderContext) -> str:
    """Sentences joined as the language writes them (a space in English, nothing in Chinese)."""
    return (" " if ctx.locale == "en" else "").join(part for part in parts if part)


def _treatment(today: bool, values: dict[str, str]) -> str:
    if today:
        return gettext("Your treatment is today, %(date)s. Please come on time.", **values)
    return gettext("Your treatment is on %(date)s. Please come on time.", **values)


def _premedication(today: bool, values: dict[str, str]) -> str:
    return gettext(
        "Please take the medicine prescribed for before your treatment (%(day)s, %(time)s dose).",
        **values,
    )


def _labs(today: bool, values: dict[str, str]) -> str:
    if today:
        return gettext("Blood test at the hospital today, %(date)s.", **values)
    return gettext("Blood test at the hospital on %(date)s.", **values)


def _imaging(today: bool, values: dict[str, str]) -> str:
    if today:
        return gettext("Your scan is today, %(date)s.", **values)
    return gettext("You have a scan on %(date)s.", **values)


def _endoscopy(today: bool, values: dict[str, str]) -> str:
    if today:
        return gettext("Your endoscopy is today, %(date)s.", **values)
    return gettext("You have an endoscopy on %(date)s.", **values)


def _followup(today: bool, values: dict[str, str]) -> str:
    return gettext("The study team will contact you around %(date)s.", **values)


def _visit(today: bool, values: dict[str, str]) -> str:
    if today:
        return gettext("Your hospital visit is today, %(date)s.", **values)
    return gettext("You have a hospital visit on %(date)s.", **values)


_TEMPLATE_TEXT = {
    "treatment": _treatment,
    "premedication": _premedication,
    "labs": _labs,
    "imaging": _imaging,
    "endoscopy": _endoscopy,
    "followup": _followup,
    "visit": _visit,
}


def _moved_clauses(items: Sequence[ReminderItem], ctx: RenderContext) -> list[str]:
    """The first moves in words; a cascade of many later moves is summed up in one sentence."""
    shown = [_moved_clause(item, ctx) for item in items[:MOVED_CLAUSES_SHOWN]]
    rest = len(items) - MOVED_CLAUSES_SHOWN
    if rest > 0:
        shown.append(
            ngettext(
                "%(num)d later appointment has moved too; you will be reminded before it.",
                "%(num)d later appointments have moved too; you will be reminded before each.",
                rest,
            )
        )
    return shown


def _moved_clause(item: ReminderItem, ctx: RenderContext) -> str:
    values = {
        "old": _date(item.moved_from, ctx) if item.moved_from else "",
        "new": _date(item.event_date, ctx),
    }
    parts = [_MOVED_TEXT.get(item.kind, _moved_visit)(values)]
    if item.detail == "titles" and item.title is not None:
        parts.append(gettext("(%(title)s)", title=item.title.get(ctx.locale)))
    return _joined(parts, ctx)


def _moved_treatment(values: dict[str, str]) -> str:
    return gettext("Your treatment has moved from %(old)s to %(new)s.", **values)


def _moved_labs(values: dict[str, str]) -> str:
    return gettext("Your blood test has moved from %(old)s to %(new)s.", **values)


def _moved_scan(values: dict[str, str]) -> str:
    return gettext("Your scan has moved from %(old)s to %(new)s.", **values)


def _moved_endoscopy(values: dict[str, str]) -> str:
    return gettext("Your endoscopy has moved from %(old)s to %(new)s.", **values)


def _moved_followup(values: dict[str, str]) -> str:
    return gettext("Your follow-up call has moved from %(old)s to %(new)s.", **values)


def _moved_visit(values: dict[str, str]) -> str:
    return gettext("Your visit has moved from %(old)s to %(new)s.", **values)


_MOVED_TEXT = {
    "infusion": _moved_treatment,
    "radiotherapy": _moved_treatment,
    "labs": _moved_labs,
    "imaging": _moved_scan,
    "endoscopy": _moved_endoscopy,
    "followup": _moved_followup,
}


def _variant_suffix(message: PlannedMessage, variant: int, ctx: RenderContext) -> str:
    stamp = _date_and_time(message.send_at, ctx)
    if variant > 1:
        stamp += f" #{variant}"
    return gettext("(%(when)s)", when=stamp)


# -- planning ----------------------------------------------------------------------------------


def reminder_events(patient: Patient) -> list[ReminderEvent]:
    """The patient's calendar rows as the reminder planner sees them."""
    return [ReminderEvent.of(row) for row in patient.events]


def moves_from_changes(changes: Iterable[object]) -> list[EventMove]:
    """The moved events of a calendar change (anything with key/old_date/new_date/new_status)."""
    moves = []
    for change in changes:
        old, new = getattr(change, "old_date", None), getattr(change, "new_date", None)
        if old is not None and new is not None and old != new:
            moves.append(
                EventMove(
                    key=change.key,  # type: ignore[attr-defined]
                    old_date=old,
                    new_date=new,
                    new_status=getattr(change, "new_status", None),
                )
            )
    return moves


def announced_moves(patient: Patient, change: CalendarChange, *, now: datetime) -> int:
    """How many of a calendar change's moves the patient's "your visit has moved" SMS announces.

    The same selection as the notice itself (announced kinds, live, not in the past), so the
    nurse's preview and the SMS count the same appointments.
    """
    events = [ReminderEvent.of(event) for event in change.events]
    moves = moves_from_changes(change.changes)
    tz = context_for(patient).tz
    return len(rd.moved_items(reminder_policy(), moves, events, tz, now))


def plan_patient(
    patient: Patient,
    *,
    now: datetime,
    moves: Sequence[EventMove] = (),
    source: str = "planner",
    inputs: PlanInputs | None = None,
) -> PlanResult:
    """Make the patient's unsent reminders match the calendar; flush, never commit.

    ``inputs``: the patient's contacts and calendar, when the caller has just read them
    (``load_inputs`` after a flush, in this transaction).
    """
    db.session.flush()
    inputs = load_inputs(patient.id) if inputs is None else inputs
    return _plan(patient, inputs, now=now, moves=moves, source=source)


def _plan(
    patient: Patient,
    inputs: PlanInputs,
    *,
    now: datetime,
    moves: Sequence[EventMove] = (),
    source: str,
) -> PlanResult:
    """``plan_patient`` from the patient's inputs read already."""
    result = PlanResult()
    reason = _plan_blocked(patient, inputs)
    rows = _patient_rows(patient.id)
    if reason is not None:
        result.blocked_reason = reason
        result.cancelled = _cancel_rows(
            [r for r in rows if r.status == "planned"], reason, source, error=reason
        )
        _remember_plan(patient, reason, None, now, inputs)
        return result
    policy = reminder_policy()
    ctx = context_for(patient, inputs)
    events = inputs.events()
    result.cancelled += _cancel_stale_due_rows(rows, events, now, source)
    notice_key = _plan_moved_notice(patient, rows, moves, events, policy, ctx, now, source)
    if notice_key is not None:
        rows = _patient_rows(patient.id)
        result.moved_notice = next(r for r in rows if r.dedupe_key == notice_key)
    replaceable = [
        r for r in rows if r.kind == "reminder" and r.status == "planned" and r.send_after >= now
    ]
    replaceable_ids = {r.id for r in replaceable}
    existing = [
        ExistingMessage(r.send_after, r.body)
        for r in rows
        if r.status in COUNTED_STATUSES and r.id not in replaceable_ids
    ]
    desired = rd.plan_messages(
        policy, events, ctx.tz, now, existing, lambda m, v: render_message(m, v, ctx)
    )
    _sync(patient, rows, replaceable, desired, ctx, now, source, result)
    handled = {m.dedupe_key for m in desired}
    if result.moved_notice is not None:
        handled.add(result.moved_notice.dedupe_key)
    leftovers = [
        r
        for r in rows
        if r.status == "planned" and r.kind in PLANNER_KINDS and r.dedupe_key not in handled
    ]
    result.updated += _rerender_leftovers(leftovers, policy, events, ctx, source)
    db.session.flush()
    _remember_plan(patient, None, ctx, now, inputs)
    return result


def replan_patient(
    patient_ref: str | int, *, now: datetime, source: str, skip_unchanged: bool = False
) -> PlanResult:
    """Re-plan one patient and commit (CLI, jobs).

    ``skip_unchanged``: do nothing (and write nothing) when the inputs of the patient's last
    plan are unchanged (``plan_fingerprint``); the daily job and ``sms plan --all`` use it.
    """
    patient = get_patient(patient_ref)
    db.session.flush()
    inputs = load_inputs(patient.id)
    if skip_unchanged and _plan_unchanged(patient, inputs):
        db.session.commit()  # ends the read-only transaction; nothing was written
        return PlanResult(skipped=True)
    result = plan_patient(patient, now=now, source=source, inputs=inputs)
    db.session.commit()
    return result


# -- what a plan was made from -----------------------------------------------------------------

# Bump when the planner's code changes what it would write for the same inputs: every patient is
# then re-planned in full once.
PLANNER_VERSION = 1
RENDER_SETTINGS = (
    "SMS_SIGNATURE",
    "SMS_SIGNATURE_POSITION",
    "SMS_OPT_OUT_HINT",
    "CLINIC_TIMEZONE",
)


def plan_fingerprint(
    patient: Patient,
    reason: str | None,
    ctx: RenderContext | None,
    inputs: PlanInputs | None = None,
) -> str:
    """SHA-256 of everything planning reads: the patient's row, contacts and consents,
    calendar, the rules, the wording and settings, and the state of the patient's outbox.

    ``inputs``: the contacts and calendar planning read already (read here when None).
    """
    inputs = load_inputs(patient.id) if inputs is None else inputs
    parts: list[Any] = [
        PLANNER_VERSION,
        reason,
        _columns(patient),
        _contacts_state(inputs.contacts),
        *_settings_state(),
        None if ctx is None else [ctx.locale, ctx.tz.key, ctx.recipient, ctx.contact_id],
        _outbox_state(patient.id),
    ]
    text = json.dumps(parts, default=str, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8"))
    digest.update(_calendar_state(inputs.calendar).encode("utf-8"))
    return digest.hexdigest()


def _settings_state() -> list[Any]:
    """The rules, render settings, limits and wording the fingerprint hashes (inside
    ``planning_run``: read once for the run)."""
    run = _run.get()
    if run is None:
        return _read_settings_state()
    if run.settings_state is None:
        run.settings_state = _read_settings_state()
    return run.settings_state


def _read_settings_state() -> list[Any]:
    config = current_app.config
    return [
        repr(current_protocol().raw.get("reminders")),
        [repr(config.get(name)) for name in RENDER_SETTINGS],
        [config.get(n) for n in ("QUIET_HOURS_START", "QUIET_HOURS_END", "SMS_DAILY_BUDGET")],
        _wording_digest(str(config.get("BABEL_TRANSLATION_DIRECTORIES") or "translations")),
    ]


def _plan_unchanged(patient: Patient, inputs: PlanInputs) -> bool:
    """True when the patient's last plan was made from the inputs there are now."""
    stored = _stored_fingerprint(patient.id)
    if stored is None:
        return False
    reason = _plan_blocked(patient, inputs)
    ctx = context_for(patient, inputs) if reason is None else None
    return stored == plan_fingerprint(patient, reason, ctx, inputs)


def _remember_plan(
    patient: Patient,
    reason: str | None,
    ctx: RenderContext | None,
    now: datetime,
    inputs: PlanInputs,
) -> None:
    """Store the fingerprint of this plan's inputs (no write when it is the stored one)."""
    fingerprint = plan_fingerprint(patient, reason, ctx, inputs)
    stored = _stored_fingerprint(patient.id)
    if stored == fingerprint:
        return
    values = {"fingerprint": fingerprint, "planned_at": now}
    if stored is None:
        db.session.execute(insert(ReminderPlanState).values(patient_id=patient.id, **values))
    else:
        db.session.execute(
            update(ReminderPlanState)
            .where(ReminderPlanState.patient_id == patient.id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _stored_fingerprint(patient_id: int) -> str | None:
    return db.session.scalar(_stored_fingerprint_select(), {"patient_id": patient_id})


@cache
def _stored_fingerprint_select() -> Select[Any]:
    return select(ReminderPlanState.fingerprint).where(
        ReminderPlanState.patient_id == bindparam("patient_id")
    )


def _columns(row: Any) -> dict[str, Any]:
    """Every column of an ORM row, by name."""
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _contacts_state(contacts: Sequence[Contact]) -> list[Any]:
    """Each contact of the patient (active or not) with its consents, column by column."""
    return [
        [_columns(contact), sorted((_columns(c) for c in contact.consents), key=lambda c: c["id"])]
        for contact in contacts
    ]


def _calendar_rows(patient_id: int) -> tuple[Row[Any], ...]:
    """Every column of every calendar event of the patient, read as plain rows (no ORM);
    JSON columns as their stored text (decoding them all was most of the cost of a skip)."""
    return tuple(db.session.execute(_calendar_select(), {"patient_id": patient_id}))


@cache
def _calendar_select() -> Select[Any]:
    """The calendar's SELECT, built once (statements are re-run for every patient)."""
    table = CalendarEvent.__table__
    return (
        select(*_as_stored(table))
        .where(table.c.patient_id == bindparam("patient_id"))
        .order_by(table.c.id)
    )


def _calendar_state(rows: Sequence[Row[Any]]) -> str:
    """The calendar's rows as the fingerprint hashes them."""
    return repr([tuple(row) for row in rows])


@cache
def _as_stored(table: Table) -> tuple[ColumnElement[Any], ...]:
    """The table's columns, JSON ones cast to text (same value, same text: no decoding)."""
    return tuple(
        cast(column, Text).label(column.key) if isinstance(column.type, JSON) else column
        for column in table.columns
    )


def _outbox_state(patient_id: int) -> list[list[Any]]:
    """Per status and kind: how many rows, the latest change and the newest id."""
    rows = db.session.execute(_outbox_state_select(), {"patient_id": patient_id})
    return [list(row) for row in rows]


@cache
def _outbox_state_select() -> Select[Any]:
    return (
        select(
            OutboxMessage.status,
            OutboxMessage.kind,
            func.count(),
            func.max(OutboxMessage.updated_at),
            func.max(OutboxMessage.id),
        )
        .where(OutboxMessage.patient_id == bindparam("patient_id"))
        .group_by(OutboxMessage.status, OutboxMessage.kind)
        .order_by(OutboxMessage.status, OutboxMessage.kind)
    )


@cache
def _wording_digest(directory: str) -> str:
    """SHA-256 of the translation catalogues (a new wording re-renders every patient)."""
    digest = hashlib.sha256()
    for path in sorted(Path(directory).glob("*/LC_MESSAGES/*.[mp]o")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


ReplanFailure = Callable[[int, Exception, datetime, str], None]
"""Told of a patient whose re-planning failed: (patient id, error, now, source)."""


def patients_to_replan() -> int:
    """How many patients ``replan_all`` goes through (for a progress bar)."""
    return db.session.scalar(select(func.count()).select_from(Patient)) or 0


def patient_ids_to_replan() -> list[int]:
    """The ids of the patients ``replan_all`` goes through, in its order."""
    return list(db.session.scalars(select(Patient.id).order_by(Patient.id)))


def replan_all(
    *,
    now: datetime,
    source: str,
    on_failure: ReplanFailure | None = None,
    progress: Callable[[int], None] | None = None,
    skip_unchanged: bool = True,
) -> dict[str, int]:
    """Re-plan every patient, one transaction each; go on past a failure; return totals.

    A patient whose planning inputs did not change since the last plan is skipped
    (``skip_unchanged``, counted in ``skipped``): nothing is rendered or written for them.

    A failing patient is rolled back, logged and passed to ``on_failure`` (the callers above
    raise a staff alert there: this layer does not know about alerts). ``progress`` is told
    of each patient done (planned, skipped or failed).
    """
    return replan_patients(
        patient_ids_to_replan(),
        now=now,
        source=source,
        on_failure=on_failure,
        progress=progress,
        skip_unchanged=skip_unchanged,
    )


def replan_patients(
    ids: Sequence[int],
    *,
    now: datetime,
    source: str,
    on_failure: ReplanFailure | None = None,
    progress: Callable[[int], None] | None = None,
    skip_unchanged: bool = True,
) -> dict[str, int]:
    """``replan_all`` over these patients only (one worker's share of a parallel run)."""
    totals = {"patients": 0, "created": 0, "cancelled": 0, "failed": 0, "skipped": 0}
    with planning_run():
        for patient_id in ids:
            _replan_counted(patient_id, totals, now, source, on_failure, skip_unchanged)
            if progress is not None:
                progress(1)
    return totals


def _replan_counted(
    patient_id: int,
    totals: dict[str, int],
    now: datetime,
    source: str,
    on_failure: ReplanFailure | None,
    skip_unchanged: bool,
) -> None:
    """Re-plan one patient of a run and add the outcome to ``totals``; a failure is rolled
    back, logged and passed to ``on_failure``, never raised."""
    try:
        result = replan_patient(patient_id, now=now, source=source, skip_unchanged=skip_unchanged)
    except Exception as exc:  # one patient's failure must not stop the others
        db.session.rollback()
        logger.exception("re-planning patient %s failed (%s)", patient_id, type(exc).__name__)
        if on_failure is not None:
            on_failure(patient_id, exc, now, source)
        totals["failed"] += 1
        return
    totals["patients"] += 1
    totals["skipped"] += int(result.skipped)
    totals["created"] += result.created + result.reactivated
    totals["cancelled"] += result.cancelled


def preview_plan(patient: Patient, *, now: datetime) -> list[PlannedMessage]:
    """The reminders planning would create from ``now``, without touching the outbox."""
    if blocked_reason(patient) is not None:
        return []
    ctx = context_for(patient)
    return rd.plan_messages(
        reminder_policy(),
        reminder_events(patient),
        ctx.tz,
        now,
        [],
        lambda m, v: render_message(m, v, ctx),
    )


def cancel_unsent(patient: Patient, *, reason: str, source: str) -> int:
    """Cancel every planned message of the patient (e.g. after an opt-out); no commit."""
    rows = [r for r in _patient_rows(patient.id) if r.status == "planned"]
    return _cancel_rows(rows, reason, source, error=reason)


PLANNING_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.kind,
    OutboxMessage.status,
    OutboxMessage.send_after,
    OutboxMessage.body,
    OutboxMessage.dedupe_key,
    OutboxMessage.contact_id,
    OutboxMessage.locale,
    cast(OutboxMessage.items, Text).label("items_json"),
    cast(OutboxMessage.notes, Text).label("notes_json"),
)


def _items_of(row: StoredMessage) -> list[dict[str, Any]]:
    """The row's stored items (what it reminds of), decoded."""
    return (json.loads(row.items_json) or []) if row.items_json else []


def _notes_of(row: StoredMessage) -> list[str]:
    """The row's planning notes, decoded (a few distinct texts: cached)."""
    return list(_decoded(row.notes_json) or [])


def _patient_rows(patient_id: int) -> list[StoredMessage]:
    """The patient's outbox rows as stored now (plain rows), in send order."""
    return list(db.session.execute(_patient_rows_select(), {"patient_id": patient_id}))


@cache
def _patient_rows_select() -> Select[Any]:
    return (
        select(*PLANNING_COLUMNS)
        .where(OutboxMessage.patient_id == bindparam("patient_id"))
        .order_by(OutboxMessage.send_after, OutboxMessage.id)
    )


def _cancel_rows(
    rows: Iterable[StoredMessage], detail: str, source: str, *, error: str | None
) -> int:
    cancelled = 0
    for row in rows:
        values = {"error_reason": error} if error else {}
        if transition(
            row.id,
            expect=("planned",),
            to="cancelled",
            source=source,
            detail=detail,
            values=values,
        ):
            cancelled += 1
    return cancelled


def _cancel_stale_due_rows(
    rows: Sequence[StoredMessage], events: Sequence[ReminderEvent], now: datetime, source: str
) -> int:
    """Cancel planned rows that are already due but whose events moved or were cancelled."""
    by_key = {event.key: event for event in events}
    stale = []
    for row in rows:
        if row.status != "planned" or row.kind not in PLANNER_KINDS or row.send_after >= now:
            continue
        if row.kind == "reminder" and not _items_still_valid(row, by_key):
            stale.append(row)
    return _cancel_rows(stale, "event moved or cancelled", source, error=None)


def _items_still_valid(row: StoredMessage, by_key: dict[str, ReminderEvent]) -> bool:
    for item in _items_of(row):
        event = by_key.get(item.get("event_key", ""))
        if event is None or event.status not in rd.LIVE_EVENT_STATUSES:
            return False
        if event.date.isoformat() != item.get("event_date"):
            return False
    return True


def _plan_moved_notice(
    patient: Patient,
    rows: Sequence[StoredMessage],
    moves: Sequence[EventMove],
    events: Sequence[ReminderEvent],
    policy: ReminderPolicy,
    ctx: RenderContext,
    now: datetime,
    source: str,
) -> str | None:
    """One "your visit has moved" message covering these moves and any unsent earlier one;
    its natural key (None: no notice)."""
    if not moves:
        return None
    pending = [r for r in rows if r.kind == "moved" and r.status == "planned"]
    combined = _combine_moves(pending, moves)
    items = rd.moved_items(policy, combined, events, ctx.tz, now)
    notice = rd.moved_notice(policy, items, ctx.tz, now, lambda m, v: render_message(m, v, ctx))
    same = [r for r in pending if notice is not None and r.dedupe_key == notice.dedupe_key]
    _cancel_rows(
        [r for r in pending if r not in same], "replaced by a newer notice", source, error=None
    )
    if notice is None:
        return None
    if not same:
        _insert_rows(patient, [notice], ctx, source)
    return notice.dedupe_key


def _combine_moves(pending: Sequence[StoredMessage], moves: Sequence[EventMove]) -> list[EventMove]:
    """Moves of an unsent notice plus the new ones: first known date per event."""
    combined: dict[str, EventMove] = {}
    for row in pending:
        for item in _items_of(row):
            moved_from = item.get("moved_from")
            if moved_from and item["event_key"] not in combined:
                combined[item["event_key"]] = EventMove(
                    item["event_key"], date.fromisoformat(moved_from)
                )
    for move in moves:
        first = combined.get(move.key)
        old = first.old_date if first is not None else move.old_date
        combined[move.key] = EventMove(move.key, old, move.new_date, move.new_status)
    return list(combined.values())


def _sync(
    patient: Patient,
    rows: Sequence[StoredMessage],
    replaceable: Sequence[StoredMessage],
    desired: Sequence[PlannedMessage],
    ctx: RenderContext,
    now: datetime,
    source: str,
    result: PlanResult,
) -> None:
    by_key = {row.dedupe_key: row for row in rows}
    wanted = {message.dedupe_key for message in desired}
    result.cancelled += _cancel_rows(
        [r for r in replaceable if r.dedupe_key not in wanted],
        "re-planned",
        source,
        error=None,
    )
    new: list[PlannedMessage] = []
    for message in desired:
        row = by_key.get(message.dedupe_key)
        if row is None:
            new.append(message)
        elif row.status == "planned":
            if _update_planned(row, message, ctx, source):
                result.updated += 1
            else:
                result.kept += 1
        elif row.status == "cancelled" and _reactivate(row, message, ctx, source):
            result.reactivated += 1
    result.message_ids.extend(_insert_rows(patient, new, ctx, source))
    result.created += len(new)


def _reactivate(
    row: StoredMessage, message: PlannedMessage, ctx: RenderContext, source: str
) -> bool:
    values = _content_values(message, ctx) | {"error_reason": None}
    return transition(
        row.id, expect=("cancelled",), to="planned", source=source, detail="planned again",
        values=values,
    )  # fmt: skip


def _rerender_leftovers(
    rows: Sequence[StoredMessage],
    policy: ReminderPolicy,
    events: Sequence[ReminderEvent],
    ctx: RenderContext,
    source: str,
) -> int:
    """Render again the unsent rows planning did not revisit (due ones, earlier notices).

    A row's message is rebuilt from its stored items and the calendar; when it cannot be rebuilt
    exactly (its natural key no longer matches), the row is left as it is.
    """
    if not rows:
        return 0
    since = min(r.send_after for r in rows) - timedelta(days=2)
    known = {item.ident: item for item in rd.reminder_items(policy, events, ctx.tz, since)}
    by_key = {event.key: event for event in events}
    updated = 0
    for row in rows:
        rebuilt = _rebuilt_message(row, _items_of(row), policy, known, by_key, ctx)
        if rebuilt is not None and _rerender_row(row, *rebuilt, ctx=ctx, source=source):
            updated += 1
    return updated


def _rebuilt_message(
    row: StoredMessage | OutboxMessage,
    items: Sequence[dict[str, Any]],
    policy: ReminderPolicy,
    known: dict[str, ReminderItem],
    by_key: dict[str, ReminderEvent],
    ctx: RenderContext,
) -> tuple[PlannedMessage, int] | None:
    """The planned message (and body variant) a stored row was rendered from, or None.

    ``items``: the row's stored items, decoded.
    """
    send_at = row.send_after.astimezone(ctx.tz)
    stored = list(items)
    if not stored:
        return None
    if row.kind == "moved":
        items = [_moved_item(entry, policy, by_key, send_at) for entry in stored]
    else:
        items = [
            known.get(f"{entry.get('event_key')}@{entry.get('event_date')}:{entry.get('rule')}")
            for entry in stored
        ]
    if any(item is None for item in items):
        return None
    message = PlannedMessage(row.kind, send_at, tuple(i for i in items if i is not None))
    for variant in range(rd.MAX_BODY_VARIANTS + 1):
        if replace(message, variant=variant).dedupe_key == row.dedupe_key:
            return message, variant
    return None


def _moved_item(
    entry: dict[str, object],
    policy: ReminderPolicy,
    by_key: dict[str, ReminderEvent],
    send_at: datetime,
) -> ReminderItem | None:
    """One item of a stored "your visit has moved" notice, with the event's current titles."""
    event = by_key.get(str(entry.get("event_key")))
    moved_from = entry.get("moved_from")
    if event is None or not isinstance(moved_from, str):
        return None
    return ReminderItem(
        event_key=event.key,
        kind=event.kind,
        event_date=date.fromisoformat(str(entry.get("event_date"))),
        template="moved",
        rule_id="moved",
        days_before=int(str(entry.get("days_before", 0))),
        send_at=send_at,
        detail=policy.detail,
        code=event.code,
        title=rd.LocalText(en=event.title_en, zh=event.title_zh) if event.title_en else None,
        moved_from=date.fromisoformat(moved_from),
    )


def _rerender_row(
    row: StoredMessage, message: PlannedMessage, variant: int, *, ctx: RenderContext, source: str
) -> bool:
    """Store the body rendered now (language, wording) when it differs from the stored one."""
    body = render_message(message, variant, ctx)
    if body == row.body and row.locale == ctx.locale and row.contact_id == ctx.contact_id:
        return False
    info = count_segments(body)
    values = {"body": body, "locale": ctx.locale, "segments": info.segments}
    values |= {"contact_id": ctx.contact_id}
    return transition(
        row.id, expect=("planned",), to="planned", source=source, detail="re-rendered",
        values=values | {"encoding": info.encoding},
    )  # fmt: skip


def _content_values(message: PlannedMessage, ctx: RenderContext) -> dict[str, object]:
    info = count_segments(message.body)
    return {
        "body": message.body,
        "locale": ctx.locale,
        "segments": info.segments,
        "encoding": info.encoding,
        "send_after": message.send_at.astimezone(UTC),
        "due_at": message.send_at.astimezone(UTC),
        "expires_at": message.expires_at.astimezone(UTC),
        "event_keys": message.event_keys,
        "items": [item.to_json() for item in message.items],
        "notes": list(message.notes),
        "invites": to_confirm(message.event_keys) if message.kind in INVITING_KINDS else None,
        "contact_id": ctx.contact_id,
    }


def _update_planned(
    row: StoredMessage, message: PlannedMessage, ctx: RenderContext, source: str
) -> bool:
    same_text = row.body == message.body and _notes_of(row) == list(message.notes)
    if same_text and row.contact_id == ctx.contact_id:
        return False
    values = _content_values(message, ctx)
    return transition(
        row.id, expect=("planned",), to="planned", source=source, detail="re-rendered",
        values=values,
    )  # fmt: skip


def _insert_rows(
    patient: Patient, messages: Sequence[PlannedMessage], ctx: RenderContext, source: str
) -> list[int]:
    """Insert new planned rows and their first history rows; return the rows' ids in order.

    One executemany of the rows (batched by the driver), one SELECT of their ids back by their
    natural key, one executemany of their history rows: the cost does not grow per row. Only
    (id, key) pairs are read back: loading the rows as ORM objects decoded every JSON column,
    a fifth of a first plan.
    """
    if not messages:
        return []
    at = utcnow()
    values = [
        {
            "patient_id": patient.id,
            "dedupe_key": message.dedupe_key,
            "kind": message.kind,
            "status": "planned",
            "created_at": at,
            "updated_at": at,
            **_content_values(message, ctx),
        }
        for message in messages
    ]
    db.session.execute(insert(OutboxMessage.__table__), values)
    keys = [message.dedupe_key for message in messages]
    found = db.session.execute(_new_ids_select(), {"patient_id": patient.id, "keys": keys})
    by_key: dict[str, int] = {key: message_id for message_id, key in found}
    ids = [by_key[key] for key in keys]
    history = [
        {
            "message_id": message_id,
            "at": at,
            "from_status": None,
            "to_status": "planned",
            "source": source[:120],
            "detail": ", ".join(message.notes) or None,
        }
        for message_id, message in zip(ids, messages, strict=True)
    ]
    db.session.execute(insert(OutboxStatusChange.__table__), history)  # Core: one executemany
    return ids


@cache
def _new_ids_select() -> Select[Any]:
    """The ids of a patient's outbox rows with the given natural keys (built once)."""
    return select(OutboxMessage.id, OutboxMessage.dedupe_key).where(
        OutboxMessage.patient_id == bindparam("patient_id"),
        OutboxMessage.dedupe_key.in_(bindparam("keys", expanding=True)),
    )


def patient_can_receive(patient: Patient) -> bool:
    """True when SMS may be planned and sent to the patient."""
    return blocked_reason(patient) is None


def cancel_unsent_to_contact(contact_id: int, *, reason: str, source: str) -> int:
    """Cancel every planned message to one contact (consent withdrawn, opt-out); no commit."""
    rows = list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.contact_id == contact_id, OutboxMessage.status == "planned")
            .execution_options(populate_existing=True)
        )
    )
    return _cancel_rows(rows, reason, source, error=reason)


def render_for_recipient(
    row: OutboxMessage, patient: Patient, recipient: recipients.Recipient
) -> str | None:
    """A stored reminder's text rendered again for another recipient's language, or None."""
    ctx = context_for_recipient(patient, recipient)
    if row.locale == ctx.locale:
        return row.body
    policy = reminder_policy()
    events = reminder_events(patient)
    since = row.send_after - timedelta(days=2)
    known = {item.ident: item for item in rd.reminder_items(policy, events, ctx.tz, since)}
    by_key = {e.key: e for e in events}
    rebuilt = _rebuilt_message(row, row.items or [], policy, known, by_key, ctx)
    return render_message(*rebuilt, ctx) if rebuilt is not None else None
