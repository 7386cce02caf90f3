"""Which SMS reminders are due when: pure rules, no clock, no database, no framework.

The pipeline (``plan_messages``):

1. ``reminder_items``: every reminder rule of the protocol (``reminders:`` section) applied to
   every live calendar event gives items with a local send time in the patient's time zone;
2. quiet hours (default 21:00-08:00) move an item, never drop it: later to the end of the quiet
   hours, or earlier (to ``EARLIER_MARGIN`` before they start) when a rule says so or when
   "later" would be after the event's day;
3. ``merge_half_days``: items due in the same local half-day become one message;
4. ``apply_daily_budget``: at most ``daily_budget`` messages a local day, counting messages that
   exist already; extra ones are merged, or deferred to a later day while that is still before
   their events; a message is never dropped (it is kept and noted "over_budget");
5. ``avoid_duplicate_bodies``: no identical body to the patient within ``duplicate_window``:
   a body variant is asked of the renderer, else the message is shifted, else noted.

Bodies are rendered by a callback (the service layer owns gettext); keys are natural and stable
so re-planning the same calendar gives the same messages.
"""

from __future__ import annotations

import hashlib
from bisect import insort_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cached_property, lru_cache
from typing import Any, Literal, Protocol

from app.domain.protocol import Fasting

Direction = Literal["later", "earlier"]
DETAIL_LEVELS = ("generic", "titles")
LIVE_EVENT_STATUSES = frozenset({"planned", "confirmed"})
EARLIER_MARGIN = timedelta(minutes=30)
MAX_BODY_VARIANTS = 3
MAX_DUPLICATE_SHIFTS = 3


class ReminderConfigError(ValueError):
    """The ``reminders:`` section of a protocol file is not valid (the message says where)."""


@dataclass(frozen=True)
class LocalText:
    """A short text in both shipped languages."""

    en: str
    zh: str

    def get(self, locale: str) -> str:
        """The text for ``locale`` (Chinese for anything but English)."""
        return self.en if locale.startswith("en") else self.zh


@dataclass(frozen=True)
class SendTime:
    """When a rule sends: ``days_before`` the event, at local time ``at``."""

    days_before: int
    at: time
    if_quiet: Direction = "later"
    dose_at: time | None = None


@dataclass(frozen=True)
class ReminderRule:
    """Reminders for one event kind (optionally only some event codes)."""

    kind: str
    template: str
    sends: tuple[SendTime, ...]
    codes: tuple[str, ...] = ()
    announce_moves: bool = False
    detail: str | None = None
    preparation: Mapping[str, LocalText] = field(default_factory=dict)
    every_course_day: bool = False
    arrive_at: time | None = None

    def matches(self, event: ReminderEvent) -> bool:
        """True when this rule applies to ``event``."""
        if event.kind != self.kind:
            return False
        return not self.codes or event_code(event) in self.codes

    def preparation_for(self, code: str | None) -> LocalText | None:
        """Preparation text for an event code, else the rule's "default" one, else None."""
        return self.preparation.get(code or "") or self.preparation.get("default")

    def rule_id(self, send: SendTime, course_day: int = 0) -> str:
        """A stable name of one send time of this rule, e.g. 'infusion:2d@18:00'."""
        scope = self.kind + (f"/{'+'.join(self.codes)}" if self.codes else "")
        dose = f"for{send.dose_at:%H:%M}" if send.dose_at else ""
        day = f"+d{course_day}" if course_day else ""
        return f"{scope}:{send.days_before}d@{send.at:%H:%M}{dose}{day}"


@dataclass(frozen=True)
class ReminderPolicy:
    """The whole reminder configuration: rules plus the carrier and courtesy limits."""

    rules: tuple[ReminderRule, ...] = ()
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    daily_budget: int = 3
    duplicate_window: timedelta = timedelta(hours=24)
    merge_half_days: bool = True
    detail: str = "generic"

    def rules_for(self, event: ReminderEvent) -> list[ReminderRule]:
        """The rules that apply to ``event``."""
        return [rule for rule in self._rules_of_kind.get(event.kind, ()) if rule.matches(event)]

    @cached_property
    def _rules_of_kind(self) -> dict[str, tuple[ReminderRule, ...]]:
        """The rules by event kind, in their order (computed once per policy)."""
        found: dict[str, list[ReminderRule]] = {}
        for rule in self.rules:
            found.setdefault(rule.kind, []).append(rule)
        return {kind: tuple(rules) for kind, rules in found.items()}

    def announces_moves_of(self, event: ReminderEvent) -> bool:
        """True when a move of ``event`` is worth a "your visit has moved" message."""
        return any(rule.announce_moves for rule in self.rules_for(event))

    def detail_for(self, rule: ReminderRule) -> str:
        """The detail level of a rule (its own, else the policy's)."""
        return rule.detail or self.detail


