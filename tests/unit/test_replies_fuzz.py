"""Property tests: the parser and triage never fail, and red-flag phrases always stay red."""

from __future__ import annotations

import json
import os
import unicodedata

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.domain.replies import (
    CHECKIN_SCALES,
    INTENTS,
    LANGUAGES,
    SYMPTOM_CODES,
    ReplyContext,
    parse_reply,
)
from app.domain.triage import PRIORITIES, classify, triage

# FUZZ_EXAMPLES=5000 for a longer local run; the default keeps the unit suite fast.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Characters and fragments that exercise the interesting code paths.
TRICKY_PIECES = [
    *"0123456789.,:;!?。，、~-+x°℃℉度次回天 \n\t",
    *"一二两三四五六七八九十几百第",
    "没有",
    "不",
    "没",
    "no ",
    "not ",
    "or ",
    "、",
    "但是",
    "but ",
    "发烧",
    "拉肚子",
    "吐",
    "咽不下",
    "喘",
    "胸",
    "痛",
    "疼",
    "有点",
    "很",
    "very ",
    "mild ",
    "fever",
    "diarrhea",
    "times",
    "temp",
    "stop",
    "ok",
    "好的",
    "退订",
    "help",
    "?",
    "👍",
    "😷",
    "ＳＴＯＰ",
    "３８．５",
    "\u200b",
    "\x00",
    "\ufeff",
    "re:",
    "(",
    "[",
    "\\",
]
tricky_text = st.lists(st.sampled_from(TRICKY_PIECES), max_size=40).map("".join)
any_text = st.one_of(st.text(max_size=300), tricky_text)

contexts = st.builds(
    ReplyContext,
    awaiting_checkin=st.booleans(),
    opted_out=st.booleans(),
    baseline_stools=st.integers(min_value=-5, max_value=50),
    checkin_symptom=st.one_of(st.none(), st.sampled_from(SYMPTOM_CODES), st.text(max_size=5)),
    checkin_scale=st.one_of(st.sampled_from(CHECKIN_SCALES), st.text(max_size=5)),
    awaiting_temperature=st.booleans(),
)

RED_PHRASES = [
    "吐血",
    "呕血了",
    "黑便",
    "大便发黑",
    "便血",
    "胸痛",
    "胸口疼得厉害",
    "喘不上气",
    "休息时也喘",
    "喝水都咽不下",
    "口水都咽不下去",
    "晕倒了",
    "意识不清",
    "体温39度",
    "发烧38.6",
    "三十九度五",
    "拉肚子一天8次",
    "拉了十几次",
    "vomited blood",
    "coffee grounds",
    "black stools",
    "blood in my stool",
    "chest pain",
    "I can't breathe",
    "short of breath at rest",
    "can't swallow water",
    "he fainted",
    "temperature 39.5",
    "101°F",
    "diarrhea 9 times today",
    "救命",
    "coughing up blood",
]


@FUZZ
@given(text=any_text, context=contexts, lang=st.sampled_from(["auto", "zh", "en", "xx"]))
def test_parse_and_triage_never_fail(text: str, context: ReplyContext, lang: str):
    parsed = parse_reply(text, lang=lang, context=context)
    assert parsed.intent in INTENTS
    assert parsed.language in LANGUAGES
    assert "parse_error" not in parsed.flags
    assert all(s.code in SYMPTOM_CODES for s in parsed.symptoms)
    assert all(s.grade is None or 0 <= s.grade <= 5 for s in parsed.symptoms)
    if parsed.temperature_c is not None:
        assert 34.0 <= parsed.temperature_c <= 43.5
    result = triage(parsed)
    assert result.priority in PRIORITIES
    assert result.reasons


@FUZZ
@given(text=any_text)
def test_classify_is_always_one_json_line(text: str):
    result = classify(text)
    line = json.dumps(result, ensure_ascii=False)
    assert "\n" not in line
    line.encode("utf-8")
    assert result["priority"] in PRIORITIES
    assert result["intent"] in INTENTS


@FUZZ
@given(
    before=st.one_of(st.text(max_size=600), tricky_text),
    after=st.one_of(st.text(max_size=600), tricky_text),
    phrase=st.sampled_from(RED_PHRASES),
    context=contexts,
)
def test_red_flag_phrase_stays_red_in_any_text(
    before: str, after: str, phrase: str, context: ReplyContext
):
    text = f"{before}\n{phrase}\n{after}"
    assume(len(unicodedata.normalize("NFKC", text)) < 6000)
    context = ReplyContext(baseline_stools=0, opted_out=context.opted_out)
    result = triage(parse_reply(text, context=context))
    assert result.priority == "red", (text, result)


@FUZZ
@given(text=any_text)
def test_adding_a_red_flag_sentence_never_lowers_priority(text: str):
    base = triage(parse_reply(text))
    worse = triage(parse_reply(f"{text}\n胸痛"))
    assert worse.priority == "red"
    assert PRIORITIES.index(worse.priority) >= PRIORITIES.index(base.priority)
