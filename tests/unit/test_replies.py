"""Understanding replies: normalisation, numbers, temperatures, negation, intents, vocabulary."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.domain.replies import (
    DEFAULT_VOCABULARY_DIR,
    INTENTS,
    MAX_INPUT_CHARS,
    SYMPTOM_CODES,
    ParsedReply,
    ReplyContext,
    SymptomMention,
    VocabularyError,
    detect_language,
    load_vocabulary,
    normalize_text,
    parse_chinese_number,
    parse_codes,
    parse_reply,
)


def active(text: str, **context) -> dict[str, int | None]:
    """Active symptom codes -> grade."""
    parsed = parse_reply(text, context=ReplyContext(**context))
    return {s.code: s.grade for s in parsed.active_symptoms}


# ------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＳＴＯＰ", "stop"),
        ("发烧３８．５℃", "发烧38.5°c"),
        ("  many   spaces\t\there ", "many spaces here"),
        ("line one\r\n\r\nline two", "line one\nline two"),
        ("zero\u200bwidth", "zero width"),
        ("bell\x07char", "bell char"),
        ("can’t", "can't"),
        ("38º", "38°"),
    ],
)
def test_normalize_folds_phone_input(raw: str, expected: str):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("typo", "word"),
    [
        ("diarhea", "diarrhea"),
        ("diarrea", "diarrhea"),
        ("feaver", "fever"),
        ("vomitting", "vomiting"),
        ("swolow", "swallow"),
        ("tempreture", "temperature"),
        ("diarrhoae", "diarrhoea"),
        ("vomitng", "vomiting"),
        ("diarrhae", "diarrhea"),
    ],
)
def test_common_typos_are_read_as_the_word(typo: str, word: str):
    assert normalize_text(f"I have {typo} today") == f"i have {word} today"


def test_fuzzy_correction_leaves_real_words_alone():
    assert normalize_text("shallow breathing") == "shallow breathing"
    assert normalize_text("laughing") == "laughing"
    assert active("shallow water") == {}


def test_british_spelling_and_plain_diarrhoea_are_the_same_symptom():
    assert active("diarrhoea 5 times") == active("diarrhea 5 times") == {"diarrhea": 2}


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("拉肚子", "zh"),
        ("diarrhea", "en"),
        ("diarrhea拉肚子", "mixed"),
        ("1", "unknown"),
        ("", "unknown"),
    ],
)
def test_detect_language(text: str, language: str):
    assert detect_language(normalize_text(text)) == language
    assert parse_reply(text).language == language


def test_explicit_language_is_reported_but_both_vocabularies_still_match():
    parsed = parse_reply("胸痛 chest pain", lang="en")
    assert parsed.language == "en"
    assert {s.code for s in parsed.active_symptoms} == {"chest_pain"}
    assert parse_reply("发烧", lang="en").symptom("fever") is not None
    assert parse_reply("x", lang="klingon").language == "en"


# ------------------------------------------------------------------ numbers and counts


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("一", 1),
        ("两", 2),
        ("七", 7),
        ("十", 10),
        ("十五", 15),
        ("二十", 20),
        ("二十三", 23),
        ("五六", 6),
        ("七八", 8),
        ("两三", 3),
        ("十几", 19),
        ("二十几", 29),
        ("十一二", 12),
        ("一百", 100),
        ("几", None),
        ("三八", None),
        ("abc", None),
        ("", None),
    ],
)
def test_parse_chinese_number(text: str, value: int | None):
    assert parse_chinese_number(text) == value


@pytest.mark.parametrize(
    ("text", "stools"),
    [
        ("拉肚子一天7次", 7),
        ("拉肚子五六次", 6),
        ("拉肚子5-6次", 6),
        ("拉肚子5到6次", 6),
        ("拉肚子5~6次", 6),
        ("今天拉了十几次", 19),
        ("拉肚子两次", 2),
        ("diarrhea 8 times today", 8),
        ("diarrhea 5 or 6 times", 6),
        ("diarrhoea x5", 5),
        ("diarrhoea 4x", 4),
        ("diarrhea twice", 2),
        ("diarrhea seven times", 7),
        ("loose stools, 3 times", 3),
        ("拉肚子，一天3次", 3),
        ("拉肚子很多次", 10),
    ],
)
def test_stool_counts(text: str, stools: int):
    mention = parse_reply(text).symptom("diarrhea")
    assert mention is not None
    assert mention.detail["stools_per_day"] == stools


def test_diarrhoea_grades_follow_ctcae_over_baseline():
    assert active("拉肚子3次") == {"diarrhea": 1}
    assert active("拉肚子4次") == {"diarrhea": 2}
    assert active("拉肚子6次") == {"diarrhea": 2}
    assert active("拉肚子7次") == {"diarrhea": 3}
    assert active("拉肚子7次", baseline_stools=3) == {"diarrhea": 2}
    assert active("拉肚子2次", baseline_stools=3) == {"diarrhea": 1}
    mention = parse_reply("拉肚子9次", context=ReplyContext(baseline_stools=2)).symptom("diarrhea")
    assert mention.detail == {"stools_per_day": 9, "stools_over_baseline": 7}


def test_counts_go_to_the_nearest_symptom():
    assert active("vomited twice, diarrhea 5 times") == {"vomiting": 1, "diarrhea": 2}
    assert active("吐了3次，拉肚子1次") == {"vomiting": 2, "diarrhea": 1}


def test_ordinals_ages_and_days_are_not_counts():
    assert active("第一次拉肚子") == {"diarrhea": None}
    assert active("拉肚子3天了") == {"diarrhea": None}


def test_zero_count_means_absent():
    parsed = parse_reply("拉肚子0次")
    assert parsed.active_symptoms == ()
    assert parsed.negated_symptoms[0].code == "diarrhea"


# ------------------------------------------------------------------ temperatures


@pytest.mark.parametrize(
    ("text", "celsius"),
    [
        ("38.5", 38.5),
        ("发烧38.5", 38.5),
        ("38.5度", 38.5),
        ("38度5", 38.5),
        ("三十八度五", 38.5),
        ("三十八点五度", 38.5),
        ("38点5度", 38.5),
        ("38度五", 38.5),
        ("38.5℃", 38.5),
        ("38.5 °C", 38.5),
        ("38.5c", 38.5),
        ("101F", 38.3),
        ("101°F", 38.3),
        ("101 degrees F", 38.3),
        ("fever 101", 38.3),
        ("39 degrees", 39.0),
        ("temp 38.2", 38.2),
        ("temperature: 37.6", 37.6),
        ("体温37.2", 37.2),
        ("发烧39", 39.0),
        ("烧到40度", 40.0),
        ("temperature 38,6°C", 38.6),
        ("ｔｅｍｐ ３８．５", 38.5),
        ("烧到39，现在37.5", 39.0),
    ],
)
def test_temperature_forms(text: str, celsius: float):
    assert parse_reply(text).temperature_c == pytest.approx(celsius, abs=0.05)


@pytest.mark.parametrize(
    "text",
    [
        "我今年38岁",
        "3床病人",
        "明天上午10.30到",
        "temperature 45",
        "体温20度",
        "电话13912345678",
        "拉肚子38次",
        "38",
        "吃了2.5片",
        "体重38.5公斤",
        "10:38到",
        "about 38 years old",
    ],
)
def test_not_temperatures(text: str):
    assert parse_reply(text).temperature_c is None


def test_bare_integer_is_a_temperature_only_when_one_was_asked_for():
    assert parse_reply("38").temperature_c is None
    assert parse_reply("38", context=ReplyContext(awaiting_temperature=True)).temperature_c == 38.0


def test_fever_grade_comes_from_the_temperature():
    assert active("发烧38.0") == {"fever": 1}
    assert active("发烧39.0") == {"fever": 1}
    assert active("发烧39.1") == {"fever": 2}
    assert active("发烧40.0") == {"fever": 2}
    assert active("发烧40.1") == {"fever": 3}
    assert active("发烧37.9") == {"fever": None}
    assert active("发烧") == {"fever": None}


def test_a_high_temperature_is_a_fever_even_when_denied():
    parsed = parse_reply("没有发烧，体温38.6")
    assert parsed.symptom("fever").grade == 1
    assert parsed.symptom("fever").detail["temperature_c"] == 38.6


def test_a_normal_temperature_is_not_a_fever():
    parsed = parse_reply("体温36.8")
    assert parsed.active_symptoms == ()
    assert parsed.intent == "symptom_report"


# ------------------------------------------------------------------ symptoms, levels, severity


@pytest.mark.parametrize(
    ("text", "level", "grade"),
    [
        ("吃硬的东西咽不下", "solids_difficult", 1),
        ("只能吃软的", "soft_food_only", 2),
        ("只能吃半流质", "soft_food_only", 2),
        ("只能吃流食", "liquids_only", 3),
        ("only liquids", "liquids_only", 3),
        ("喝水都咽不下", "cannot_swallow_liquids", 4),
        ("口水都咽不下", "cannot_swallow_liquids", 4),
        ("can't swallow my saliva", "cannot_swallow_liquids", 4),
    ],
)
def test_dysphagia_levels(text: str, level: str, grade: int):
    mention = parse_reply(text).symptom("dysphagia")
    assert (mention.detail["level"], mention.grade) == (level, grade)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("活动后气短", "on_exertion"),
        ("short of breath walking upstairs", "on_exertion"),
        ("走几步就喘", "minimal_exertion"),
        ("休息时也喘", "at_rest"),
        ("喘不上气", "at_rest"),
        ("short of breath even sitting", "at_rest"),
    ],
)
def test_dyspnea_levels(text: str, level: str):
    assert parse_reply(text).symptom("dyspnea").detail["level"] == level


def test_a_cancelled_cue_does_not_set_the_level():
    mention = parse_reply("走路时有点喘，休息时还好").symptom("dyspnea")
    assert mention.detail["level"] == "on_exertion"


def test_severity_words_grade_the_nearest_mention():
    assert active("有点恶心") == {"nausea": 1}
    assert active("恶心比较明显") == {"nausea": 2}
    assert active("恶心得厉害") == {"nausea": 3}
    assert active("mild nausea and severe itching") == {"nausea": 1, "pruritus": 3}
    assert active("很轻微的恶心") == {"nausea": 1}
    assert active("今天很好，有点恶心") == {"nausea": 1}


def test_every_symptom_code_is_recognised_in_both_languages():
    samples = {
        "diarrhea": ("拉肚子", "diarrhea"),
        "dysphagia": ("吞咽困难", "difficulty swallowing"),
        "fever": ("发烧", "fever"),
        "nausea": ("恶心", "nausea"),
        "vomiting": ("呕吐", "vomiting"),
        "hematemesis": ("吐血", "vomited blood"),
        "melena": ("黑便", "black stools"),
        "dyspnea": ("气短", "short of breath"),
        "cough": ("咳嗽", "cough"),
        "chest_pain": ("胸痛", "chest pain"),
        "rash": ("皮疹", "rash"),
        "pruritus": ("痒", "itchy"),
        "mucositis": ("口腔溃疡", "mouth sores"),
        "numbness": ("手脚麻", "numbness"),
        "fatigue": ("乏力", "tired"),
        "anorexia": ("不想吃饭", "no appetite"),
        "abdominal_pain": ("肚子痛", "stomach ache"),
        "skin_nodules": ("皮肤长了红点", "red spots on my skin"),
        "syncope": ("晕倒", "fainted"),
    }
    assert set(samples) == set(SYMPTOM_CODES)
    for code, phrases in samples.items():
        for phrase in phrases:
            assert set(active(phrase)) == {code}, phrase


def test_mention_keeps_its_evidence():
    mention = parse_reply("今天胸口有点痛").symptom("chest_pain")
    assert "胸口有点痛" in mention.evidence


def test_look_alike_words_are_not_symptoms():
    for text in ("吐槽一下", "烧饭", "发热门诊在几楼", "退烧药吃完了", "a faint rash", "麻烦您了"):
        codes = set(active(text))
        assert codes <= {"rash"}, text


# ------------------------------------------------------------------ negation


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("no fever", "fever"),
        ("not vomiting", "vomiting"),
        ("didn't vomit", "vomiting"),
        ("no more diarrhea", "diarrhea"),
        ("haven't had any diarrhoea", "diarrhea"),
        ("没有发烧", "fever"),
        ("不发烧", "fever"),
        ("没拉肚子", "diarrhea"),
        ("不拉了", "diarrhea"),
        ("烧退了", "fever"),
        ("没有再吐", "vomiting"),
        ("拉肚子好了", "diarrhea"),
        ("fever is gone", "fever"),
        ("diarrhea stopped", "diarrhea"),
        ("未见黑便", "melena"),
        ("无发热", "fever"),
    ],
)
def test_negated_mentions_are_kept_but_not_active(text: str, code: str):
    parsed = parse_reply(text)
    assert parsed.active_symptoms == ()
    assert [s.code for s in parsed.negated_symptoms] == [code]
    assert parsed.negated_symptoms[0].negated is True


def test_negation_carries_over_or_but_not_and_but():
    assert active("no fever or vomiting") == {}
    assert active("没有发烧、呕吐") == {}
    assert active("no fever and vomiting") == {"vomiting": None}
    assert active("no fever but vomiting") == {"vomiting": None}
    assert active("没有发烧，呕吐了") == {"vomiting": None}
    assert active("没有发烧但是呕吐") == {"vomiting": None}


@pytest.mark.parametrize(
    "text",
    [
        "no idea why I have diarrhea",
        "I am not able to swallow water",
        "有没有发烧我也不知道",
        "是不是发烧了",
        "特别累",
        "拉肚子好了一点",
        "diarrhea hasn't stopped",
        "受不了，恶心",
        "I'm not sure but I think I have a fever",
    ],
)
def test_things_that_look_like_negation_but_are_not(text: str):
    assert parse_reply(text).active_symptoms, text


def test_a_denied_symptom_and_a_reported_one_in_the_same_message():
    parsed = parse_reply("No fever but diarrhea 5 times")
    assert {s.code: s.negated for s in parsed.symptoms} == {"fever": True, "diarrhea": False}


# ------------------------------------------------------------------ intents


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("STOP", "opt_out"),
        ("stop!", "opt_out"),
        ("Stop all", "opt_out"),
        ("退订", "opt_out"),
        ("请退订，谢谢", "opt_out"),
        ("TD", "opt_out"),
        ("START", "opt_in"),
        ("HELP", "help"),
        ("？", "help"),
        ("1", "confirm"),
        ("好的", "confirm"),
        ("👍", "confirm"),
        ("2", "reschedule_request"),
        ("来不了", "reschedule_request"),
        ("please stop sending me the diet leaflet, what should I eat?", "unknown"),
        ("can I stop taking the tablets", "unknown"),
        ("不好", "unknown"),
        ("not ok with that date", "symptom_report"),
        ("", "unknown"),
    ],
)
def test_intents(text: str, intent: str):
    assert parse_reply(text).intent == intent


def test_opt_out_keywords_only_count_as_the_whole_message():
    assert parse_reply("T").intent == "opt_out"
    assert parse_reply("T 好的").intent == "confirm"
    assert parse_reply("I want to stop the pain").intent == "symptom_report"


def test_a_symptom_always_wins_over_confirm_and_opt_out():
    assert parse_reply("OK 胸痛").intent == "symptom_report"
    assert parse_reply("好的，拉肚子3次").intent == "symptom_report"
    assert parse_reply("OK, no fever").intent == "symptom_report"


def test_yes_is_opt_in_only_after_an_opt_out():
    assert parse_reply("YES").intent == "confirm"
    assert parse_reply("YES", context=ReplyContext(opted_out=True)).intent == "opt_in"
    assert parse_reply("START").intent == "opt_in"


def test_bare_numbers_answer_an_open_check_in_question():
    assert parse_reply("3").intent == "unknown"
    assert parse_reply("3").answer == 3
    waiting = ReplyContext(awaiting_checkin=True)
    assert parse_reply("1", context=waiting).intent == "checkin_answer"
    assert parse_reply("3", context=waiting).answer == 3
    assert parse_reply("三", context=waiting).answer == 3
    assert parse_reply("9", context=waiting).intent == "unknown"


@pytest.mark.parametrize(
    ("scale", "score", "grade"),
    [
        ("severity", 1, 1),
        ("severity", 2, 2),
        ("severity", 3, 3),
        ("severity", 4, 3),
        ("frequency", 1, 1),
        ("frequency", 2, 1),
        ("frequency", 3, 2),
        ("frequency", 4, 3),
        ("presence", 1, None),
        ("grade", 2, 2),
    ],
)
def test_check_in_scores_map_to_composite_grades(scale: str, score: int, grade: int | None):
    context = ReplyContext(awaiting_checkin=True, checkin_symptom="nausea", checkin_scale=scale)
    parsed = parse_reply(str(score), context=context)
    assert parsed.intent == "checkin_answer"
    assert [(s.code, s.grade) for s in parsed.active_symptoms] == [("nausea", grade)]


def test_check_in_count_answer_uses_the_baseline():
    context = ReplyContext(
        awaiting_checkin=True, checkin_symptom="diarrhea", checkin_scale="count", baseline_stools=1
    )
    mention = parse_reply("8", context=context).symptom("diarrhea")
    assert (mention.grade, mention.detail["stools_over_baseline"]) == (3, 7)


def test_parse_codes_is_generic():
    assert parse_codes("d2 s1 f0") == {"D": 2, "S": 1, "F": 0}
    assert parse_codes("d2s1f0") == {"D": 2, "S": 1, "F": 0}
    assert parse_codes("D:2, S=1; AP3") == {"D": 2, "S": 1, "AP": 3}
    assert parse_codes("qq4 zz0") == {"QQ": 4, "ZZ": 0}
    assert parse_codes("diarrhea 2") == {}
    assert parse_codes("hello") == {}
    assert parse_codes("") == {}


def test_compact_codes_become_symptoms():
    parsed = parse_reply("D2 S1 F0")
    assert parsed.intent == "checkin_answer"
    assert parsed.codes == {"D": 2, "S": 1, "F": 0}
    assert {s.code: (s.grade, s.negated) for s in parsed.symptoms} == {
        "diarrhea": (1, False),
        "dysphagia": (1, False),
        "fever": (None, True),
    }


def test_unknown_codes_are_kept_but_are_not_an_answer_without_an_open_question():
    parsed = parse_reply("QQ4")
    assert parsed.codes == {"QQ": 4}
    assert parsed.intent == "unknown"
    assert parse_reply("QQ4", context=ReplyContext(awaiting_checkin=True)).intent == (
        "checkin_answer"
    )


# ------------------------------------------------------------------ results and robustness


def test_parsed_reply_shape():
    parsed = parse_reply("没有发烧，拉肚子5次")
    assert isinstance(parsed, ParsedReply)
    assert all(isinstance(s, SymptomMention) for s in parsed.symptoms)
    assert [s.code for s in parsed.active_symptoms] == ["diarrhea"]
    assert [s.code for s in parsed.negated_symptoms] == ["fever"]
    assert parsed.symptom("fever") is None
    assert parsed.text == "没有发烧，拉肚子5次"
    assert hash(parsed) == hash(parse_reply("没有发烧，拉肚子5次"))
    with pytest.raises(AttributeError):
        parsed.intent = "confirm"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\x00\x01\x02",
        "\ud800\udfff lone surrogates",
        "🙂" * 500,
        "发烧" * 10_000,
        "\u202e\u200f right-to-left",
        "((((((((((",
        "re:.*",
        "\\d+",
        "9" * 5000,
        "一" * 5000,
        "no no no not not never " * 300,
        "°°°℃℉度度度",
    ],
)
def test_parse_never_raises(text: str):
    # Speed is shown by bench/bench_webhook.py (parse ms per message), not by a timed assertion
    # that fails on a loaded machine; input length is capped (test below).
    parsed = parse_reply(text)
    assert parsed.intent in INTENTS
    assert "parse_error" not in parsed.flags


def test_overlong_messages_are_cut_and_flagged():
    parsed = parse_reply("好" * (MAX_INPUT_CHARS + 1))
    assert "truncated" in parsed.flags
    assert "truncated" not in parse_reply("好" * MAX_INPUT_CHARS).flags


def test_non_string_input_does_not_raise():
    assert parse_reply(None).intent == "unknown"  # type: ignore[arg-type]
    assert parse_reply(12).intent == "unknown"  # type: ignore[arg-type]


def test_internal_failure_gives_a_flagged_unknown_reply():
    parsed = parse_reply("胸痛", vocabulary=object())  # type: ignore[arg-type]
    assert parsed.intent == "unknown"
    assert parsed.flags == ("parse_error",)


# ------------------------------------------------------------------ vocabulary as data


@pytest.fixture
def vocabulary_copy(tmp_path: Path) -> Path:
    target = tmp_path / "vocabulary"
    shutil.copytree(DEFAULT_VOCABULARY_DIR, target)
    return target


def test_default_vocabulary_loads_every_symptom():
    vocabulary = load_vocabulary()
    assert set(vocabulary.symptoms) == set(SYMPTOM_CODES)
    assert load_vocabulary() is vocabulary


def test_study_team_can_add_a_word(vocabulary_copy: Path):
    symptoms = vocabulary_copy / "symptoms.yaml"
    text = symptoms.read_text(encoding="utf-8")
    symptoms.write_text(
        text.replace("咳嗽, 咳, 干咳", "咳嗽, 咳, 干咳, 呛咳不止"), encoding="utf-8"
    )
    custom = load_vocabulary(vocabulary_copy)
    assert parse_reply("冒冷汗", vocabulary=custom).active_symptoms == ()
    assert parse_reply("呛咳不止", vocabulary=custom).symptom("cough") is not None


def _break(directory: Path, file: str, old: str, new: str) -> None:
    path = directory / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("symptoms.yaml", "grading: count", "grading: loudness", "diarrhea.grading"),
        ("symptoms.yaml", "syncope:", "fainting:", "fainting"),
        ("symptoms.yaml", "'re:diarrh\\w*'", "'re:diarrh(\\w*'", "diarrhea.mentions.en"),
        ("modifiers.yaml", '["no", not,', "[no, not,", "negation.before.en[0]"),
        (
            "intents.yaml",
            "D: {symptom: diarrhea, scale: frequency}",
            "D: {symptom: gout}",
            "D.symptom",
        ),
        ("flags.yaml", "distress:", "Distress:", "Distress"),
        ("spelling.yaml", "min_length: 7", "min_length: many", "fuzzy.min_length"),
    ],
)
def test_bad_vocabulary_names_file_and_field(
    vocabulary_copy: Path, file: str, old: str, new: str, message: str
):
    _break(vocabulary_copy, file, old, new)
    with pytest.raises(VocabularyError) as error:
        load_vocabulary(vocabulary_copy)
    assert file in str(error.value)
    assert message in str(error.value)


def test_missing_or_unreadable_vocabulary_file(vocabulary_copy: Path):
    (vocabulary_copy / "flags.yaml").unlink()
    with pytest.raises(VocabularyError, match=r"flags\.yaml: file not found"):
        load_vocabulary(vocabulary_copy)
    (vocabulary_copy / "flags.yaml").write_text("a: [b\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"flags\.yaml: not valid YAML"):
        load_vocabulary(vocabulary_copy)