class EventLike(Protocol):
    """What the planner reads from a calendar event (a domain PlannedEvent or a DB row)."""

    key: str
    kind: str
    date: date
    status: str
    title_en: str
    title_zh: str


@dataclass(frozen=True)
class ReminderEvent:
    """A calendar event as the reminder planner sees it."""

    key: str
    kind: str
    date: date
    status: str = "planned"
    title_en: str = ""
    title_zh: str = ""
    code: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, event: EventLike) -> ReminderEvent:
        """Copy the fields the planner needs from any event-like object."""
        details = dict(getattr(event, "details", None) or {})
        return cls(
            key=event.key,
            kind=event.kind,
            date=event.date,
            status=event.status,
            title_en=event.title_en or "",
            title_zh=event.title_zh or "",
            code=getattr(event, "code", None) or _code_from_details(details),
            details=details,
        )

    @classmethod
    def of_columns(
        cls, columns: Mapping[str, Any], details: Mapping[str, Any] | None
    ) -> ReminderEvent:
        """The same as ``of`` from a calendar row's columns (by name) and its decoded details."""
        return cls(
            key=columns["key"],
            kind=columns["kind"],
            date=columns["date"],
            status=columns["status"],
            title_en=columns["title_en"] or "",
            title_zh=columns["title_zh"] or "",
            code=_code_from_details(details or {}),
            details=dict(details or {}),
        )


@dataclass(frozen=True)
class ReminderItem:
    """One reminder of one event, at one local time."""

    event_key: str
    kind: str
    event_date: date
    template: str
    rule_id: str
    days_before: int
    send_at: datetime
    detail: str = "generic"
    code: str | None = None
    title: LocalText | None = None
    preparation: LocalText | None = None
    moved_from: date | None = None
    dose_at: datetime | None = None
    fasting: Fasting | None = None
    arrive_at: time | None = None

    @property
    def expires_at(self) -> datetime:
        """The end of the event's (or the dose's) local day: a reminder is pointless after it."""
        tz = self.send_at.tzinfo
        day = max(self.event_date, self.dose_at.date()) if self.dose_at else self.event_date
        return local_datetime(day + timedelta(days=1), time(0, 0), tz)

    @property
    def ident(self) -> str:
        """A stable identity: which event, which date, which rule."""
        return f"{self.event_key}@{self.event_date.isoformat()}:{self.rule_id}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary, stored with the outbox row."""
        return {
            "event_key": self.event_key,
            "kind": self.kind,
            "event_date": self.event_date.isoformat(),
            "template": self.template,
            "rule": self.rule_id,
            "days_before": self.days_before,
            "moved_from": self.moved_from.isoformat() if self.moved_from else None,
        }


@dataclass(frozen=True)
class PlannedMessage:
    """One message to send: what it covers, when, and (once rendered) its body."""

    kind: str
    send_at: datetime
    items: tuple[ReminderItem, ...]
    body: str = ""
    variant: int = 0
    notes: tuple[str, ...] = ()

    @property
    def expires_at(self) -> datetime:
        """When the message is no longer worth sending (the first covered event's day end)."""
        return min(item.expires_at for item in self.items)

    @property
    def event_keys(self) -> list[str]:
        """The calendar events this message is about, without repeats, in order."""
        return list(dict.fromkeys(item.event_key for item in self.items))

    @cached_property
    def dedupe_key(self) -> str:
        """The natural key: kind, local send minute and a digest of what it covers."""
        idents = "|".join(sorted(item.ident for item in self.items)) + f"|v{self.variant}"
        digest = hashlib.sha1(idents.encode("utf-8")).hexdigest()[:12]
        prefix = "rem" if self.kind == "reminder" else self.kind
        return f"{prefix}:{self.send_at:%Y-%m-%dT%H:%M}:{digest}"

    def with_note(self, note: str) -> PlannedMessage:
        """The same message with one more note (kept once)."""
        if note in self.notes:
            return self
        return replace(self, notes=(*self.notes, note))


