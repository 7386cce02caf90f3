"""The reply vocabulary's compact codes (the fallback when no check-in is open) use the same
letters and symptoms as the questionnaire."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.domain import checkins as ck
from app.domain.protocol import load_protocol
from app.domain.replies import load_vocabulary, parse_reply

PROTOCOL = Path(__file__).resolve().parents[2] / "app" / "protocols" / "nct07016737.yaml"
QUESTIONNAIRE = ck.load_checkins(load_protocol(PROTOCOL))
QUESTIONS = {q.code: (item, q) for item in QUESTIONNAIRE.items for q in item.questions}
VOCABULARY = load_vocabulary().intents.checkin_codes


def test_every_vocabulary_code_is_a_question_about_the_same_symptom() -> None:
    for code, spec in VOCABULARY.items():
        assert code in QUESTIONS, code
        item, question = QUESTIONS[code]
        assert spec.symptom == item.symptom, code
        if question.attribute in ("frequency", "severity"):
            assert spec.scale == question.attribute, code


def test_every_question_but_interference_is_in_the_vocabulary() -> None:
    expected = {code for code, (_, q) in QUESTIONS.items() if q.attribute != "interference"}
    assert set(VOCABULARY) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [("D3", "D"), ("S2", "S"), ("I4", "I"), ("R1", "R"), ("K1", "K"), ("N4", "N"), ("V1", "V")],
)
def test_single_answers_grade_alike_with_or_without_an_open_check_in(text: str, code: str) -> None:
    item, _ = QUESTIONS[code]
    compact = ck.parse_compact(text, [item])
    (graded,) = ck.grade_answers([item], compact.answers)
    fallback = parse_reply(text).symptom(item.symptom)
    assert fallback is not None and fallback.grade == graded.grade
