"""What an inbound SMS leads to (pure): the actions to take and the reply to give.

The inbound pipeline is normalise -> parse -> triage -> **decide** -> apply. ``decide`` takes the
message as read (its text, the parse and the triage result) and a snapshot of what the service
knew when it arrived (``InboundContext``: who sent it, the patient's opt-out state, the open
check-in and the events of the last reminder) and returns a ``Decision``: typed actions (raise an
alert, page the on-call clinician, opt out or in, confirm events, flag a date change, hand the
text to the check-in, ...), the reply as a text key with its parameters, and the labels stored
with the message. Nothing is read or written here: the service's loader builds the context, and
one service function applies the decision in one transaction (app.services.conversations.inbound).

Patient safety: an unknown or shared number never hides a red flag (red pages at once and gets
the emergency reply), a shared number is never guessed (amber at least, a nurse attributes it),
and text the parser cannot read reaches a person through the triage safety net (app.domain.triage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from app.domain import checkins as ck
from app.domain.conversation_state import CHECKIN, CONFIRM, Reading, read_reply
from app.domain.replies import ParsedReply
from app.domain.sms_answers import answers_checkin, read_single_answer, read_yes_no
from app.domain.triage import TriageResult

SenderKind = Literal["patient", "caregiver", "shared", "unknown"]
Route = Literal[
    "unknown_sender", "shared_number", "red_check", "checkin_answer", "ask_back", "free_text"
]
TRIAGED_ROUTES: tuple[Route, ...] = ("unknown_sender", "shared_number", "free_text")
"""The routes whose decision needs the triage result (the others are decided without it)."""

CLINICAL_INTENTS = ("symptom_report", "checkin_answer")
CONFIRMABLE_STATUSES = ("planned",)
BARE_CONFIRM_INTENTS = ("confirm", "reschedule_request")
BARE_CODE_CHARS = 8
"""A confirmation this short ("1", "yes", "好的") is a bare code: it needs an open invitation."""


# -- the context: what the service knew when the message arrived ---------------------------------


@dataclass(frozen=True)
class ContactView:
    """The contact whose phone sent the message."""

    id: int
    relation: str
    opted_out: bool = False


@dataclass(frozen=True)
class EventView:
    """An open event of the last reminder sent to the patient (still ahead)."""

    key: str
    status: str
    date: date


@dataclass(frozen=True)
class CheckinView:
    """The patient's open SMS check-in: its items, the current question, a held red answer.

    ``takes_answers`` False: the check-in service took no answer from this message after all
    (settled meanwhile by another message), so it is decided again as free text.
    """

    session_id: int
    items: tuple[ck.CheckinItem, ...] = ()
    question: ck.Question | None = None
    red_check_pending: bool = False
    takes_answers: bool = True


@dataclass(frozen=True)
class SharedPatient:
    """One of the patients sharing the sender's number (when nothing told which one)."""

    study_id: str
    initials: str


@dataclass(frozen=True)
class InboundContext:
    """A snapshot of what ``decide`` needs to know about the sender and the patient.

    ``locale``: the answer's locale (the contact's or the patient's; for a shared number the one
    locale the patients share); an unknown sender is answered in the language they wrote, else
    ``default_locale``.
    """

    sender: SenderKind
    locale: str = "zh"
    default_locale: str = "zh"
    contact: ContactView | None = None
    resolved_by: str | None = None
    patient_opted_out: bool = False
    checkin: CheckinView | None = None
    events: tuple[EventView, ...] = ()
    shared: tuple[SharedPatient, ...] = ()


@dataclass(frozen=True)
class Message:
    """The message as read: its text, the parse and (for the routes that need it) the triage."""

    text: str
    parsed: ParsedReply
    result: TriageResult | None = None


# -- the decision: actions and the reply ---------------------------------------------------------


@dataclass(frozen=True)
class RaiseAlert:
    """Raise an alert about the message (one per kind and message)."""

    kind: str  # symptom | review | opt_out | reschedule
    level: str  # red | amber | green
    summary: str
    reasons: tuple[str, ...]
    symptoms: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class PageOnCall:
    """Page the on-call clinician about the alert of this kind just raised."""

    alert_kind: str


@dataclass(frozen=True)
class OptOut:
    """Stop SMS: to the contact who wrote (``contact``) or to the patient."""

    scope: Literal["contact", "patient"]


@dataclass(frozen=True)
class OptIn:
    """Restart SMS after an opt-out (the contact's or the patient's)."""

    scope: Literal["contact", "patient"]