@dataclass(frozen=True)
class ExistingMessage:
    """A message that exists already (sent, in flight or planned by something else)."""

    send_at: datetime
    body: str


@dataclass(frozen=True)
class EventMove:
    """An event whose date changed (from a calendar change); ``new_date`` None: not known."""

    key: str
    old_date: date | None
    new_date: date | None = None
    new_status: str | None = None


Renderer = Callable[[PlannedMessage, int], str]


# -- configuration -----------------------------------------------------------------------------


def parse_reminder_policy(
    raw: Mapping[str, Any] | None, *, overrides: Mapping[str, Any] | None = None
) -> ReminderPolicy:
    """Read the protocol file's ``reminders:`` section (None: no rules, default limits).

    ``overrides`` (e.g. from app settings) may set quiet_hours, daily_budget.
    """
    raw = dict(raw or {})
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    quiet = raw.get("quiet_hours") or {}
    if not isinstance(quiet, Mapping):
        raise ReminderConfigError("reminders.quiet_hours must be a mapping with start and end")
    detail = str(raw.get("detail", "generic"))
    _check_detail(detail, "reminders.detail")
    budget = raw.get("daily_budget", 3)
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ReminderConfigError("reminders.daily_budget must be a whole number >= 1")
    window = raw.get("duplicate_window_hours", 24)
    if not isinstance(window, (int, float)) or window < 0:
        raise ReminderConfigError("reminders.duplicate_window_hours must be a number >= 0")
    merge = raw.get("merge", "half_day")
    if merge not in ("half_day", "none"):
        raise ReminderConfigError("reminders.merge must be 'half_day' or 'none'")
    rules = raw.get("rules") or []
    if not isinstance(rules, list):
        raise ReminderConfigError("reminders.rules must be a list")
    return ReminderPolicy(
        rules=tuple(_parse_rule(item, f"reminders.rules[{i}]") for i, item in enumerate(rules)),
        quiet_start=parse_clock(quiet.get("start", "21:00"), "reminders.quiet_hours.start"),
        quiet_end=parse_clock(quiet.get("end", "08:00"), "reminders.quiet_hours.end"),
        daily_budget=budget,
        duplicate_window=timedelta(hours=float(window)),
        merge_half_days=merge == "half_day",
        detail=detail,
    )


