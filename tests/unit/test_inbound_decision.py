"""decide() over the whole decision table, as pure function tests (no database, no app).

Every intent x priority x sender kind (patient, caregiver, shared number, unknown) x consent
state; the conversation states (red check asked back, open check-in, bare codes asked back); the
safety net (text the parser cannot read reaches a person, more urgent). Assertions are on the
returned actions, labels and reply keys.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from itertools import product

import pytest

from app.domain import checkins as ck
from app.domain.inbound_decision import (
    AnswerCheckin,
    CheckinView,
    ConfirmEvents,
    ContactView,
    Decision,
    EventView,
    FlagReschedule,
    InboundContext,
    Message,
    OptIn,
    OptOut,
    PageOnCall,
    RaiseAlert,
    SettleRedCheck,
    SharedPatient,
    alert_summary,
    decide,
    needs_triage,
    route_of,
)
from app.domain.protocol import default_protocol_path, load_protocol
from app.domain.replies import INTENTS, ParsedReply, SymptomMention, parse_reply
from app.domain.triage import PRIORITIES, TriageContext, TriageResult, triage

SENDERS = ("patient", "caregiver", "shared", "unknown")
CONSENT = ("in", "opted_out")
VISIT = date(2026, 3, 10)
EVENTS = (
    EventView("c2.infusion", "planned", VISIT),
    EventView("c2.labs", "confirmed", VISIT),
)
CLINICAL = ("symptom_report", "checkin_answer")


def parsed_as(intent: str, *, text: str = "message", symptom: bool = False) -> ParsedReply:
    """A parse with this intent (a graded nausea mention for the clinical intents)."""
    symptoms = (
        (SymptomMention("nausea", 2, evidence="恶心"),) if symptom or intent in CLINICAL else ()
    )
    return ParsedReply(text=text, normalized=text, language="zh", intent=intent, symptoms=symptoms)


def result_of(priority: str) -> TriageResult:
    reasons = (f"rule_{priority}: because",) if priority != "none" else ("none: no content",)
    return TriageResult(priority, reasons, ("rule_red",) if priority == "red" else ())


def context_for(
    sender: str, consent: str, *, events: tuple[EventView, ...] = EVENTS
) -> InboundContext:
    opted_out = consent == "opted_out"
    if sender == "unknown":
        return InboundContext("unknown", "zh", "zh")
    if sender == "shared":
        shared = (SharedPatient("NJ-001", "WL"), SharedPatient("NJ-002", "ZM"))
        return InboundContext("shared", "zh", "zh", shared=shared)
    if sender == "caregiver":
        return InboundContext(
            "caregiver", "zh", "zh", contact=ContactView(7, "daughter", opted_out), events=events
        )
    return InboundContext("patient", "en", "zh", patient_opted_out=opted_out, events=events)


def decide_cell(intent: str, priority: str, sender: str, consent: str) -> Decision:
    # "ok please" is no bare code (longer than 8 characters): free text, never asked back
    message = Message("ok please", parsed_as(intent, text="ok please"), result_of(priority))
    return decide(message, context_for(sender, consent))


def of_type(decision: Decision, kind: type) -> list:
    return [a for a in decision.actions if isinstance(a, kind)]


CELLS = list(product(INTENTS, PRIORITIES, SENDERS, CONSENT))


# -- invariants over every cell ----------------------------------------------------------------


@pytest.mark.parametrize(("intent", "priority", "sender", "consent"), CELLS)
def test_red_always_pages_once_and_gets_the_emergency_wording(
    intent: str, priority: str, sender: str, consent: str
) -> None:
    decision = decide_cell(intent, priority, sender, consent)
    pages = of_type(decision, PageOnCall)
    if priority != "red":
        assert pages == [] and "paged_on_call" not in decision.labels
        return
    assert len(pages) == 1 and decision.labels.count("paged_on_call") == 1
    paged = [a for a in decision.alerts if a.kind == pages[0].alert_kind]
    assert [a.level for a in paged] == ["red"]
    # the page follows its alert
    assert decision.actions.index(paged[0]) < decision.actions.index(pages[0])
    if sender == "unknown":
        assert decision.reply is not None and decision.reply.key == "unknown_sender"
        assert decision.reply.params == {"emergency": True}
    else:
        assert decision.reply is not None and decision.reply.key == "red"


@pytest.mark.parametrize(("intent", "priority", "sender", "consent"), CELLS)
def test_no_number_that_is_not_one_patients_changes_patient_data(
    intent: str, priority: str, sender: str, consent: str
) -> None:
    decision = decide_cell(intent, priority, sender, consent)
    writes = (OptOut, OptIn, ConfirmEvents, FlagReschedule, AnswerCheckin, SettleRedCheck)
    if sender in ("shared", "unknown"):
        assert [a for a in decision.actions if isinstance(a, writes)] == []
        assert len(decision.alerts) == 1 and decision.alerts[0].kind == "review"


@pytest.mark.parametrize(
    ("intent", "priority", "consent"), list(product(INTENTS, PRIORITIES, CONSENT))
)
def test_a_shared_number_is_never_guessed_and_never_below_amber(
    intent: str, priority: str, consent: str
) -> None:
    decision = decide_cell(intent, priority, "shared", consent)
    (alert,) = decision.alerts
    assert alert.level == ("red" if priority == "red" else "amber")
    assert alert.reasons[0].startswith("shared phone: patients NJ-001, NJ-002")
    assert decision.labels[0] == "shared_phone_asked"
    if priority != "red":
        assert decision.reply is not None and decision.reply.key == "which_patient"
        assert decision.reply.params == {"initials": ("WL", "ZM")}


@pytest.mark.parametrize(
    ("intent", "priority", "consent"), list(product(INTENTS, PRIORITIES, CONSENT))
)
def test_an_unknown_number_reaches_a_nurse_at_its_level(
    intent: str, priority: str, consent: str
) -> None:
    decision = decide_cell(intent, priority, "unknown", consent)
    (alert,) = decision.alerts
    assert alert.level == {"red": "red", "amber": "amber"}.get(priority, "green")
    assert decision.reply is not None and decision.reply.key == "unknown_sender"
    assert decision.labels == (("paged_on_call",) if priority == "red" else ())


# -- a patient's or a caregiver's free text: the table -------------------------------------------

# the reply key by (intent, priority): red first, then opt-out/in/help/date change, then amber
REPLY = {
    "opt_out": "opt_out", "opt_in": "opt_in", "help": "help", "reschedule_request": "reschedule",
}  # fmt: skip


def expected_reply(intent: str, priority: str) -> str:
    if priority == "red":
        return "red"
    if intent in REPLY:
        return REPLY[intent]
    if priority == "amber":
        return "amber"
    if intent == "confirm":
        return "confirm"
    return "green" if priority == "green" and intent != "unknown" else "unknown"


# the alerts by (intent, priority): the intent's alert, then the priority's (only red adds to one)
PRIORITY_ALERT = {
    ("red", True): ("symptom", "red"), ("red", False): ("symptom", "red"),
    ("amber", True): ("symptom", "amber"), ("amber", False): ("review", "amber"),
    ("green", True): ("symptom", "green"), ("green", False): None,
    ("none", True): None, ("none", False): None,
}  # fmt: skip
INTENT_ALERT = {"opt_out": ("opt_out", "green"), "reschedule_request": ("reschedule", "amber")}


def expected_alerts(intent: str, priority: str) -> list[tuple[str, str]]:
    alerts = [INTENT_ALERT[intent]] if intent in INTENT_ALERT else []
    if alerts and priority != "red":
        return alerts
    by_priority = PRIORITY_ALERT[(priority, intent in CLINICAL)]
    if by_priority is None and intent == "unknown" and priority in ("green", "none"):
        by_priority = ("review", "green")
    return alerts + ([by_priority] if by_priority else [])


@pytest.mark.parametrize(
    ("intent", "priority", "sender", "consent"),
    list(product(INTENTS, PRIORITIES, ("patient", "caregiver"), CONSENT)),
)
def test_the_free_text_table(intent: str, priority: str, sender: str, consent: str) -> None:
    decision = decide_cell(intent, priority, sender, consent)
    assert decision.route == "free_text"
    assert decision.reply is not None and decision.reply.key == expected_reply(intent, priority)
    assert [(a.kind, a.level) for a in decision.alerts] == expected_alerts(intent, priority)
    assert decision.result == result_of(priority)
    scope = "contact" if sender == "caregiver" else "patient"
    labels = list(decision.labels)
    if sender == "caregiver":
        assert labels.pop(0) == "from_contact:daughter"
    intent_actions = [a for a in decision.actions if not isinstance(a, RaiseAlert | PageOnCall)]
    if intent == "opt_out":
        assert intent_actions == [OptOut(scope)] and labels[0] == "opted_out"
    elif intent == "opt_in":
        assert intent_actions == [OptIn(scope)]
        assert ("opted_in" in labels) == (consent == "opted_out")
    elif intent == "confirm":
        assert intent_actions == [ConfirmEvents(("c2.infusion",))]
        assert labels[0] == "confirmed:c2.infusion"
        if decision.reply.key == "confirm":
            assert decision.reply.params == {"confirmed": True}
    elif intent == "reschedule_request":
        assert intent_actions == [FlagReschedule(("c2.infusion", "c2.labs"))]
        assert labels[:2] == ["reschedule_requested:c2.infusion", "reschedule_requested:c2.labs"]
        assert decision.alerts[0].reasons == ("reschedule requested: c2.infusion, c2.labs",)
    else:
        assert intent_actions == []


def test_an_opt_out_from_a_caregiver_says_it_stops_that_contact_only() -> None:
    decision = decide_cell("opt_out", "none", "caregiver", "in")
    (alert,) = decision.alerts
    assert alert.reasons == (
        "opt-out keyword from the daughter's phone: no SMS to that contact only",
    )
    own = decide_cell("opt_out", "none", "patient", "in").alerts[0]
    assert own.reasons[0].startswith("opt-out keyword: no SMS until the patient opts back in")
    assert alert.summary == own.summary == "opted out of SMS"


def test_a_confirmation_with_nothing_to_confirm_says_so() -> None:
    context = context_for("patient", "in", events=(EventView("c2.labs", "confirmed", VISIT),))
    message = Message("ok please", parsed_as("confirm", text="ok please"), result_of("none"))
    decision = decide(message, context)
    assert of_type(decision, ConfirmEvents) == [] and decision.reply is not None
    assert decision.reply.params == {"confirmed": False}


def test_a_date_change_with_no_open_event_still_reaches_a_nurse() -> None:
    context = context_for("patient", "in", events=())
    message = Message("ok please", parsed_as("reschedule_request"), result_of("none"))
    decision = decide(message, context)
    assert of_type(decision, FlagReschedule) == []
    (alert,) = decision.alerts
    assert (alert.kind, alert.level) == ("reschedule", "amber")
    assert alert.reasons == ("reschedule requested: no open event found",)


def test_a_shared_phone_resolved_says_how() -> None:
    context = replace(context_for("patient", "in"), resolved_by="initials")
    message = Message("ok please", parsed_as("help"), result_of("none"))
    assert decide(message, context).labels == ("shared_phone_resolved_by:initials",)


def test_an_unknown_sender_is_answered_in_the_language_they_wrote() -> None:
    english = replace(parsed_as("help"), language="en")
    decision = decide(Message("help", english, result_of("none")), context_for("unknown", "in"))
    assert decision.locale == "en"
    mixed = replace(parsed_as("help"), language="mixed")
    assert (
        decide(Message("?", mixed, result_of("none")), context_for("unknown", "in")).locale == "zh"
    )


def test_alert_summaries_name_symptoms_and_temperature() -> None:
    symptoms = [
        {"code": "fever", "grade": 2, "temperature_c": 38.6},
        {"code": "cough", "grade": None},
    ]
    assert alert_summary("symptom", symptoms, 38.6, []) == "fever G2, cough, 38.6 C"
    assert alert_summary("review", [], None, ["x: y"]) == "message to read"
    assert alert_summary("symptom", [], None, ["safety_net: unread"]) == "safety_net"


def test_a_temperature_rides_on_the_fever_entry_of_the_alert() -> None:
    parsed = replace(parsed_as("symptom_report"), temperature_c=39.2)
    decision = decide(Message("39.2", parsed, result_of("red")), context_for("patient", "in"))
    red = next(a for a in decision.alerts if a.level == "red")
    assert {"code": "fever", "grade": None, "temperature_c": 39.2} in red.symptoms
    assert red.summary == "nausea G2, fever, 39.2 C"


def test_a_triaged_route_without_its_triage_is_refused() -> None:
    with pytest.raises(ValueError, match="needs the triage"):
        decide(Message("ok please", parsed_as("help")), context_for("patient", "in"))


# -- conversation state: check-ins, bare codes, the red check -----------------------------------


@pytest.fixture(scope="module")
def items() -> tuple[ck.CheckinItem, ...]:
    return tuple(ck.load_checkins(load_protocol(default_protocol_path())).items)


def checkin_context(
    items: tuple[ck.CheckinItem, ...], *, events: tuple[EventView, ...] = (), **changes: object
) -> InboundContext:
    question = ck.next_question(items, {})
    checkin = replace(CheckinView(41, items, question), **changes)
    return replace(context_for("patient", "in", events=events), checkin=checkin)


def bare(text: str, context: InboundContext) -> Decision:
    parsed = parse_reply(text)
    result = (
        triage(parsed, context=TriageContext()) if needs_triage(text, parsed, context) else None
    )
    return decide(Message(text, parsed, result), context)


def test_a_bare_answer_to_the_open_question_goes_to_the_check_in(items) -> None:
    decision = bare("1", checkin_context(items))
    assert decision.route == "checkin_answer"
    assert decision.actions == (AnswerCheckin(41, single_answers=True),)
    assert decision.reply is None and decision.result is None


def test_a_bare_code_that_fits_the_check_in_and_the_reminder_is_asked_back(items) -> None:
    decision = bare("1", checkin_context(items, events=EVENTS))
    assert decision.route == "ask_back" and decision.actions == ()
    assert decision.labels == ("asked_back:confirm+checkin",)
    question = ck.next_question(items, {})
    assert question is not None and decision.reply is not None
    assert decision.reply.key == "ask_back"
    assert decision.reply.params == {"text": "1", "visit": VISIT, "code": f"{question.code}1"}
    assert decision.result is not None and decision.result.priority == "none"


def test_a_bare_code_with_nothing_open_is_asked_back(items) -> None:
    decision = bare("1", context_for("patient", "in", events=()))
    assert decision.route == "ask_back" and decision.labels == ("asked_back:nothing_open",)
    assert decision.reply is not None and decision.reply.key == "nothing_open"


def test_a_bare_confirmation_with_only_the_reminder_open_confirms() -> None:
    decision = bare("1", context_for("patient", "in"))
    assert decision.route == "free_text"
    assert of_type(decision, ConfirmEvents) == [ConfirmEvents(("c2.infusion",))]


def test_compact_codes_go_to_the_check_in_even_when_a_reminder_is_open(items) -> None:
    code = items[0].questions[0].code
    decision = bare(f"{code}1", checkin_context(items, events=EVENTS))
    assert decision.actions == (AnswerCheckin(41, single_answers=False),)


@pytest.mark.parametrize(("text", "confirmed"), [("是", True), ("yes", True), ("不是", False)])
def test_a_yes_or_no_settles_a_held_red_answer(items, text: str, confirmed: bool) -> None:
    decision = bare(text, checkin_context(items, red_check_pending=True))
    assert decision.route == "red_check"
    assert decision.actions == (SettleRedCheck(41, confirmed),)


def test_free_text_while_a_red_is_held_is_read_as_free_text(items) -> None:
    decision = bare("发烧39度", checkin_context(items, red_check_pending=True))
    assert decision.route == "free_text"
    assert of_type(decision, PageOnCall) == [PageOnCall("symptom")]


def test_a_check_in_that_took_nothing_is_decided_again_as_free_text(items) -> None:
    context = checkin_context(items, takes_answers=False)
    assert route_of("1", parse_reply("1"), context) == "free_text"


@pytest.mark.parametrize("sender", ["caregiver", "patient"])
def test_a_check_in_answer_keeps_who_sent_it(items, sender: str) -> None:
    base = context_for(sender, "in", events=())
    context = replace(base, checkin=CheckinView(41, items, ck.next_question(items, {})))
    decision = bare("1", context)
    assert decision.labels == (("from_contact:daughter",) if sender == "caregiver" else ())


# -- the safety net: text the parser cannot read ----------------------------------------------


@pytest.mark.parametrize("text", ["腿上青了一大块", "asdf qwer", "他这两天老是出虚汗"])
@pytest.mark.parametrize("sender", ["patient", "caregiver"])
def test_unreadable_text_from_a_patient_reaches_a_nurse_as_amber(text: str, sender: str) -> None:
    context = context_for(sender, "in", events=())
    parsed = parse_reply(text)
    assert needs_triage(text, parsed, context)
    decision = decide(Message(text, parsed, triage(parsed, context=TriageContext())), context)
    assert [a.level for a in decision.alerts] == ["amber"]
    assert any(r.startswith("safety_net") for r in decision.alerts[0].reasons)
    assert decision.reply is not None and decision.reply.key == "amber"


def test_unreadable_text_on_a_shared_number_is_amber_and_asked() -> None:
    parsed = parse_reply("asdf qwer")
    decision = decide(
        Message("asdf qwer", parsed, triage(parsed, context=TriageContext())),
        context_for("shared", "in"),
    )
    assert [a.level for a in decision.alerts] == ["amber"]
    assert decision.reply is not None and decision.reply.key == "which_patient"


@pytest.mark.parametrize("text", ["发烧39度", "吐血了", "fever 38.6", "胸口痛"])
@pytest.mark.parametrize("sender", SENDERS)
def test_real_red_flags_page_from_every_kind_of_sender(text: str, sender: str) -> None:
    context = context_for(sender, "in")
    parsed = parse_reply(text)
    enrolled = TriageContext(enrolled=sender != "unknown")
    decision = decide(Message(text, parsed, triage(parsed, context=enrolled)), context)
    assert decision.pages and "paged_on_call" in decision.labels