@dataclass(frozen=True)
class ConfirmEvents:
    """Mark these planned events confirmed by the patient."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class FlagReschedule:
    """Flag these events: the patient asked to change the date."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class AnswerCheckin:
    """The text answers the open check-in: the check-in service records it and answers.

    ``single_answers``: a bare answer counts for the current question (False: only compact codes).
    """

    session_id: int
    single_answers: bool


@dataclass(frozen=True)
class SettleRedCheck:
    """A yes / no to the question asked back about a one-character red answer."""

    session_id: int
    confirmed: bool


Action = (
    RaiseAlert | PageOnCall | OptOut | OptIn | ConfirmEvents | FlagReschedule | AnswerCheckin
    | SettleRedCheck
)  # fmt: skip


@dataclass(frozen=True)
class Reply:
    """The answer to send, as a text key and its parameters (worded by the service)."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What to do about one message: actions in order, the reply, what is stored with it.

    ``reply`` None: the check-in service answers (``AnswerCheckin`` / ``SettleRedCheck``).
    ``labels``: the actions as stored on the message ("opted_out", "paged_on_call", ...).
    """

    route: Route
    locale: str
    actions: tuple[Action, ...] = ()
    reply: Reply | None = None
    labels: tuple[str, ...] = ()
    result: TriageResult | None = None

    @property
    def alerts(self) -> tuple[RaiseAlert, ...]:
        """The alerts to raise, in order."""
        return tuple(a for a in self.actions if isinstance(a, RaiseAlert))

    @property
    def pages(self) -> bool:
        """True when the on-call clinician is paged."""
        return any(isinstance(a, PageOnCall) for a in self.actions)


# -- deciding -----------------------------------------------------------------------------------


def route_of(text: str, parsed: ParsedReply, context: InboundContext) -> Route:
    """Which way the message goes (before triage: the check-in routes need none)."""
    return _routing(text, parsed, context)[0]


def needs_triage(text: str, parsed: ParsedReply, context: InboundContext) -> bool:
    """True when deciding this message needs its triage result."""
    return route_of(text, parsed, context) in TRIAGED_ROUTES


def decide(message: Message, context: InboundContext) -> Decision:
    """The actions and the reply for one message (pure)."""
    route, reading = _routing(message.text, message.parsed, context)
    if route == "red_check":
        assert context.checkin is not None
        verdict = read_yes_no(message.text)
        settle = SettleRedCheck(context.checkin.session_id, bool(verdict))
        return Decision(route, context.locale, (settle,), labels=sender_labels(context))
    if route == "checkin_answer":
        assert context.checkin is not None
        answer = AnswerCheckin(context.checkin.session_id, reading.route == "checkin")
        return Decision(route, context.locale, (answer,), labels=sender_labels(context))
    if route == "ask_back":
        return _ask_back(message, reading, context)
    if message.result is None:
        raise ValueError(f"the {route} route needs the triage result")
    if route == "unknown_sender":
        return _from_unknown_sender(message.parsed, message.result, context)
    if route == "shared_number":
        return _from_shared_number(message.parsed, message.result, context)
    return _from_patient(message.parsed, message.result, context)


def _routing(text: str, parsed: ParsedReply, context: InboundContext) -> tuple[Route, Reading]:
    text_reading = Reading("text")
    if context.sender == "unknown":
        return "unknown_sender", text_reading
    if context.sender == "shared":
        return "shared_number", text_reading
    checkin = context.checkin
    if checkin is not None and checkin.red_check_pending and read_yes_no(text) is not None:
        return "red_check", text_reading
    reading = read_against_invitations(text, parsed, context)
    if reading.route in ("ask_back", "no_invitation"):
        return "ask_back", reading
    single = reading.route == "checkin"
    if (
        checkin is not None
        and checkin.takes_answers
        and answers_checkin(text, checkin.items, checkin.question if single else None)
    ):
        return "checkin_answer", reading
    return "free_text", reading


def read_against_invitations(text: str, parsed: ParsedReply, context: InboundContext) -> Reading:
    """Which open invitation a reply answers (app.domain.conversation_state): the reminder's
    "Reply 1 to confirm" while its events are ahead, the check-in question once handed over."""
    question = context.checkin.question if context.checkin else None
    fits_checkin = question is not None and read_single_answer(text, question) is not None
    fits_confirm = parsed.intent in BARE_CONFIRM_INTENTS and len(text.strip()) <= BARE_CODE_CHARS
    invitations = [CONFIRM] if context.events else []
    if question is not None:
        invitations.append(CHECKIN)
    return read_reply(
        fits_confirm=fits_confirm, fits_checkin=fits_checkin, open_invitations=invitations
    )


