"""The reply case table (tests/unit/data/reply_cases.yaml): understanding and priority."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from app.domain.replies import INTENTS, SYMPTOM_CODES, ReplyContext, parse_reply
from app.domain.triage import PRIORITIES, TriageContext, triage

CASES_FILE = Path(__file__).parent / "data" / "reply_cases.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
RED_CASES = [c for c in CASES if c["priority"] == "red"]
# Red phrases in free text (check-in answers and whole_message cases only mean something alone).
RED_PHRASES = [
    c
    for c in RED_CASES
    if c["intent"] == "symptom_report" and not c.get("context") and not c.get("whole_message")
]

GARBAGE_BEFORE = (
    "asdkjh qwe 123 ### 你好啊今天天气不错我们去公园玩吧 lorem ipsum dolor sit amet ~~~ "
    "ok ok 好的 收到 2 1 ??? ☺☺☺ 明天见 的的的 zzz " * 8
)
GARBAGE_AFTER = " 。 谢谢 thanks ... random words here 随便说说 !!! 12345 abc " * 8


def _case_id(case: dict[str, Any]) -> str:
    # "38,6 °C": an id with a comma and an escaped character cannot be selected again by
    # pytest.main(), which mutation testing (mutmut) does; the comma is shown as ";" in ids
    context = "+ctx" if case.get("context") else ""
    return f"{case['text'][:40]!r}{context}".replace(",", ";")


def _parse(case: dict[str, Any], text: str | None = None):
    context = ReplyContext(**case.get("context", {}))
    parsed = parse_reply(case["text"] if text is None else text, context=context)
    treatment = TriageContext(**case.get("triage_context", {}))
    return parsed, triage(parsed, previous_grades=case.get("previous"), context=treatment)


def test_table_is_large_and_covers_every_intent_symptom_and_priority():
    assert len(CASES) >= 200
    assert {c["intent"] for c in CASES} == set(INTENTS)
    assert {c["priority"] for c in CASES} == set(PRIORITIES)
    coded = {code for c in CASES for code, _ in c.get("symptoms", [])}
    assert coded == set(SYMPTOM_CODES)
    languages = {parse_reply(c["text"]).language for c in CASES}
    assert {"zh", "en", "mixed"} <= languages


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_reply_case(case: dict[str, Any]):
    parsed, result = _parse(case)
    assert parsed.intent == case["intent"], parsed
    assert result.priority == case["priority"], (result, parsed)
    assert result.reasons, "every result carries its reasons"
    if "symptoms" in case:
        found = sorted((s.code, s.grade) for s in parsed.active_symptoms)
        assert found == sorted((code, grade) for code, grade in case["symptoms"]), parsed
    if "negated" in case:
        assert set(case["negated"]) <= {s.code for s in parsed.negated_symptoms}, parsed
    if "temperature" in case:
        expected = case["temperature"]
        if expected is None:
            assert parsed.temperature_c is None
        else:
            assert parsed.temperature_c == pytest.approx(expected, abs=0.05)
    assert "parse_error" not in parsed.flags


@pytest.mark.parametrize("case", RED_PHRASES, ids=_case_id)
def test_red_case_stays_red_inside_long_garbage(case: dict[str, Any]):
    text = f"{GARBAGE_BEFORE}\n{case['text']}\n{GARBAGE_AFTER}"
    _, result = _parse(case, text)
    assert result.priority == "red", result
    assert result.red_flags


def test_no_red_case_is_ever_rated_below_red():
    below = [c["text"] for c in RED_CASES if _parse(c)[1].priority != "red"]
    assert below == []