def parse_clock(value: Any, where: str) -> time:
    """Parse 'HH:MM' (YAML may also give minutes since midnight for 18:00 unquoted)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    if isinstance(value, time):
        return value
    try:
        hours, minutes = str(value).strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ReminderConfigError(f"{where} must be a time as HH:MM, not {value!r}") from None


def _check_detail(detail: str, where: str) -> None:
    if detail not in DETAIL_LEVELS:
        raise ReminderConfigError(f"{where} must be one of {', '.join(DETAIL_LEVELS)}")


def _parse_rule(raw: Any, where: str) -> ReminderRule:
    if not isinstance(raw, Mapping):
        raise ReminderConfigError(f"{where} must be a mapping")
    for required in ("kind", "template", "send"):
        if required not in raw:
            raise ReminderConfigError(f"{where} needs '{required}'")
    sends = raw["send"]
    if not isinstance(sends, list) or not sends:
        raise ReminderConfigError(f"{where}.send must be a non-empty list")
    detail = raw.get("detail")
    if detail is not None:
        _check_detail(str(detail), f"{where}.detail")
    codes = raw.get("codes") or []
    if not isinstance(codes, list):
        raise ReminderConfigError(f"{where}.codes must be a list")
    return ReminderRule(
        kind=str(raw["kind"]),
        template=str(raw["template"]),
        sends=tuple(_parse_send(s, f"{where}.send[{i}]") for i, s in enumerate(sends)),
        codes=tuple(str(code) for code in codes),
        announce_moves=bool(raw.get("announce_moves", False)),
        detail=None if detail is None else str(detail),
        preparation=_parse_preparation(raw.get("preparation") or {}, f"{where}.preparation"),
        every_course_day=bool(raw.get("every_course_day", False)),
        arrive_at=None
        if raw.get("arrive_at") is None
        else parse_clock(raw["arrive_at"], f"{where}.arrive_at"),
    )


def _parse_send(raw: Any, where: str) -> SendTime:
    if not isinstance(raw, Mapping) or ("at" in raw) == ("dose_at" in raw):
        raise ReminderConfigError(
            f"{where} must be a mapping with days_before and either at or dose_at (a timed dose)"
        )
    days = raw.get("days_before", 0)
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 60:
        raise ReminderConfigError(f"{where}.days_before must be a whole number 0-60")
    direction = raw.get("if_quiet", "later")
    if direction not in ("later", "earlier"):
        raise ReminderConfigError(f"{where}.if_quiet must be 'later' or 'earlier'")
    if "at" in raw:
        return SendTime(days, parse_clock(raw["at"], f"{where}.at"), direction)
    dose = parse_clock(raw["dose_at"], f"{where}.dose_at")
    lead = raw.get("lead_minutes", 120)
    if not isinstance(lead, int) or isinstance(lead, bool) or not 0 < lead <= 24 * 60:
        raise ReminderConfigError(f"{where}.lead_minutes must be a whole number 1-1440")
    send = datetime.combine(date(2000, 1, 2), dose) - timedelta(minutes=lead)
    extra_days = (date(2000, 1, 2) - send.date()).days
    return SendTime(days + extra_days, send.time(), direction, dose_at=dose)


def _parse_preparation(raw: Any, where: str) -> dict[str, LocalText]:
    if not isinstance(raw, Mapping):
        raise ReminderConfigError(f"{where} must map event codes to texts")
    texts = {}
    for code, text in raw.items():
        if not isinstance(text, Mapping) or not text.get("en") or not text.get("zh"):
            raise ReminderConfigError(f"{where}.{code} needs 'en' and 'zh' texts")
        texts[str(code)] = LocalText(en=str(text["en"]), zh=str(text["zh"]))
    return texts


# -- time --------------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def local_datetime(day: date, at: time, tz: tzinfo | None) -> datetime:
    """``day`` at wall time ``at`` in ``tz``; a time skipped by DST moves forward to exist
    (pure and called for every item of every patient: cached)."""
    naive_then_aware = datetime.combine(day, at).replace(tzinfo=tz)
    return naive_then_aware.astimezone(UTC).astimezone(tz)


def in_quiet_hours(moment: datetime, start: time, end: time) -> bool:
    """True when the local wall time of ``moment`` is inside [start, end) (may wrap midnight)."""
    wall = moment.timetz().replace(tzinfo=None)
    if start == end:
        return False
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def move_out_of_quiet_hours(
    moment: datetime, policy: ReminderPolicy, direction: Direction = "later"
) -> datetime:
    """The nearest allowed local time: the end of the quiet hours, or just before they began."""
    if not in_quiet_hours(moment, policy.quiet_start, policy.quiet_end):
        return moment
    tz = moment.tzinfo
    wall, day = moment.timetz().replace(tzinfo=None), moment.date()
    wraps = policy.quiet_start > policy.quiet_end
    if direction == "later":
        end_day = day + timedelta(days=1) if wraps and wall >= policy.quiet_start else day
        return local_datetime(end_day, policy.quiet_end, tz)
    start_day = day - timedelta(days=1) if wraps and wall < policy.quiet_end else day
    return local_datetime(start_day, policy.quiet_start, tz) - EARLIER_MARGIN


def half_day(moment: datetime) -> tuple[date, int]:
    """The local (date, 0 for morning / 1 for afternoon and evening) of ``moment``."""
    return moment.date(), 0 if moment.hour < 12 else 1


# -- planning ----------------------------------------------------------------------------------


def reminder_items(
    policy: ReminderPolicy,
    events: Iterable[ReminderEvent],
    tz: tzinfo,
    now: datetime,
) -> list[ReminderItem]:
    """Every reminder still to send for live events, quiet hours applied, in time order."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    local_now = now.astimezone(tz)
    items = []
    for event in events:
        if event.status not in LIVE_EVENT_STATUSES:
            continue
        for rule in policy.rules_for(event):
            for course_day in _course_days(rule, event):
                if event.date + timedelta(days=course_day) < local_now.date():
                    continue
                for send in rule.sends:
                    item = _item(policy, rule, send, event, tz, course_day)
                    if local_now <= item.send_at < item.expires_at:
                        items.append(item)
    return sorted(items, key=_item_order)