def sender_labels(context: InboundContext) -> tuple[str, ...]:
    """What the stored actions say about who sent it: a caregiver, a shared phone resolved."""
    labels = []
    if context.sender == "caregiver" and context.contact is not None:
        labels.append(f"from_contact:{context.contact.relation}")
    if context.resolved_by not in (None, "only"):
        labels.append(f"shared_phone_resolved_by:{context.resolved_by}")
    return tuple(labels)


def _ask_back(message: Message, reading: Reading, context: InboundContext) -> Decision:
    """A bare code that fits two open invitations (or none) is never guessed: ask back."""
    text = message.parsed.text.strip()
    if reading.route == "ask_back":
        question = context.checkin.question if context.checkin else None
        assert question is not None and context.events
        reply = Reply(
            "ask_back",
            {"text": text, "visit": context.events[0].date, "code": f"{question.code}{text}"},
        )
        reason = "a bare code that fits two open messages: asked back"
    else:
        reply = Reply("nothing_open", {"text": text})
        reason = "a bare code while no message awaits a reply: asked back"
    return Decision(
        "ask_back",
        context.locale,
        reply=reply,
        labels=(f"asked_back:{'+'.join(reading.candidates) or 'nothing_open'}",),
        result=TriageResult("none", (f"conversation: {reason}",)),
    )


def _from_unknown_sender(
    parsed: ParsedReply, result: TriageResult, context: InboundContext
) -> Decision:
    """No patient has this number: a nurse reads it; red pages and gets the emergency wording."""
    locale = parsed.language if parsed.language in ("zh", "en") else context.default_locale
    level = result.priority if result.priority in ("red", "amber") else "green"
    actions: list[Action] = [alert_about("review", level, parsed, result)]
    labels: list[str] = []
    if level == "red":
        actions.append(PageOnCall("review"))
        labels.append("paged_on_call")
    reply = Reply("unknown_sender", {"emergency": level == "red"})
    return Decision("unknown_sender", locale, tuple(actions), reply, tuple(labels), result)


def _from_shared_number(
    parsed: ParsedReply, result: TriageResult, context: InboundContext
) -> Decision:
    """Nothing tells which patient: ask by initials, flag it for a nurse (red pages at once)."""
    level = "red" if result.priority == "red" else "amber"
    alert = alert_about("review", level, parsed, result)
    ids = ", ".join(p.study_id for p in context.shared)
    shared = f"shared phone: patients {ids}; asked which patient, attribute it by hand"
    actions: list[Action] = [
        RaiseAlert(alert.kind, alert.level, alert.summary, (shared, *alert.reasons), alert.symptoms)
    ]
    labels = ["shared_phone_asked"]
    if level == "red":
        actions.append(PageOnCall("review"))
        labels.append("paged_on_call")
        reply = Reply("red")
    else:
        reply = Reply("which_patient", {"initials": tuple(p.initials for p in context.shared)})
    return Decision("shared_number", context.locale, tuple(actions), reply, tuple(labels), result)


def _from_patient(parsed: ParsedReply, result: TriageResult, context: InboundContext) -> Decision:
    """Free text from the patient or a contact: act on the intent, then on the priority."""
    actions, labels = _intent_actions(parsed, result, context)
    raised = any(isinstance(a, RaiseAlert) for a in actions)
    if not raised or result.priority == "red":
        priority_actions = _priority_actions(parsed, result)
        actions += priority_actions
        if any(isinstance(a, PageOnCall) for a in priority_actions):
            labels.append("paged_on_call")
    confirmed = any(isinstance(a, ConfirmEvents) and a.keys for a in actions)
    reply = patient_reply(parsed.intent, result.priority, confirmed)
    return Decision(
        "free_text", context.locale, tuple(actions), reply, (*sender_labels(context), *labels),
        result,
    )  # fmt: skip


def _intent_actions(
    parsed: ParsedReply, result: TriageResult, context: InboundContext
) -> tuple[list[Action], list[str]]:
    """What the intent does (opt out / in, confirm, date change) and its labels."""
    intent = parsed.intent
    contact = context.contact
    scope: Literal["contact", "patient"] = "contact" if contact is not None else "patient"
    if intent == "opt_out":
        alert = alert_about("opt_out", "green", parsed, result, caregiver=_caregiver(context))
        return [OptOut(scope), alert], ["opted_out"]
    if intent == "opt_in":
        was_out = contact.opted_out if contact is not None else context.patient_opted_out
        return [OptIn(scope)], ["opted_in"] if was_out else []
    if intent == "confirm":
        keys = tuple(e.key for e in context.events if e.status in CONFIRMABLE_STATUSES)
        return ([ConfirmEvents(keys)] if keys else []), [f"confirmed:{key}" for key in keys]
    if intent == "reschedule_request":
        keys = tuple(e.key for e in context.events)
        alert = alert_about("reschedule", "amber", parsed, result, event_keys=keys)
        flag: list[Action] = [FlagReschedule(keys)] if keys else []
        return [*flag, alert], [f"reschedule_requested:{key}" for key in keys]
    return [], []


