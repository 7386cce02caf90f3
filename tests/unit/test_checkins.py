"""Check-in questionnaire: data, items by arm and phase, branching, compact replies, grading, triage."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from app.domain import checkins as ck
from app.domain.protocol import ChoiceError, Protocol, default_protocol_path, load_protocol
from app.domain.replies import SYMPTOM_CODES, SymptomMention, parse_reply
from app.domain.triage import TriageContext, TriageRule, TriageRules, triage
from app.sms.segments import count_segments

ZH_SIGNATURE = "【江苏省肿瘤医院】"
IRINOTECAN = {"pd1": "sintilimab", "chemo": "irinotecan"}
CAMRELIZUMAB = {"pd1": "camrelizumab", "chemo": "docetaxel"}
PACLITAXEL = {"pd1": "sintilimab", "chemo": "paclitaxel"}


@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return load_protocol(default_protocol_path())


@pytest.fixture(scope="module")
def questionnaire(protocol: Protocol) -> ck.Questionnaire:
    return ck.load_checkins(protocol)


@pytest.fixture(scope="module")
def every_item(questionnaire: ck.Questionnaire) -> list[ck.CheckinItem]:
    return list(questionnaire.items)


def item(questionnaire: ck.Questionnaire, code: str) -> ck.CheckinItem:
    found = questionnaire.item(code)
    assert found is not None, code
    return found


def codes(items: list[ck.CheckinItem]) -> list[str]:
    return [i.code for i in items]


# --------------------------------------------------------------------------- the data


def test_trial_questionnaire_has_the_regimen_items(questionnaire: ck.Questionnaire) -> None:
    symptoms = {i.symptom for i in questionnaire.items}
    assert {
        "diarrhea",
        "dysphagia",
        "nausea",
        "vomiting",
        "anorexia",
        "fatigue",
        "dyspnea",
        "cough",
        "rash",
        "pruritus",
        "mucositis",
        "numbness",
        "fever",
        "hematemesis",
        "melena",
        "chest_pain",
        "skin_nodules",
    } <= symptoms
    assert symptoms <= set(SYMPTOM_CODES)
    assert "PRO-CTCAE" in questionnaire.label_en and "PRO-CTCAE" in questionnaire.label_zh
    assert "PRO-CTCAE" in questionnaire.intro("en") and "PRO-CTCAE" in questionnaire.intro("zh")


def test_pro_ctcae_items_carry_their_nci_numbers_and_attributes(
    questionnaire: ck.Questionnaire,
) -> None:
    expected = {
        "D": (16, ("frequency",)),
        "S": (2, ("severity",)),
        "N": (9, ("frequency", "severity")),
        "V": (10, ("frequency", "severity")),
        "A": (8, ("severity", "interference")),
        "E": (53, ("severity", "interference")),
        "B": (19, ("severity", "interference")),
        "C": (20, ("severity", "interference")),
        "R": (24, ("presence",)),
        "I": (28, ("severity",)),
        "M": (3, ("severity", "interference")),
        "T": (39, ("severity", "interference")),
    }
    for code, (number, attributes) in expected.items():
        found = item(questionnaire, code)
        assert found.kind == "pro_ctcae"
        assert (found.pro_ctcae_item, found.attributes) == (number, attributes), code
        assert found.ctcae_term


def test_every_question_has_numbered_answers_in_both_languages(
    questionnaire: ck.Questionnaire,
) -> None:
    for found in questionnaire.items:
        for question in found.questions:
            size = ck.SCALE_SIZES[question.attribute]
            assert len(question.labels("en")) == len(question.labels("zh")) == size
            assert question.text("en") and question.text("zh") != question.text("en")
            assert question.options("zh")[0][0] == 0


def test_each_question_fits_one_sms(questionnaire: ck.Questionnaire) -> None:
    for found in questionnaire.items:
        for question in found.questions:
            english = count_segments(question.sms_text("en"))
            chinese = count_segments(ZH_SIGNATURE + question.sms_text("zh"))
            assert english.encoding == "GSM-7", question.sms_text("en")
            assert english.segments == 1, question.sms_text("en")
            assert chinese.segments == 1, question.sms_text("zh")


def test_sms_text_numbers_the_answers(questionnaire: ck.Questionnaire) -> None:
    diarrhoea = item(questionnaire, "D").questions[0]
    assert diarrhoea.sms_text("en").endswith(
        "Reply 0 never, 1 rarely, 2 occasionally, 3 frequently, 4 almost constantly"
    )
    assert diarrhoea.sms_text("zh").endswith("回复0从不，1很少，2偶尔，3经常，4几乎一直")


def test_compact_help_lists_every_code(every_item: list[ck.CheckinItem]) -> None:
    text = ck.compact_help(every_item, "en")
    for found in every_item:
        for question in found.questions:
            assert f"{question.code} " in text
    assert "NS Nausea (severity)" in text
    assert "KB Skin nodule bleeding or infected" in text
    assert "NS 恶心（程度）" in ck.compact_help(every_item, "zh")


# --------------------------------------------------------------------------- items by arm/phase


def test_irinotecan_induction_gets_diarrhoea_guidance(protocol: Protocol) -> None:
    items = ck.items_for(protocol, IRINOTECAN, "induction")
    diarrhoea = next(i for i in items if i.symptom == "diarrhea")
    assert [g.code for g in diarrhoea.guidance] == ["loperamide_reminder"]
    assert "diarrhoea tablets" in diarrhoea.guidance[0].text("en")
    assert "止泻药" in diarrhoea.guidance[0].text("zh")
    assert "loperamide" not in diarrhoea.guidance[0].text("en").lower()  # no drug names in SMS


@pytest.mark.parametrize(
    ("choices", "phase"),
    [(PACLITAXEL, "induction"), (CAMRELIZUMAB, "induction"), (IRINOTECAN, "maintenance")],
)
def test_no_diarrhoea_guidance_without_irinotecan_in_the_phase(
    protocol: Protocol, choices: dict[str, str], phase: str
) -> None:
    items = ck.items_for(protocol, choices, phase)
    diarrhoea = next(i for i in items if i.symptom == "diarrhea")
    assert diarrhoea.guidance == ()


@pytest.mark.parametrize("phase", ["induction", "maintenance", "salvage"])
def test_camrelizumab_gets_skin_nodules_in_every_phase(protocol: Protocol, phase: str) -> None:
    items = ck.items_for(protocol, CAMRELIZUMAB, phase)
    nodules = next(i for i in items if i.symptom == "skin_nodules")
    assert codes(items)[-1] == "K"
    assert [q.code for q in nodules.questions] == ["K", "KB"]
    assert [g.code for g in nodules.guidance] == ["rccep_reminder"]
    assert "skin_nodules" not in {i.symptom for i in ck.items_for(protocol, IRINOTECAN, phase)}


def test_radiotherapy_phase_gets_swallowing_and_chest_pain(protocol: Protocol) -> None:
    salvage = codes(ck.items_for(protocol, IRINOTECAN, "salvage"))
    induction = codes(ck.items_for(protocol, IRINOTECAN, "induction"))
    assert {"S", "CP"} <= set(salvage)
    assert "CP" not in induction
    assert "S" in induction  # dysphagia is this disease's cardinal symptom: always asked


def test_numbness_for_taxane_arms_and_salvage_paclitaxel(protocol: Protocol) -> None:
    assert "T" in codes(ck.items_for(protocol, PACLITAXEL, "maintenance"))
    assert "T" in codes(ck.items_for(protocol, CAMRELIZUMAB, "induction"))
    assert "T" not in codes(ck.items_for(protocol, IRINOTECAN, "induction"))
    assert "T" in codes(ck.items_for(protocol, IRINOTECAN, "salvage"))


def test_urgent_custom_items_come_first(protocol: Protocol) -> None:
    assert codes(ck.items_for(protocol, IRINOTECAN, "salvage"))[:5] == ["F", "HB", "BS", "CP", "S"]


def test_items_for_filters_kinds_and_accepts_a_bare_section(protocol: Protocol) -> None:
    custom = ck.items_for(protocol, CAMRELIZUMAB, "salvage", kinds=["custom"])
    assert codes(custom) == ["F", "HB", "BS", "CP", "K"]
    from_section = ck.items_for(protocol.raw["checkins"], CAMRELIZUMAB, "salvage")
    assert codes(from_section) == codes(ck.items_for(protocol, CAMRELIZUMAB, "salvage"))


def test_items_for_refuses_unknown_phase_choice_and_kind(protocol: Protocol) -> None:
    with pytest.raises(ValueError, match="unknown phase 'salvge'"):
        ck.items_for(protocol, IRINOTECAN, "salvge")
    with pytest.raises(ChoiceError, match="unknown chemo 'cisplatin'"):
        ck.items_for(protocol, {"pd1": "sintilimab", "chemo": "cisplatin"}, "induction")
    with pytest.raises(ValueError, match="unknown item kind"):
        ck.items_for(protocol, IRINOTECAN, "induction", kinds=["proctcae"])


# --------------------------------------------------------------------------- branching


def walk(items: list[ck.CheckinItem], policy: dict[str, ck.Answer]) -> list[str]:
    """Ask questions until done, answering from ``policy`` (default 1); the codes asked."""
    answers: dict[str, ck.Answer] = {}
    asked = []
    while (question := ck.next_question(items, answers)) is not None:
        asked.append(question.code)
        answers[question.code] = policy.get(question.code, 1)
        assert len(asked) < 100
    assert ck.is_complete(items, answers)
    return asked


def test_severity_only_if_frequency_above_zero(questionnaire: ck.Questionnaire) -> None:
    nausea = [item(questionnaire, "N")]
    assert walk(nausea, {"N": 0}) == ["N"]
    assert walk(nausea, {"N": 3}) == ["N", "NS"]


def test_interference_only_if_severity_above_zero(questionnaire: ck.Questionnaire) -> None:
    fatigue = [item(questionnaire, "E")]
    assert walk(fatigue, {"E": 0}) == ["E"]
    assert walk(fatigue, {"E": 2, "EI": 0}) == ["E", "EI"]


def test_custom_follow_up_only_after_yes(questionnaire: ck.Questionnaire) -> None:
    nodules = [item(questionnaire, "K")]
    assert walk(nodules, {"K": 0}) == ["K"]
    assert walk(nodules, {"K": 1, "KB": 0}) == ["K", "KB"]


def test_whole_check_in_branches_item_by_item(protocol: Protocol) -> None:
    items = ck.items_for(protocol, CAMRELIZUMAB, "salvage")
    all_zero = {q.code: 0 for i in items for q in i.questions}
    assert walk(items, all_zero) == codes(items)
    everything = walk(items, {"F": 37.0})
    assert everything == [q.code for i in items for q in i.questions]


def test_next_question_after_a_compact_reply_asks_only_follow_ups(
    protocol: Protocol,
) -> None:
    items = ck.items_for(protocol, PACLITAXEL, "induction")
    answers = {q.code: 0 for i in items for q in i.questions[:1]}
    answers.update(N=2, E=1)
    assert ck.next_question(items, answers).code == "NS"
    answers["NS"] = 1
    assert ck.next_question(items, answers).code == "EI"
    answers["EI"] = 0
    assert ck.next_question(items, answers) is None


def test_next_question_accepts_lower_case_codes(questionnaire: ck.Questionnaire) -> None:
    assert ck.next_question([item(questionnaire, "N")], {"n": 2}).code == "NS"


# --------------------------------------------------------------------------- composite grade

# Basch et al., Clin Trials 2021, as in the clinical README section 5 (every published cell).
PUBLISHED_FREQUENCY_ONLY = {0: 0, 1: 1, 2: 1, 3: 2, 4: 3}
PUBLISHED_SEVERITY_ONLY = {0: 0, 1: 1, 2: 2, 3: 3, 4: 3}
PUBLISHED_FREQUENCY_X_SEVERITY = """
F1: 1 1 1 2 2
F2: 1 1 2 2 2
F3: 1 1 2 3 3
F4: 1 1 2 3 3
"""
PUBLISHED_SEVERITY_X_INTERFERENCE = """
S1: 1 1 1 2 2
S2: 1 1 2 2 3
S3: 1 2 2 3 3
S4: 2 2 2 3 3
"""


def published_cells(table: str) -> list[tuple[int, int, int]]:
    """(row score, column score, grade) for every cell of a table written like the README."""
    cells = []
    for line in table.strip().splitlines():
        head, values = line.split(":")
        for column, grade in enumerate(values.split()):
            cells.append((int(head[1:]), column, int(grade)))
    return cells


def test_published_tables_have_every_cell() -> None:
    assert len(published_cells(PUBLISHED_FREQUENCY_X_SEVERITY)) == 20
    assert len(published_cells(PUBLISHED_SEVERITY_X_INTERFERENCE)) == 20


@pytest.mark.parametrize(("score", "grade"), sorted(PUBLISHED_FREQUENCY_ONLY.items()))
def test_frequency_only_item(questionnaire: ck.Questionnaire, score: int, grade: int) -> None:
    assert ck.composite_grade(item(questionnaire, "D"), {"frequency": score}) == grade


@pytest.mark.parametrize(("score", "grade"), sorted(PUBLISHED_SEVERITY_ONLY.items()))
def test_severity_only_items(questionnaire: ck.Questionnaire, score: int, grade: int) -> None:
    assert ck.composite_grade(item(questionnaire, "S"), {"severity": score}) == grade
    assert ck.composite_grade(item(questionnaire, "I"), {"severity": score}) == grade


@pytest.mark.parametrize(
    ("frequency", "severity", "grade"), published_cells(PUBLISHED_FREQUENCY_X_SEVERITY)
)
def test_frequency_x_severity_items(
    questionnaire: ck.Questionnaire, frequency: int, severity: int, grade: int
) -> None:
    for code in ("N", "V"):
        scores = {"frequency": frequency, "severity": severity}
        assert ck.composite_grade(item(questionnaire, code), scores) == grade


@pytest.mark.parametrize(
    ("severity", "interference", "grade"), published_cells(PUBLISHED_SEVERITY_X_INTERFERENCE)
)
def test_severity_x_interference_items(
    questionnaire: ck.Questionnaire, severity: int, interference: int, grade: int
) -> None:
    for code in ("A", "M", "E", "B", "C", "T"):
        scores = {"severity": severity, "interference": interference}
        assert ck.composite_grade(item(questionnaire, code), scores) == grade


@pytest.mark.parametrize("second", [None, 0, 1, 2, 3, 4])
def test_first_attribute_zero_gives_zero(questionnaire: ck.Questionnaire, second) -> None:
    for code, first, other in (("N", "frequency", "severity"), ("E", "severity", "interference")):
        scores = {first: 0} if second is None else {first: 0, other: second}
        assert ck.composite_grade(item(questionnaire, code), scores) == 0


def test_presence_item_yes_is_grade_1(questionnaire: ck.Questionnaire) -> None:
    rash = item(questionnaire, "R")
    assert [ck.composite_grade(rash, {"presence": s}) for s in (0, 1)] == [0, 1]


def test_unanswered_follow_up_uses_the_single_attribute_table(
    questionnaire: ck.Questionnaire,
) -> None:
    assert ck.composite_grade(item(questionnaire, "N"), {"frequency": 3}) == 2
    assert ck.composite_grade(item(questionnaire, "E"), {"severity": 4}) == 3


@pytest.mark.parametrize(
    ("code", "scores", "message"),
    [
        ("N", {"frequency": 5, "severity": 1}, "frequency must be an integer 0-4"),
        ("N", {"frequency": 2.5}, "frequency must be an integer 0-4"),
        ("N", {"frequency": True}, "frequency must be an integer 0-4"),
        ("N", {"severity": 2}, "frequency is needed"),
        ("N", {"frequency": 1, "interference": 2}, "unknown attribute"),
        ("R", {"presence": 2}, "presence must be an integer 0-1"),
        ("HB", {"yes_no": 1}, "custom item has no PRO-CTCAE composite grade"),
    ],
)
def test_composite_grade_refuses_bad_scores(
    questionnaire: ck.Questionnaire, code: str, scores: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ck.composite_grade(item(questionnaire, code), scores)


# --------------------------------------------------------------------------- compact replies


@pytest.mark.parametrize(
    "text",
    [
        "D2 S1 F0",
        "d2s1f0",
        "D2S1F0",
        "Ｄ２ Ｓ１ Ｆ０",
        "ｄ２，ｓ１，ｆ０",
        "D:2, S=1; F 0",
        "D2、S1、F0。",
        "  d 2 / s 1 / f 0  ",
        "D-2 S-1 F-0",
    ],
)
def test_compact_reply_forms(every_item: list[ck.CheckinItem], text: str) -> None:
    reply = ck.parse_compact(text, every_item)
    assert reply.ok, reply.problems
    assert reply.answers == {"F": 0, "S": 1, "D": 2}


@pytest.mark.parametrize(
    ("text", "celsius"),
    [("F37.2", 37.2), ("f38", 38.0), ("F 38.5℃", 38.5), ("F38.5°C", 38.5), ("F39度", 39.0)],
)
def test_compact_temperatures(every_item: list[ck.CheckinItem], text: str, celsius: float) -> None:
    reply = ck.parse_compact(text, every_item)
    assert reply.ok, reply.problems
    assert reply.answers == {"F": celsius}
    assert isinstance(reply.answers["F"], float)


def test_compact_temperature_with_trailing_c_before_another_code(
    every_item: list[ck.CheckinItem],
) -> None:
    reply = ck.parse_compact("F38.5C C2", every_item)
    assert reply.ok, reply.problems
    assert reply.answers == {"F": 38.5, "C": 2}


def test_compact_two_letter_codes_and_follow_ups(every_item: list[ck.CheckinItem]) -> None:
    reply = ck.parse_compact("N2 NS3 HB0 BS0 E1 EI1 KB0", every_item)
    assert reply.ok, reply.problems
    assert reply.answers == {"HB": 0, "BS": 0, "N": 2, "NS": 3, "E": 1, "EI": 1, "KB": 0}


def problem_kinds(reply: ck.CompactReply) -> list[tuple[str, str]]:
    return [(p.kind, p.code or p.value) for p in reply.problems]


def test_compact_unknown_code_is_reported_not_guessed(every_item: list[ck.CheckinItem]) -> None:
    reply = ck.parse_compact("D2 X3 DS1", every_item)
    assert reply.answers == {"D": 2}
    assert problem_kinds(reply) == [("unknown_code", "X"), ("unknown_code", "DS")]
    assert "unknown code 'X'" in reply.problems[0].message
    assert not reply.ok


def test_code_of_an_item_not_asked_of_this_patient_is_unknown(protocol: Protocol) -> None:
    items = ck.items_for(protocol, IRINOTECAN, "induction")
    reply = ck.parse_compact("K1 D2", items)
    assert reply.answers == {"D": 2}
    assert problem_kinds(reply) == [("unknown_code", "K")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("D5", "D=5 is out of range: answers are 0 to 4"),
        ("D10", "D=10 is out of range"),
        ("D2.5", "D=2.5 is not a whole number from 0 to 4"),
        ("R2", "R=2 is out of range: answers are 0 to 1"),
        ("HB3", "HB=3 is out of range"),
        ("F25", "F=25 is out of range: reply 0 (no fever), 1 (feel feverish) or a temperature"),
        ("F100.4", "F=100.4 is out of range"),
    ],
)
def test_compact_out_of_range_values(
    every_item: list[ck.CheckinItem], text: str, message: str
) -> None:
    reply = ck.parse_compact(f"S1 {text}", every_item)
    assert reply.answers == {"S": 1}
    assert [p.kind for p in reply.problems] == ["out_of_range"]
    assert message in reply.problems[0].message


def test_compact_decimal_comma_temperature_is_ambiguous(every_item: list[ck.CheckinItem]) -> None:
    reply = ck.parse_compact("F38,5 D1", every_item)
    assert reply.answers == {"D": 1}
    assert problem_kinds(reply) == [("ambiguous", "F")]
    assert "F38.5" in reply.problems[0].message


def test_compact_conflicting_repeat_keeps_neither(every_item: list[ck.CheckinItem]) -> None:
    reply = ck.parse_compact("D2 S1 D3", every_item)
    assert reply.answers == {"S": 1}
    assert problem_kinds(reply) == [("conflicting", "D")]
    same = ck.parse_compact("D2 d2", every_item)
    assert same.ok and same.answers == {"D": 2}


def test_compact_follow_up_contradicting_a_zero(every_item: list[ck.CheckinItem]) -> None:
    reply = ck.parse_compact("N0 NS2", every_item)
    assert reply.answers == {"N": 0}
    assert problem_kinds(reply) == [("not_applicable", "NS")]
    assert "contradicts N=0" in reply.problems[0].message


def test_compact_follow_up_alone_is_kept_and_first_question_asked(
    every_item: list[ck.CheckinItem],
) -> None:
    reply = ck.parse_compact("NS2", every_item)
    assert reply.ok and reply.answers == {"NS": 2}
    nausea = [i for i in every_item if i.code == "N"]
    assert ck.next_question(nausea, reply.answers).code == "N"


def test_compact_extra_text_is_reported_but_answers_kept(
    every_item: list[ck.CheckinItem],
) -> None:
    reply = ck.parse_compact("D2 S1 谢谢医生", every_item)
    assert reply.answers == {"S": 1, "D": 2}
    assert problem_kinds(reply) == [("unreadable", "谢谢医生")]
    assert reply.recognised and not reply.ok


def test_compact_unit_after_a_score_is_reported(every_item: list[ck.CheckinItem]) -> None:
    reply = ck.parse_compact("D2度", every_item)
    assert reply.answers == {"D": 2}
    assert [p.kind for p in reply.problems] == ["unreadable"]


@pytest.mark.parametrize(
    "text", ["", "   ", "I feel fine", "拉肚子三次", "2", "I vomited 3 times", "had 2 stools"]
)
def test_text_without_codes_is_not_recognised(every_item: list[ck.CheckinItem], text) -> None:
    reply = ck.parse_compact(text, every_item)
    assert not reply.recognised and not reply.ok
    assert reply.answers == {}


def test_compact_from_parsed_reply_codes(every_item: list[ck.CheckinItem]) -> None:
    parsed = parse_reply("D2 S1 F0")
    reply = ck.parse_compact(parsed.codes, every_item)
    assert reply.ok and reply.answers == {"F": 0, "S": 1, "D": 2}
    bad = ck.parse_compact({"D": 7, "Q": 1}, every_item)
    assert problem_kinds(bad) == [("out_of_range", "D"), ("unknown_code", "Q")]


# --------------------------------------------------------------------------- grading answers


def test_grade_answers_reports_each_item(every_item: list[ck.CheckinItem]) -> None:
    graded = ck.grade_answers(every_item, {"N": 3, "NS": 3, "D": 0, "F": 37.4, "E": 2})
    by_code = {g.item.code: g for g in graded}
    assert list(by_code) == ["F", "D", "N", "E"]
    nausea = by_code["N"]
    assert (nausea.symptom, nausea.composite_grade, nausea.grade) == ("nausea", 3, 3)
    assert (nausea.present, nausea.complete, nausea.ctcae_term) == (True, True, "Nausea")
    assert nausea.scores == {"N": 3, "NS": 3}
    assert nausea.score("severity") == 3 and nausea.evidence == "check-in N=3 NS=3"
    assert (by_code["D"].composite_grade, by_code["D"].present) == (0, False)
    assert (by_code["F"].temperature_c, by_code["F"].grade, by_code["F"].present) == (
        37.4,
        0,
        False,
    )
    fatigue = by_code["E"]
    assert (fatigue.composite_grade, fatigue.complete) == (2, False)


def test_grade_ignores_a_follow_up_after_zero(every_item: list[ck.CheckinItem]) -> None:
    (nausea,) = ck.grade_answers(every_item, {"N": 0, "NS": 4})
    assert nausea.scores == {"N": 0}
    assert (nausea.composite_grade, nausea.present) == (0, False)


def test_grade_follow_up_without_first_answer_is_present_but_ungraded(
    every_item: list[ck.CheckinItem],
) -> None:
    (nausea,) = ck.grade_answers(every_item, {"NS": 3})
    assert (nausea.present, nausea.grade, nausea.complete) == (True, None, False)


def test_grade_answers_refuses_unknown_codes_and_bad_values(
    every_item: list[ck.CheckinItem],
) -> None:
    with pytest.raises(ck.AnswerError, match="unknown code 'ZZ'") as caught:
        ck.grade_answers(every_item, {"ZZ": 1, "D": 9})
    assert [p.kind for p in caught.value.problems] == ["unknown_code", "out_of_range"]


def test_swallowing_very_severe_means_cannot_swallow_liquids(
    every_item: list[ck.CheckinItem],
) -> None:
    (swallowing,) = ck.grade_answers(every_item, {"S": 4})
    assert (swallowing.composite_grade, swallowing.level) == (3, "cannot_swallow_liquids")
    (milder,) = ck.grade_answers(every_item, {"S": 3})
    assert milder.level is None


def test_custom_yes_no_grades(every_item: list[ck.CheckinItem]) -> None:
    graded = {
        g.item.code: g for g in ck.grade_answers(every_item, {"HB": 1, "K": 1, "KB": 0, "BS": 0})
    }
    assert (graded["HB"].present, graded["HB"].grade, graded["HB"].composite_grade) == (
        True,
        None,
        None,
    )
    assert (graded["K"].grade, graded["K"].complete) == (1, True)
    assert (graded["BS"].present, graded["BS"].grade) == (False, 0)
    (bleeding,) = ck.grade_answers(every_item, {"K": 1, "KB": 1})
    assert (bleeding.present, bleeding.grade) == (True, None)


@pytest.mark.parametrize(
    ("celsius", "grade"), [(37.9, 0), (38.0, 1), (39.0, 1), (39.1, 2), (40.0, 2), (40.1, 3)]
)
def test_temperature_grades_follow_ctcae(celsius: float, grade: int) -> None:
    assert ck.fever_grade(celsius) == grade


def test_grades_by_symptom_feed_previous_grades(every_item: list[ck.CheckinItem]) -> None:
    graded = ck.grade_answers(every_item, {"N": 2, "NS": 2, "D": 0, "HB": 1, "F": 38.2})
    assert ck.grades_by_symptom(graded) == {"nausea": 2, "diarrhea": 0, "fever": 1}


def test_grades_by_symptom_keeps_the_worst_of_several_check_ins(
    every_item: list[ck.CheckinItem],
) -> None:
    monday = ck.grade_answers(every_item, {"N": 3, "NS": 3, "D": 1})  # nausea 3, diarrhoea 1
    thursday = ck.grade_answers(every_item, {"N": 1, "NS": 1, "D": 3})  # nausea 1, diarrhoea 2
    expected = {"nausea": 3, "diarrhea": 2}
    assert ck.grades_by_symptom([*monday, *thursday]) == expected
    assert ck.grades_by_symptom([*thursday, *monday]) == expected


def test_a_no_to_a_custom_item_is_complete_grade_0(every_item: list[ck.CheckinItem]) -> None:
    graded = {g.item.code: g for g in ck.grade_answers(every_item, {"HB": 0, "K": 0})}
    assert (graded["HB"].grade, graded["HB"].present, graded["HB"].complete) == (0, False, True)
    # no follow-up (KB, bleeding) is asked after "no nodules": the item is complete
    assert (graded["K"].grade, graded["K"].present, graded["K"].complete) == (0, False, True)
    assert graded["HB"].complete is True and graded["K"].complete is True


def test_an_answer_level_needs_a_whole_number(questionnaire: ck.Questionnaire) -> None:
    swallowing = item(questionnaire, "S").question("S")
    assert swallowing is not None
    assert swallowing.level(4) == "cannot_swallow_liquids"
    assert swallowing.level(4.0) == "cannot_swallow_liquids"
    assert swallowing.level(4.5) is None
    assert swallowing.level(3) is None


@pytest.mark.parametrize(
    ("answer", "grade", "present"),
    [
        (0, 0, False),  # no thermometer, no fever: absent, grade 0 (counts for worsening)
        (1, None, True),  # feels feverish without a reading: present, graded by a person
        (38.2, 1, True),  # CTCAE fever grade 1: 38.0-39.0 C
    ],
)
def test_temperature_answers_are_complete_on_their_own(
    every_item: list[ck.CheckinItem], answer: ck.Answer, grade: int | None, present: bool
) -> None:
    (fever,) = ck.grade_answers(every_item, {"F": answer})
    assert (fever.grade, fever.present, fever.complete) == (grade, present, True)
    assert fever.complete is True
    expected = {} if grade is None else {"fever": grade}
    assert ck.grades_by_symptom([fever]) == expected


# --------------------------------------------------------------------------- triage


def triage_of(items, answers, previous=None):
    return ck.triage_answers(ck.grade_answers(items, answers), previous_grades=previous)


@pytest.mark.parametrize(
    ("answers", "rule"),
    [
        ({"F": 38.0}, "temperature_high"),
        ({"F": 38}, "temperature_high"),
        ({"F": 1}, "fever_without_reading"),
        ({"HB": 1}, "hematemesis"),
        ({"BS": 1}, "melena"),
        ({"CP": 1}, "chest_pain"),
        ({"S": 4}, "dysphagia_liquids"),
        ({"D": 4}, "diarrhea_severe"),
        ({"B": 3, "BI": 3}, "dyspnea_at_rest"),
        ({"D": 2, "F": 38.4}, "diarrhea_with_fever"),
    ],
)
def test_red_answers_are_red_through_the_triage_rules(
    every_item: list[ck.CheckinItem], answers: dict[str, ck.Answer], rule: str
) -> None:
    result = triage_of(every_item, answers)
    assert result.priority == "red"
    assert rule in result.red_flags


@pytest.mark.parametrize(
    ("answers", "priority"),
    [
        ({"F": 37.5}, "amber"),  # 37.5-37.9 C, phase unknown: read as during chemotherapy
        ({"F": 0, "HB": 0, "BS": 0, "D": 0, "S": 0}, "green"),
        ({"S": 3}, "amber"),
        ({"D": 3}, "amber"),
        ({"V": 1, "VS": 1}, "amber"),
        ({"F": 35.0}, "red"),  # < 35.5 C, phase unknown: read as during chemotherapy
        ({"K": 1, "KB": 1}, "amber"),
        ({"K": 1, "KB": 0}, "green"),
        ({"N": 1, "NS": 1}, "green"),
        ({"NS": 2}, "amber"),
    ],
)
def test_other_answers_get_the_rules_priority(
    every_item: list[ck.CheckinItem], answers: dict[str, ck.Answer], priority: str
) -> None:
    assert triage_of(every_item, answers).priority == priority


def test_check_in_answer_and_free_text_fire_the_same_red_rule(
    every_item: list[ck.CheckinItem],
) -> None:
    free_text = triage(parse_reply("今天吐血了"))
    answered = triage_of(every_item, {"HB": 1})
    assert free_text.red_flags == answered.red_flags == ("hematemesis",)


def test_worsening_by_two_is_at_least_amber(every_item: list[ck.CheckinItem]) -> None:
    answers = {"N": 2, "NS": 2}  # composite grade 2
    assert triage_of(every_item, answers).priority == "green"
    assert triage_of(every_item, answers, {"nausea": 1}).priority == "green"
    worse = triage_of(every_item, answers, {"nausea": 0})
    assert worse.priority == "amber"
    assert any(
        r.startswith("worse_by_2: nausea worse by >= 2 points (grade 0 -> 2)")
        for r in worse.reasons
    )


def test_worsening_uses_the_patients_own_previous_check_in(
    every_item: list[ck.CheckinItem],
) -> None:
    before = ck.grades_by_symptom(ck.grade_answers(every_item, {"E": 1, "EI": 0, "C": 0}))
    now = ck.grade_answers(every_item, {"E": 3, "EI": 3, "C": 1, "CI": 1})
    result = ck.triage_answers(now, previous_grades=before)
    assert result.priority == "amber"
    assert any("fatigue worse by >= 2" in r for r in result.reasons)


def test_parsed_reply_of_answers(every_item: list[ck.CheckinItem]) -> None:
    graded = ck.grade_answers(every_item, {"F": 38.6, "D": 0, "N": 2, "NS": 1})
    parsed = ck.to_parsed_reply(graded, language="zh")
    assert (parsed.intent, parsed.language, parsed.temperature_c) == ("checkin_answer", "zh", 38.6)
    assert parsed.codes == {"D": 0, "N": 2, "NS": 1}
    nausea = parsed.symptom("nausea")
    assert nausea is not None and nausea.grade == 1
    assert nausea.detail["frequency"] == 2 and nausea.detail["severity"] == 1
    assert [m.code for m in parsed.negated_symptoms] == ["diarrhea"]
    assert parsed.symptom("fever").grade == 1


def test_each_answer_reaches_triage_as_one_mention(every_item: list[ck.CheckinItem]) -> None:
    """What the triage rules read of each item, written out (grades: clinical README 4-5)."""
    answers = {"N": 3, "NS": 3, "S": 4, "E": 2, "D": 0, "F": 38.5, "K": 1, "KB": 1}
    parsed = ck.to_parsed_reply(ck.grade_answers(every_item, answers))
    by_code = {m.code: m for m in parsed.symptoms}
    assert list(by_code) == ["fever", "dysphagia", "diarrhea", "nausea", "fatigue", "skin_nodules"]
    # CTCAE fever 38.0-39.0 C is grade 1; a custom item carries no attribute scores
    assert by_code["fever"] == SymptomMention(
        "fever",
        1,
        False,
        "check-in F=38.5",
        {"source": "checkin", "item": "F", "scores": "F=38.5", "temperature_c": 38.5},
    )
    # severity-only 4 -> composite 3, and "very severe" swallowing is the liquids level
    assert by_code["dysphagia"] == SymptomMention(
        "dysphagia",
        3,
        False,
        "check-in S=4",
        {
            "source": "checkin",
            "item": "S",
            "scores": "S=4",
            "severity": 4,
            "composite_grade": 3,
            "level": "cannot_swallow_liquids",
        },
    )
    # frequency 0: absent (negated, no grade), its composite grade 0 kept
    assert by_code["diarrhea"] == SymptomMention(
        "diarrhea",
        None,
        True,
        "check-in D=0",
        {"source": "checkin", "item": "D", "scores": "D=0", "frequency": 0, "composite_grade": 0},
    )
    # frequency 3 x severity 3 -> composite 3 (Basch et al. 2021, row F3)
    assert by_code["nausea"] == SymptomMention(
        "nausea",
        3,
        False,
        "check-in N=3 NS=3",
        {
            "source": "checkin",
            "item": "N",
            "scores": "N=3 NS=3",
            "frequency": 3,
            "severity": 3,
            "composite_grade": 3,
        },
    )
    # interference not answered yet: severity-only table (2 -> 2), marked incomplete
    assert by_code["fatigue"] == SymptomMention(
        "fatigue",
        2,
        False,
        "check-in E=2",
        {
            "source": "checkin",
            "item": "E",
            "scores": "E=2",
            "severity": 2,
            "composite_grade": 2,
            "incomplete": 1,
        },
    )
    # nodules that bleed: present, graded by a person
    assert by_code["skin_nodules"] == SymptomMention(
        "skin_nodules",
        None,
        False,
        "check-in K=1 KB=1",
        {"source": "checkin", "item": "K", "scores": "K=1 KB=1"},
    )


def test_parsed_reply_summary_codes_and_defaults(every_item: list[ck.CheckinItem]) -> None:
    graded = ck.grade_answers(every_item, {"F": 38, "HB": 1, "N": 2, "NS": 1})
    parsed = ck.to_parsed_reply(graded)
    assert parsed.text == parsed.normalized == "F=38 HB=1 N=2 NS=1"
    assert (parsed.language, parsed.intent, parsed.temperature_c) == (
        "unknown",
        "checkin_answer",
        38.0,
    )
    # a whole-degree temperature is no answer code; a yes (1) to a custom item is
    assert parsed.codes == {"HB": 1, "N": 2, "NS": 1}
    # composite grade F2 x S1 = 1; hematemesis "yes" is ungraded (a person grades it)
    assert [(m.code, m.grade, m.negated) for m in parsed.symptoms] == [
        ("fever", 1, False),
        ("hematemesis", None, False),
        ("nausea", 1, False),
    ]
    told = ck.to_parsed_reply(graded, text="F38 HB1 N2 NS1", language="en")
    assert (told.text, told.normalized, told.language) == ("F38 HB1 N2 NS1",) * 2 + ("en",)


def test_parsed_reply_without_a_temperature(every_item: list[ck.CheckinItem]) -> None:
    graded = ck.grade_answers(every_item, {"D": 2, "HB": 0})
    parsed = ck.to_parsed_reply(graded)
    assert parsed.temperature_c is None
    assert parsed.codes == {"HB": 0, "D": 2}
    assert parsed.text == "HB=0 D=2"


def test_triage_answers_uses_the_rules_given(every_item: list[ck.CheckinItem]) -> None:
    """A site's own rules replace the default ones (here: any nausea is red)."""
    graded = ck.grade_answers(every_item, {"N": 1, "NS": 1})  # composite grade 1
    assert ck.triage_answers(graded).priority == "green"
    own = TriageRules(
        "site rules",
        (TriageRule("any_nausea", "red", {"symptom": {"code": "nausea"}}, "nausea {grade}"),),
    )
    result = ck.triage_answers(graded, own)
    assert (result.priority, result.reasons, result.red_flags) == (
        "red",
        ("any_nausea: nausea 1",),
        ("any_nausea",),
    )