def _course_days(rule: ReminderRule, event: ReminderEvent) -> range:
    """Day indexes of a medication course a rule reminds of (just 0 for one-day events)."""
    if not rule.every_course_day:
        return range(1)
    duration = event.details.get("duration_days", 1)
    return range(max(1, int(duration) if isinstance(duration, int) else 1))


def _item(
    policy: ReminderPolicy,
    rule: ReminderRule,
    send: SendTime,
    event: ReminderEvent,
    tz: tzinfo,
    course_day: int = 0,
) -> ReminderItem:
    day = event.date + timedelta(days=course_day)
    wanted = local_datetime(day - timedelta(days=send.days_before), send.at, tz)
    dose_at = None
    if send.dose_at is not None:
        dose_day = (
            day
            - timedelta(days=send.days_before)
            + (timedelta(days=1) if send.dose_at < send.at else timedelta(0))
        )
        dose_at = local_datetime(dose_day, send.dose_at, tz)
    moved = move_out_of_quiet_hours(wanted, policy, send.if_quiet)
    if moved.date() > (dose_at.date() if dose_at else event.date) or (dose_at and moved > dose_at):
        moved = move_out_of_quiet_hours(wanted, policy, "earlier")
    code = event.code
    return ReminderItem(
        event_key=event.key,
        kind=event.kind,
        event_date=event.date,
        template=rule.template,
        rule_id=rule.rule_id(send, course_day),
        days_before=(event.date - moved.date()).days,
        send_at=moved,
        detail=policy.detail_for(rule),
        code=code,
        title=LocalText(en=event.title_en, zh=event.title_zh) if event.title_en else None,
        preparation=rule.preparation_for(code),
        dose_at=dose_at,
        fasting=Fasting.from_json(event.details.get("fasting")),
        arrive_at=rule.arrive_at,
    )


def _item_order(item: ReminderItem) -> tuple[datetime, date, str, str]:
    return item.send_at, item.event_date, item.kind, item.event_key


def merge_half_days(items: Sequence[ReminderItem], policy: ReminderPolicy) -> list[PlannedMessage]:
    """Group items due in the same local half-day into one message sent at the earliest time."""
    if not policy.merge_half_days:
        return [PlannedMessage("reminder", item.send_at, (item,)) for item in items]
    groups: dict[tuple[date, int], list[ReminderItem]] = {}
    for item in sorted(items, key=_item_order):
        groups.setdefault(half_day(item.send_at), []).append(item)
    messages = []
    for group in groups.values():
        note = ("merged",) if len(group) > 1 else ()
        messages.append(PlannedMessage("reminder", group[0].send_at, tuple(group), notes=note))
    return sorted(messages, key=lambda m: m.send_at)


def merge_messages(first: PlannedMessage, second: PlannedMessage, note: str) -> PlannedMessage:
    """One message covering both, sent at the earlier time."""
    items = tuple(sorted((*first.items, *second.items), key=_item_order))
    notes = tuple(dict.fromkeys((*first.notes, *second.notes, note)))
    return PlannedMessage(first.kind, min(first.send_at, second.send_at), items, notes=notes)


def apply_daily_budget(
    messages: Sequence[PlannedMessage],
    existing: Sequence[ExistingMessage],
    policy: ReminderPolicy,
    tz: tzinfo,
) -> list[PlannedMessage]:
    """Keep at most ``daily_budget`` messages a local day (existing ones count); never drop."""
    used: dict[date, int] = {}
    for message in existing:
        day = message.send_at.astimezone(tz).date()
        used[day] = used.get(day, 0) + 1
    pending = sorted(_with_local_day(messages, tz), key=_entry_time)
    kept: list[PlannedMessage] = []
    while pending:
        day = pending[0][0]
        today = [m for d, m in pending if d == day]
        pending = [entry for entry in pending if entry[0] != day]
        allowed = policy.daily_budget - used.get(day, 0)
        fitted, deferred = _fit_day(today, allowed, policy, tz)
        kept.extend(fitted)
        used[day] = used.get(day, 0) + len(fitted)
        for entry in _with_local_day(deferred, tz):  # after equal times, as a stable sort puts it
            insort_right(pending, entry, key=_entry_time)
    return sorted(kept, key=lambda m: m.send_at)