def _caregiver(context: InboundContext) -> str | None:
    """The relation of the caregiver who wrote (None: the patient's own phone)."""
    if context.sender == "caregiver":
        return context.contact.relation if context.contact else "contact"
    return None


def _priority_actions(parsed: ParsedReply, result: TriageResult) -> list[Action]:
    """The alert the priority calls for (and the page for red)."""
    priority = result.priority
    clinical = (
        parsed.intent in CLINICAL_INTENTS
        or bool(parsed.symptoms)
        or parsed.temperature_c is not None
    )
    if priority == "red":
        return [alert_about("symptom", "red", parsed, result), PageOnCall("symptom")]
    if priority == "amber":
        return [alert_about("symptom" if clinical else "review", "amber", parsed, result)]
    if clinical and priority == "green":
        return [alert_about("symptom", "green", parsed, result)]
    if parsed.intent == "unknown":
        return [alert_about("review", "green", parsed, result)]
    return []


def patient_reply(intent: str, priority: str, confirmed: bool) -> Reply:
    """The answer to a patient's free text: red first, then the intent, then the priority."""
    if priority == "red":
        return Reply("red")
    by_intent = {"opt_out": "opt_out", "opt_in": "opt_in", "help": "help"}
    if intent in by_intent:
        return Reply(by_intent[intent])
    if intent == "reschedule_request":
        return Reply("reschedule")
    if priority == "amber":
        return Reply("amber")
    if intent == "confirm":
        return Reply("confirm", {"confirmed": confirmed})
    if priority == "green" and intent != "unknown":
        return Reply("green")
    return Reply("unknown")


# -- alerts -------------------------------------------------------------------------------------


def alert_about(
    kind: str,
    level: str,
    parsed: ParsedReply | None,
    result: TriageResult | None,
    *,
    event_keys: Sequence[str] = (),
    caregiver: str | None = None,
) -> RaiseAlert:
    """The alert of ``kind`` about a message: summary, reasons and symptoms."""
    symptoms = alert_symptoms(parsed) if parsed else []
    reasons = list(result.reasons) if result else []
    if kind == "reschedule":
        reasons = [f"reschedule requested: {', '.join(event_keys) or 'no open event found'}"]
    elif kind == "opt_out" and caregiver is not None:
        reasons = [f"opt-out keyword from the {caregiver}'s phone: no SMS to that contact only"]
    elif kind == "opt_out":
        reasons = ["opt-out keyword: no SMS until the patient opts back in (check-ins go to calls)"]
    temperature = parsed.temperature_c if parsed else None
    summary = alert_summary(kind, symptoms, temperature, reasons)
    return RaiseAlert(kind, level, summary, tuple(reasons), tuple(symptoms))


def alert_symptoms(parsed: ParsedReply) -> list[dict[str, Any]]:
    """The active symptoms for the alert; the temperature rides on the fever entry."""
    symptoms: list[dict[str, Any]] = [
        {"code": m.code, "grade": m.grade} for m in parsed.active_symptoms
    ]
    if parsed.temperature_c is not None:
        fever = next((s for s in symptoms if s["code"] == "fever"), None)
        if fever is None:
            fever = {"code": "fever", "grade": None}
            symptoms.append(fever)
        fever["temperature_c"] = parsed.temperature_c
    return symptoms


def alert_summary(
    kind: str, symptoms: Sequence[Mapping[str, Any]], temperature: float | None, reasons: list[str]
) -> str:
    """One line for the alert list: symptoms with grades and the temperature, else the reason."""
    if kind == "reschedule":
        return "reschedule request"
    if kind == "opt_out":
        return "opted out of SMS"
    parts = [
        f"{s['code']}" + (f" G{s['grade']}" if s.get("grade") is not None else "") for s in symptoms
    ]
    if temperature is not None:
        parts.append(f"{temperature:.1f} C")
    if not parts and kind == "review":
        parts.append("message to read")
    elif not parts and reasons:
        parts.append(reasons[0].partition(":")[0])
    return ", ".join(parts) or kind