# --------------------------------------------------------------------------- loader errors


def broken(protocol: Protocol, change) -> Protocol:
    raw = copy.deepcopy(protocol.raw)
    change(raw["checkins"])
    return replace(protocol, raw=raw)


def set_path(section: dict[str, Any], path: list[Any], value: Any) -> None:
    target = section
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (["items", 0, "code"], "f", "checkins.items[0].code", "1 to 3 capital letters"),
        (["items", 6, "kind"], "proctcae", "checkins.items[6].kind", "one of pro_ctcae, custom"),
        (["items", 6, "symptom"], "nausia", "checkins.items[6].symptom", "one of diarrhea"),
        (["version"], 2, "checkins.version", "expected"),
        (
            ["items", 6, "questions", 0, "attribute"],
            "interference",
            "checkins.items[6].questions",
            "have no composite grading table",
        ),
        (
            ["items", 6, "questions", 1, "code"],
            "S",
            "checkins.items[6].questions[1].code",
            "duplicate question code 'S'",
        ),
        (
            ["items", 6, "questions", 0, "code"],
            "NN",
            "checkins.items[6].questions[0].code",
            "must have the item's code 'N'",
        ),
        (
            ["items", 3, "when"],
            {"phases": ["radiotherapy"]},
            "checkins.items[3].when.phases",
            "unknown phase 'radiotherapy'",
        ),
        (
            ["items", 3, "when"],
            {"choices": {"pd1": ["nivolumab"]}},
            "checkins.items[3].when.choices.pd1",
            "unknown option 'nivolumab'",
        ),
        (
            ["items", 4, "questions", 0, "levels"],
            {4: "cannot_breathe"},
            "checkins.items[4].questions[0].levels.4",
            "unknown level 'cannot_breathe'",
        ),
        (
            ["items", 4, "questions", 0, "labels_zh"],
            ["无", "轻度"],
            "checkins.items[4].questions[0].labels_zh",
            "expected 5 labels",
        ),
        (
            ["items", 4, "questions", 0, "grade_if_yes"],
            1,
            "checkins.items[4].questions[0].grade_if_yes",
            "only yes_no questions",
        ),
        (
            ["items", 4, "questions", 0, "colour"],
            "red",
            "checkins.items[4].questions[0]",
            "Additional properties are not allowed",
        ),
    ],
)
def test_invalid_section_names_the_field(
    protocol: Protocol, path: list[Any], value: Any, field: str, message: str
) -> None:
    bad = broken(protocol, lambda section: set_path(section, path, value))
    with pytest.raises(ck.CheckinsError) as caught:
        ck.load_checkins(bad)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(protocol.path))