def _with_local_day(
    messages: Iterable[PlannedMessage], tz: tzinfo
) -> list[tuple[date, PlannedMessage]]:
    """Each message with its local send day (computed once, not at every pass of the budget)."""
    return [(m.send_at.astimezone(tz).date(), m) for m in messages]


def _entry_time(entry: tuple[date, PlannedMessage]) -> datetime:
    return entry[1].send_at


def _fit_day(
    day_messages: list[PlannedMessage], allowed: int, policy: ReminderPolicy, tz: tzinfo
) -> tuple[list[PlannedMessage], list[PlannedMessage]]:
    """Messages kept on this day, and at most one deferred to the next day."""
    if len(day_messages) <= max(allowed, 0):
        return day_messages, []
    if allowed >= 1:
        head, tail = day_messages[: allowed - 1], day_messages[allowed - 1 :]
        return [*head, _merge_all(tail, "merged_for_budget")], []
    merged = _merge_all(day_messages, "merged_for_budget")
    next_day = merged.send_at.astimezone(tz).date() + timedelta(days=1)
    later = local_datetime(next_day, policy.quiet_end, tz)
    if later < merged.expires_at and later.date() <= min(i.event_date for i in merged.items):
        return [], [replace(merged, send_at=later).with_note("deferred_for_budget")]
    return [merged.with_note("over_budget")], []


def _merge_all(messages: Sequence[PlannedMessage], note: str) -> PlannedMessage:
    merged = messages[0]
    for message in messages[1:]:
        merged = merge_messages(merged, message, note)
    return merged


def avoid_duplicate_bodies(
    messages: Sequence[PlannedMessage],
    existing: Sequence[ExistingMessage],
    policy: ReminderPolicy,
    render: Renderer,
) -> list[PlannedMessage]:
    """Render bodies so that no body repeats within ``duplicate_window`` of the same one."""
    taken: dict[str, list[ExistingMessage]] = {}  # by body, each in the order taken
    for other in existing:
        taken.setdefault(other.body, []).append(other)
    result = []
    for message in sorted(messages, key=lambda m: m.send_at):
        placed = _place_without_duplicate(message, taken, policy, render)
        taken.setdefault(placed.body, []).append(ExistingMessage(placed.send_at, placed.body))
        result.append(placed)
    return result


def _place_without_duplicate(
    message: PlannedMessage,
    taken: Mapping[str, Sequence[ExistingMessage]],
    policy: ReminderPolicy,
    render: Renderer,
) -> PlannedMessage:
    candidate = message
    for _shift in range(MAX_DUPLICATE_SHIFTS + 1):
        for variant in range(MAX_BODY_VARIANTS + 1):
            body = render(candidate, variant)
            clash = _clash(body, candidate.send_at, taken, policy.duplicate_window)
            if clash is None:
                note = ("body_variant",) if variant else ()
                placed = replace(candidate, body=body, variant=variant)
                return _with_notes(placed, note)
        shifted = clash.send_at + policy.duplicate_window + timedelta(minutes=1)
        shifted = move_out_of_quiet_hours(shifted.astimezone(candidate.send_at.tzinfo), policy)
        if shifted >= candidate.expires_at:
            break
        candidate = replace(candidate, send_at=shifted).with_note("shifted_duplicate")
    body = render(message, 0)
    return replace(message, body=body).with_note("duplicate_body")


def _with_notes(message: PlannedMessage, notes: Iterable[str]) -> PlannedMessage:
    for note in notes:
        message = message.with_note(note)
    return message


def _clash(
    body: str, at: datetime, taken: Mapping[str, Sequence[ExistingMessage]], window: timedelta
) -> ExistingMessage | None:
    """The first message taken with the same body within ``window`` of ``at``, if any."""
    for other in taken.get(body, ()):
        if abs(other.send_at - at) < window:
            return other
    return None


def plan_messages(
    policy: ReminderPolicy,
    events: Iterable[ReminderEvent],
    tz: tzinfo,
    now: datetime,
    existing: Sequence[ExistingMessage],
    render: Renderer,
) -> list[PlannedMessage]:
    """The reminder messages to have in the outbox from ``now`` on, bodies rendered."""
    items = reminder_items(policy, events, tz, now)
    merged = merge_half_days(items, policy)
    budgeted = apply_daily_budget(merged, existing, policy, tz)
    return avoid_duplicate_bodies(budgeted, existing, policy, render)


