"""`classify` and `explain` (the study team's triage commands), exact output written by hand.

Written to kill mutants that survived `make mutation` (docs/testing.md): the command-line view of
triage must pass the language, the treatment context and the text through unchanged.
"""

from __future__ import annotations

from app.domain.replies import ReplyContext
from app.domain.triage import TriageContext, classify, explain

IRINOTECAN_DAY_5 = TriageContext(chemo="irinotecan", days_since_infusion=5)


def test_classify_a_high_temperature_exactly() -> None:
    # triage_rules.yaml temperature_high: >= 38.0 C is red
    assert classify("fever 39") == {
        "text": "fever 39",
        "intent": "symptom_report",
        "symptoms": [{"code": "fever", "grade": 1}],
        "temperature_c": 39.0,
        "priority": "red",
        "reasons": ["temperature_high: temperature 39.0 C >= 38.0"],
    }


def test_classify_passes_the_treatment_context_to_triage() -> None:
    # loose stools within 21 days of irinotecan: amber (clinical README s3); without: green
    with_context = classify("拉了两次", triage_context=IRINOTECAN_DAY_5)
    without = classify("拉了两次")

    assert with_context["priority"] == "amber"
    assert with_context["reasons"] == [
        "irinotecan_first_loose_stool: loose stools 5 days after irinotecan: start the "
        "loperamide plan, nurse calls today"
    ]
    assert without["priority"] == "green"


def test_classify_prints_a_lone_surrogate_as_the_replacement_character() -> None:
    assert classify("\ud800 fever 39")["text"] == "\ufffd fever 39"


def test_explain_a_high_temperature_step_by_step() -> None:
    reading = explain("发烧39度")

    assert reading["original"] == "发烧39度"
    assert [s["step"] for s in reading["steps"]] == [
        "width_case_spaces",
        "traditional_to_simplified",
        "pinyin_to_chinese",
        "subject_to_first_person",
        "homophone_typos",
        "english_spelling",
    ]
    assert reading["language"] == "zh"
    assert reading["intent"] == "symptom_report"
    assert reading["symptoms"] == [
        {"code": "fever", "grade": 1, "evidence": "发烧 | 39度", "detail": {"temperature_c": 39.0}}
    ]
    assert reading["negated"] == []
    assert reading["flags"] == []
    assert reading["temperature_c"] == 39.0
    assert reading["unread_clinical_words"] == []
    assert reading["non_clinical"] is False
    assert reading["rules_fired"] == ["temperature_high: temperature 39.0 C >= 38.0"]
    assert reading["safety_net"] is None
    assert reading["priority"] == "red"


def test_explain_shows_negation_and_the_context() -> None:
    denied = explain("没有发烧")
    assert denied["negated"] == ["fever"] and denied["symptoms"] == []

    stools = explain("拉了两次", triage_context=IRINOTECAN_DAY_5)
    assert stools["priority"] == "amber"
    assert stools["rules_fired"][0].startswith("irinotecan_first_loose_stool: loose stools 5 days")
    # "1" has no language of its own: the one given is kept, else it stays unknown
    assert [explain("1", lang=lang)["language"] for lang in ("en", "zh", "auto")] == [
        "en",
        "zh",
        "unknown",
    ]


def test_explain_and_classify_read_an_answer_to_the_open_check_in_question() -> None:
    # "3" alone means nothing; as the answer to "how severe is your diarrhoea" (PRO-CTCAE
    # severity 0-4) it is "severe": grade 3 diarrhoea, red (clinical README: >= 7 stools or
    # severe diarrhoea is a same-day call)
    question = ReplyContext(awaiting_checkin=True, checkin_symptom="diarrhea")

    answered = explain("3", context=question)
    alone = explain("3")

    assert answered["intent"] == "checkin_answer"
    assert [(s["code"], s["grade"]) for s in answered["symptoms"]] == [("diarrhea", 3)]
    assert answered["priority"] == "red"
    assert alone["intent"] == "unknown"
    assert alone["priority"] == "amber"  # the safety net: not understood
    assert classify("3", context=question)["priority"] == "red"
    assert classify("3", context=question)["symptoms"] == [{"code": "diarrhea", "grade": 3}]


def test_explain_shows_no_safety_net_for_a_number_that_is_not_enrolled() -> None:
    stranger = explain("3", triage_context=TriageContext(enrolled=False))

    assert stranger["safety_net"] is None
    assert stranger["priority"] == "none"
    assert explain("3")["safety_net"] == (
        "safety_net: message not understood and not clearly non-clinical"
    )