def test_missing_required_field_is_named(protocol: Protocol) -> None:
    bad = broken(protocol, lambda section: section["items"][1].pop("symptom"))
    with pytest.raises(
        ck.CheckinsError, match=r"checkins.items\[1\]: missing required field 'symptom'"
    ):
        ck.load_checkins(bad)


def test_protocol_without_checkins(protocol: Protocol) -> None:
    raw = {k: v for k, v in protocol.raw.items() if k != "checkins"}
    with pytest.raises(ck.CheckinsError, match="this protocol has no check-ins"):
        ck.load_checkins(replace(protocol, raw=raw))


def test_only_unknown_codes_is_not_recognised_but_reported(
    every_item: list[ck.CheckinItem],
) -> None:
    reply = ck.parse_compact("Q2 Z3", every_item)
    assert not reply.recognised and reply.answers == {}
    assert problem_kinds(reply) == [("unknown_code", "Q"), ("unknown_code", "Z")]


@pytest.mark.parametrize(
    ("answers", "rule"),
    [
        ({"B": 4, "BI": 0}, "checkin_very_severe_breathlessness"),
        ({"V": 4, "VS": 1}, "checkin_constant_vomiting"),
        ({"D": 4}, "checkin_constant_diarrhoea"),
    ],
)
def test_alerts_read_the_raw_answer_not_the_composite_grade(
    every_item: list[ck.CheckinItem], answers: dict[str, ck.Answer], rule: str
) -> None:
    """'Very severe' breathlessness with no interference has composite grade 2, yet is red."""
    graded = ck.grade_answers(every_item, answers)
    result = ck.triage_answers(graded)
    assert result.priority == "red"
    assert rule in result.red_flags
    assert all(a.composite_grade is None or a.composite_grade <= 3 for a in graded)


def test_the_composite_grade_is_kept_for_reports(every_item: list[ck.CheckinItem]) -> None:
    (answer,) = ck.grade_answers(every_item, {"B": 4, "BI": 0})
    assert answer.composite_grade == 2  # S4 x I0 in Basch et al. 2021
    assert ck.to_parsed_reply([answer]).symptoms[0].detail["severity"] == 4


def test_a_temperature_in_maintenance_follows_the_regimen(every_item: list[ck.CheckinItem]) -> None:
    graded = ck.grade_answers(every_item, {"F": 37.6})
    maintenance = TriageContext(phase="maintenance")
    assert ck.triage_answers(graded, context=maintenance).priority == "green"
    assert ck.triage_answers(graded, context=TriageContext(phase="induction")).priority == "amber"
