"""Each triage condition and the result's reasons, on hand-built replies and rules.

Written against surviving mutants (docs/testing.md): every boundary of every condition of the
rules format (triage_rules.yaml) is tried on both sides, with expected values written by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.domain.replies import ParsedReply, SymptomMention
from app.domain.triage import (
    NO_CONTENT_REASON,
    TriageContext,
    TriageResult,
    TriageRule,
    TriageRules,
    TriageRulesError,
    load_triage_rules,
    safety_net,
    triage,
)


def reply(
    *symptoms: SymptomMention,
    intent: str = "symptom_report",
    temperature: float | None = None,
    flags: tuple[str, ...] = (),
    unread: tuple[str, ...] = (),
    non_clinical: bool = False,
) -> ParsedReply:
    return ParsedReply(
        text="t",
        normalized="t",
        language="en",
        intent=intent,
        symptoms=symptoms,
        temperature_c=temperature,
        flags=flags,
        unread_hints=unread,
        non_clinical=non_clinical,
    )


def mention(code: str, grade: int | None = None, **detail: Any) -> SymptomMention:
    return SymptomMention(code, grade, False, f"{code} words", dict(detail))


def negated(code: str) -> SymptomMention:
    return SymptomMention(code, None, True, f"no {code}", {})


def rules(*specs: tuple[str, str, dict[str, Any], str]) -> TriageRules:
    return TriageRules("hand", tuple(TriageRule(*spec) for spec in specs))


def fires(when: dict[str, Any], parsed: ParsedReply, reason: str = "r", **kwargs: Any) -> list[str]:
    """The reasons of a single green rule with condition ``when`` (empty: it did not fire)."""
    result = triage(parsed, rules(("x", "green", when, reason)), **kwargs)
    return [] if result.priority == "none" else list(result.reasons)


# -- temperature ------------------------------------------------------------------------------


@pytest.mark.parametrize(("temperature", "fired"), [(38.0, True), (37.9, False), (None, False)])
def test_temperature_at_least_includes_the_threshold(
    temperature: float | None, fired: bool
) -> None:
    reasons = fires(
        {"temperature_at_least": 38.0}, reply(temperature=temperature), "{temperature}>={threshold}"
    )

    assert reasons == (["x: 38.0>=38.0"] if fired else [])


@pytest.mark.parametrize(("temperature", "fired"), [(35.9, True), (36.0, False), (None, False)])
def test_temperature_below_excludes_the_threshold(temperature: float | None, fired: bool) -> None:
    reasons = fires(
        {"temperature_below": 36.0}, reply(temperature=temperature), "{temperature}<{threshold}"
    )

    assert reasons == (["x: 35.9<36.0"] if fired else [])


def test_temperature_missing_only_without_a_reading() -> None:
    assert fires({"temperature_missing": True}, reply()) == ["x: r"]
    assert fires({"temperature_missing": True}, reply(temperature=36.5)) == []


# -- symptoms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "grade", "fired"),
    [
        ({"code": "*"}, None, True),
        ({"code": "nausea"}, None, False),
        ({"code": ["nausea", "cough"]}, None, True),
        ({"code": "cough", "min_grade": 2}, 2, True),
        ({"code": "cough", "min_grade": 2}, 1, False),
        ({"code": "cough", "min_grade": 0}, None, False),
        ({"code": "cough", "max_grade": 2}, 2, True),
        ({"code": "cough", "max_grade": 2}, 3, False),
        ({"code": "cough", "max_grade": 5}, None, False),
        ({"code": "cough", "ungraded": True}, None, True),
        ({"code": "cough", "ungraded": True}, 1, False),
        ({"code": "cough", "ungraded": False}, 1, True),
        ({"code": "cough", "ungraded": False}, None, False),
    ],
)
def test_symptom_code_and_grade(spec: dict[str, Any], grade: int | None, fired: bool) -> None:
    assert bool(fires({"symptom": spec}, reply(mention("cough", grade)))) is fired


@pytest.mark.parametrize(
    ("level", "wanted", "fired"),
    [("severe", "severe", True), ("mild", "severe", False), ("mild", ["mild", "severe"], True)],
)
def test_symptom_level(level: str, wanted: Any, fired: bool) -> None:
    parsed = reply(mention("pain", level=level))

    assert bool(fires({"symptom": {"code": "pain", "level": wanted}}, parsed)) is fired


def test_a_symptom_without_a_level_never_matches_a_level() -> None:
    assert fires({"symptom": {"code": "pain", "level": "severe"}}, reply(mention("pain"))) == []


@pytest.mark.parametrize(
    ("previous", "new"),
    [
        (None, True),  # no history: everything is new
        ({}, True),
        ({"cough": 0}, True),
        ({"cough": 1}, False),
        ({"cough": True}, True),  # a boolean is not a grade
        ({"cough": "2"}, True),  # nor is a string
        ({"fever": 2}, True),
    ],
)
def test_a_symptom_is_new_unless_it_was_graded_before(previous: Any, new: bool) -> None:
    parsed = reply(mention("cough", 1))

    assert (
        bool(fires({"symptom": {"code": "cough", "new": True}}, parsed, previous_grades=previous))
        is new
    )
    assert (
        bool(fires({"symptom": {"code": "cough", "new": False}}, parsed, previous_grades=previous))
        is not new
    )


@pytest.mark.parametrize(
    ("grade", "previous", "fired"),
    [
        (3, {"diarrhea": 1}, True),  # exactly 2 points worse
        (2, {"diarrhea": 1}, False),
        (2, {}, True),  # from nothing to 2
        (2, None, False),  # no history: cannot say "worse"
        (None, {"diarrhea": 0}, False),  # no grade: cannot say "worse"
        (3, {"diarrhea": True}, True),  # a boolean counts as grade 0
    ],
)
def test_worse_by(grade: int | None, previous: Any, fired: bool) -> None:
    parsed = reply(mention("diarrhea", grade))
    when = {"symptom": {"code": "diarrhea", "worse_by": 2}}

    assert bool(fires(when, parsed, previous_grades=previous)) is fired


@pytest.mark.parametrize(
    ("detail", "fired"),
    [
        ({"stools": 4, "days": 2}, True),  # both at the minimum
        ({"stools": 4.5, "days": 3}, True),
        ({"stools": 3, "days": 2}, False),
        ({"stools": 4, "days": 1}, False),
        ({"stools": 4}, False),  # one missing
        ({"stools": True, "days": 2}, False),  # a boolean is not a count
        ({"stools": "4", "days": 2}, False),
    ],
)
def test_detail_at_least_needs_every_number(detail: dict[str, Any], fired: bool) -> None:
    when = {"symptom": {"code": "diarrhea", "detail_at_least": {"stools": 4, "days": 2}}}

    assert bool(fires(when, reply(mention("diarrhea", **detail)))) is fired


def test_detail_missing() -> None:
    when = {"symptom": {"code": "diarrhea", "detail_missing": "stools"}}

    assert fires(when, reply(mention("diarrhea"))) == ["x: r"]
    assert fires(when, reply(mention("diarrhea", stools=0))) == []


def test_each_matching_mention_fires_once_with_its_own_facts() -> None:
    parsed = reply(
        mention("cough", 1), mention("pain", None, level="mild", site="chest", sides=["l"])
    )
    reason = "{code}/{grade}/{level}/{evidence}/{previous}/{temperature}/{site}/{sides}"

    reasons = fires({"symptom": {"code": "*"}}, parsed, reason)

    assert reasons == [
        "x: cough/1/unspecified/cough words/?/None/?/?",
        "x: pain/ungraded/mild/pain words/?/None/chest/?",
    ]


def test_the_facts_name_the_previous_grade_and_the_temperature() -> None:
    parsed = reply(mention("cough", 2), temperature=37.2)

    reasons = fires(
        {"symptom": {"code": "cough"}},
        parsed,
        "{previous}/{temperature}",
        previous_grades={"cough": 1},
    )

    assert reasons == ["x: 1/37.2"]


def test_long_evidence_is_shortened_and_spaces_collapsed() -> None:
    words = "  ".join(["word"] * 15)  # 15 words, 2 spaces apart: 88 characters
    parsed = reply(SymptomMention("cough", 1, False, f"\n{words}\t", {}))
    short = reply(SymptomMention("cough", 1, False, "a  b\n c", {}))
    exactly_60 = "x" * 60

    (long_reason,) = fires({"symptom": {"code": "cough"}}, parsed, "{evidence}")
    assert long_reason == "x: " + ("word " * 11) + "wo..."  # 57 characters, then "..."
    assert fires({"symptom": {"code": "cough"}}, short, "{evidence}") == ["x: a b c"]
    parsed_60 = reply(SymptomMention("cough", 1, False, exactly_60, {}))
    assert fires({"symptom": {"code": "cough"}}, parsed_60, "{evidence}") == [f"x: {exactly_60}"]


# -- negated symptoms ---------------------------------------------------------------------------


def test_a_negated_symptom_fires_unless_also_present() -> None:
    when = {"negated_symptom": "nausea"}

    assert fires(when, reply(negated("nausea")), "{code}") == ["x: nausea"]
    assert fires(when, reply(negated("cough"))) == []
    assert fires(when, reply(negated("nausea"), mention("nausea", 1))) == []
    assert fires({"negated_symptom": "*"}, reply(negated("cough"), negated("pain")), "{code}") == [
        "x: cough",
        "x: pain",
    ]


def test_no_fever_is_not_read_when_a_temperature_was_given() -> None:
    when = {"negated_symptom": "fever"}

    assert fires(when, reply(negated("fever"))) == ["x: r"]
    assert fires(when, reply(negated("fever"), temperature=36.8)) == []


# -- treatment context --------------------------------------------------------------------------

CONTEXT_REASON = "{phase}/{chemo}/{days_since_infusion}"


@pytest.mark.parametrize(
    ("spec", "context", "fired"),
    [
        ({"phase": "induction"}, TriageContext(phase="induction"), True),
        ({"phase": ["induction", "salvage"]}, TriageContext(phase="salvage"), True),
        ({"phase": "induction"}, TriageContext(phase="maintenance"), False),
        ({"phase": "induction"}, TriageContext(), False),
        ({"phase": "induction", "when_unknown": True}, TriageContext(), True),
        ({"phase": "induction", "when_unknown": True}, TriageContext(phase="follow_up"), False),
        ({"chemo": "irinotecan"}, TriageContext(chemo="irinotecan"), True),
        ({"chemo": "irinotecan"}, TriageContext(chemo="paclitaxel"), False),
        ({"pd1": ["sintilimab"]}, TriageContext(pd1="sintilimab"), True),
        ({"pd1": "sintilimab"}, TriageContext(), False),
        ({"days_since_infusion_at_most": 7}, TriageContext(days_since_infusion=7), True),
        ({"days_since_infusion_at_most": 7}, TriageContext(days_since_infusion=8), False),
        ({"days_since_infusion_at_most": 7}, TriageContext(), False),
        ({"days_since_infusion_at_most": 7, "when_unknown": True}, TriageContext(), True),
        ({"days_since_infusion_at_least": 7}, TriageContext(days_since_infusion=7), True),
        ({"days_since_infusion_at_least": 7}, TriageContext(days_since_infusion=6), False),
        ({"days_since_infusion_at_least": 7}, TriageContext(), False),
        ({"days_since_infusion_at_least": 7, "when_unknown": True}, TriageContext(), True),
        (
            {"chemo": "irinotecan", "days_since_infusion_at_most": 21},
            TriageContext(chemo="irinotecan", days_since_infusion=22),
            False,
        ),
    ],
)
def test_context_conditions(spec: dict[str, Any], context: TriageContext, fired: bool) -> None:
    assert bool(fires({"context": spec}, reply(), context=context)) is fired


def test_context_facts_name_the_unknowns() -> None:
    when = {"context": {"phase": "induction", "when_unknown": True}}

    assert fires(when, reply(), CONTEXT_REASON) == ["x: unknown phase/unknown chemotherapy/?"]
    known = TriageContext(chemo="paclitaxel", phase="induction", days_since_infusion=0)
    assert fires(when, reply(), CONTEXT_REASON, context=known) == ["x: induction/paclitaxel/0"]


# -- flags, intents, all / any ------------------------------------------------------------------


def test_flag_and_intent() -> None:
    assert fires({"flag": "bleeding"}, reply(flags=("bleeding",)), "{flag}") == ["x: bleeding"]
    assert fires({"flag": "bleeding"}, reply(flags=("other",))) == []
    assert fires({"intent": "opt_out"}, reply(intent="opt_out"), "{intent}") == ["x: opt_out"]
    assert fires({"intent": ["confirm", "opt_out"]}, reply(intent="confirm")) == ["x: r"]
    assert fires({"intent": ["confirm", "opt_out"]}, reply(intent="opt_in")) == []


def test_all_needs_every_condition_and_the_first_facts_win() -> None:
    parsed = reply(mention("cough", 2), temperature=38.5)
    when = {"all": [{"symptom": {"code": "cough"}}, {"temperature_at_least": 38.0}]}

    assert fires(when, parsed, "{code} {grade} {threshold} {temperature}") == [
        "x: cough 2 38.0 38.5"
    ]
    both_facts = {"all": [{"temperature_at_least": 38.0}, {"temperature_at_least": 37.0}]}
    assert fires(both_facts, parsed, "{threshold}") == ["x: 38.0"]
    assert fires(when, reply(mention("cough", 2), temperature=37.0)) == []
    assert fires(when, reply(temperature=38.5)) == []


def test_any_fires_for_each_condition_that_holds() -> None:
    parsed = reply(mention("cough", 2), temperature=38.5)
    when = {"any": [{"temperature_below": 36.0}, {"symptom": {"code": "cough"}}, {"flag": "z"}]}

    assert fires(when, parsed, "{code}") == ["x: cough"]
    assert fires(when, reply()) == []


# -- the result: priority, shown reasons, red flags ---------------------------------------------


def test_nothing_fired_means_no_priority() -> None:
    result = triage(reply(intent="confirm"), rules(("x", "red", {"flag": "z"}, "r")))

    assert result == TriageResult("none", (NO_CONTENT_REASON,), ())
    assert result.rank == 0


def test_red_shows_red_then_amber_reasons_and_hides_green_ones() -> None:
    rule_set = rules(
        ("g", "green", {"symptom": {"code": "*"}}, "green {code}"),
        ("a", "amber", {"symptom": {"code": "*"}}, "amber {code}"),
        ("r1", "red", {"symptom": {"code": "cough"}}, "red"),
        ("r2", "red", {"temperature_at_least": 39.0}, "hot"),
    )
    parsed = reply(mention("cough", 1), mention("pain", 1), temperature=39.5)

    result = triage(parsed, rule_set)

    assert result == TriageResult(
        "red",
        ("r1: red", "r2: hot", "a: amber cough", "a: amber pain"),
        ("r1", "r2"),
    )
    assert result.rank == 3


def test_a_green_result_shows_its_green_reasons_once() -> None:
    rule_set = rules(("g", "green", {"symptom": {"code": "*"}}, "seen"))

    result = triage(reply(mention("cough", 1), mention("pain", 1)), rule_set)

    assert result == TriageResult("green", ("g: seen",), ())
    assert result.rank == 1


def test_a_red_rule_firing_twice_is_one_red_flag() -> None:
    rule_set = rules(("r", "red", {"symptom": {"code": "*"}}, "{code}"))

    result = triage(reply(mention("cough", 1), mention("pain", 1)), rule_set)

    assert result.red_flags == ("r",)
    assert result.reasons == ("r: cough", "r: pain")


# -- the safety net ---------------------------------------------------------------------------


def test_the_safety_net_lists_at_most_five_unread_words() -> None:
    parsed = reply(unread=("a", "b", "c", "d", "e", "f"))

    assert safety_net(parsed) == (
        "safety_net: clinical words not understood (a, b, c, d, e): a person must read it"
    )
    result = triage(parsed, rules(("g", "green", {"flag": "z"}, "r")))
    assert result.priority == "amber"
    assert result.reasons == (safety_net(parsed),)
    assert result.red_flags == ()


def test_the_safety_net_for_an_unknown_message() -> None:
    unknown = reply(intent="unknown")

    assert safety_net(unknown) == (
        "safety_net: message not understood and not clearly non-clinical"
    )
    assert safety_net(unknown, TriageContext()) == safety_net(unknown)
    assert safety_net(reply(intent="unknown", non_clinical=True)) is None
    assert safety_net(reply(intent="symptom_report")) is None  # nothing unread
    assert safety_net(reply(intent="confirm", unread=("pain",))) is None
    assert safety_net(unknown, TriageContext(enrolled=False)) is None


def test_the_safety_net_does_not_lower_or_duplicate_an_amber_result() -> None:
    parsed = reply(mention("cough", 1), unread=("blood",))
    amber = rules(("a", "amber", {"symptom": {"code": "cough"}}, "cough"))
    green = rules(("g", "green", {"symptom": {"code": "cough"}}, "cough"))

    assert triage(parsed, amber).reasons == ("a: cough",)
    assert triage(parsed, green).reasons == (
        "safety_net: clinical words not understood (blood): a person must read it",
    )


# -- loading rules files --------------------------------------------------------------------------


def write_rules(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules:\n" + body, encoding="utf-8")
    return path


RULE_A = "  - id: a\n    priority: amber\n    when: {flag: x}\n    reason: 'flag {flag}'\n"


def test_a_rules_file_is_loaded_in_order(tmp_path: Path) -> None:
    path = write_rules(tmp_path, RULE_A + RULE_A.replace("id: a", "id: b").replace("amber", "red"))

    loaded = load_triage_rules(str(path))

    assert loaded == TriageRules(
        str(path),
        (
            TriageRule("a", "amber", {"flag": "x"}, "flag {flag}"),
            TriageRule("b", "red", {"flag": "x"}, "flag {flag}"),
        ),
    )


def test_a_duplicate_rule_id_is_refused_by_index(tmp_path: Path) -> None:
    path = write_rules(tmp_path, RULE_A + RULE_A)

    with pytest.raises(TriageRulesError) as error:
        load_triage_rules(path)

    assert str(error.value) == f"{path}: rules[1].id: duplicate rule id 'a'"


def test_a_bad_placeholder_is_refused_by_index(tmp_path: Path) -> None:
    path = write_rules(tmp_path, RULE_A + RULE_A.replace("id: a", "id: b").replace("{flag}", "{0}"))

    with pytest.raises(TriageRulesError) as error:
        load_triage_rules(path)

    assert str(error.value).startswith(
        f"{path}: rules[1].reason: bad placeholder in 'flag {{0}}': "
    )


def test_a_schema_error_names_the_nested_field(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path, RULE_A.replace("{flag: x}", "{all: [{flag: x}, {symptom: {code: 5}}]}")
    )

    with pytest.raises(TriageRulesError) as error:
        load_triage_rules(path)

    assert str(error.value).startswith(f"{path}: rules[0].when.all[1].symptom.code: ")


def test_unknown_placeholders_read_as_a_question_mark(tmp_path: Path) -> None:
    path = write_rules(tmp_path, RULE_A.replace("flag {flag}", "{flag} {nothing}"))

    result = triage(reply(flags=("x",)), load_triage_rules(path))

    assert result.reasons == ("a: x ?",)