# -- one clear message a day ---------------------------------------------------------------------


@dataclass(frozen=True)
class DaySummary:
    """What one message says about one day: each visit once, one preparation, one arrival time.

    `fasting` is the strictest fasting rule of the day's tests; Fasting(0, 0) when the day's
    tests say no fasting is needed; None when no test says anything about fasting.
    """

    day: date
    items: tuple[ReminderItem, ...]
    templates: tuple[str, ...]
    fasting: Fasting | None
    preparations: tuple[LocalText, ...]
    arrive_at: time | None

    def clauses(self) -> list[ReminderItem]:
        """One item per visit kind of the day (and per timed dose), in order."""
        unique: dict[tuple[str, datetime | None], ReminderItem] = {}
        for item in self.items:
            unique.setdefault((item.template, item.dose_at), item)
        return list(unique.values())


def day_summaries(items: Sequence[ReminderItem]) -> list[DaySummary]:
    """Items of one message grouped by the day of their event, in date order."""
    by_day: dict[date, list[ReminderItem]] = {}
    for item in sorted(items, key=lambda i: (i.event_date, _item_order(i))):
        by_day.setdefault(item.event_date, []).append(item)
    summaries = []
    for day, group in by_day.items():
        told = [i.fasting for i in group if i.fasting is not None]
        fasting = Fasting.strictest(told) or (Fasting(0, 0) if told else None)
        arrivals = [i.arrive_at for i in group if i.arrive_at is not None]
        summaries.append(
            DaySummary(
                day=day,
                items=tuple(group),
                templates=tuple(dict.fromkeys(i.template for i in group)),
                fasting=fasting,
                preparations=tuple(
                    dict.fromkeys(i.preparation for i in group if i.preparation is not None)
                ),
                arrive_at=min(arrivals) if arrivals else None,
            )
        )
    return summaries


# -- "your visit has moved" ------------------------------------------------------------------


def moved_items(
    policy: ReminderPolicy,
    moves: Iterable[EventMove],
    events: Iterable[ReminderEvent],
    tz: tzinfo,
    now: datetime,
) -> list[ReminderItem]:
    """One item per announced, still live event now on another date than ``old_date``.

    The event's current date is the truth (an event moved back to its old date needs no notice).
    """
    by_key = {event.key: event for event in events}
    local_now = now.astimezone(tz)
    items = []
    for move in moves:
        event = by_key.get(move.key)
        if event is None or move.old_date is None or move.old_date == event.date:
            continue
        if event.status not in LIVE_EVENT_STATUSES:
            continue
        if event.date < local_now.date() or not policy.announces_moves_of(event):
            continue
        items.append(
            ReminderItem(
                event_key=event.key,
                kind=event.kind,
                event_date=event.date,
                template="moved",
                rule_id="moved",
                days_before=(event.date - local_now.date()).days,
                send_at=local_now,
                detail=policy.detail,
                code=event.code,
                title=LocalText(en=event.title_en, zh=event.title_zh) if event.title_en else None,
                moved_from=move.old_date,
            )
        )
    return sorted(items, key=lambda i: (i.event_date, i.kind, i.event_key))


def moved_notice(
    policy: ReminderPolicy,
    items: Sequence[ReminderItem],
    tz: tzinfo,
    now: datetime,
    render: Renderer,
) -> PlannedMessage | None:
    """One "your visit has moved" message for these items, sent now or after quiet hours."""
    if not items:
        return None
    send_at = move_out_of_quiet_hours(now.astimezone(tz), policy, "later")
    items = tuple(replace(item, send_at=send_at) for item in items)
    message = PlannedMessage("moved", send_at, items)
    return replace(message, body=render(message, 0))


def event_code(event: ReminderEvent) -> str | None:
    """The protocol code of an event (premedication, assessment, panel...), if any."""
    return event.code


def _code_from_details(details: Mapping[str, Any]) -> str | None:
    for key in ("code", "assessment", "contact", "premedication"):
        value = details.get(key)
        if isinstance(value, str) and value:
            return value
    return None
