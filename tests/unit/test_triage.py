"""Triage: rules as data, priorities, reasons, validation of the rules file, classify output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.domain.replies import ReplyContext, SymptomMention, parse_reply
from app.domain.triage import (
    DEFAULT_RULES_PATH,
    NO_CONTENT_REASON,
    PRIORITIES,
    TriageContext,
    TriageResult,
    TriageRulesError,
    classify,
    load_triage_rules,
    triage,
)


def priority(text: str, **kwargs) -> str:
    return triage(parse_reply(text), **kwargs).priority


def test_priorities_are_ordered_from_least_to_most_urgent():
    assert PRIORITIES == ("none", "green", "amber", "red")
    assert TriageResult("red", ("x",)).rank > TriageResult("amber", ("x",)).rank


def test_default_rules_load_and_are_cached():
    rules = load_triage_rules()
    assert rules is load_triage_rules()
    assert rules.source == str(DEFAULT_RULES_PATH)
    assert {r.priority for r in rules.rules} == {"red", "amber", "green"}


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("体温38.0", "temperature_high"),
        ("发烧了", "fever_without_reading"),
        ("吐血", "hematemesis"),
        ("black stools", "melena"),
        ("喝水都咽不下", "dysphagia_liquids"),
        ("short of breath at rest", "dyspnea_at_rest"),
        ("胸痛", "chest_pain"),
        ("diarrhea 7 times", "diarrhea_7_or_more"),
        ("severe diarrhoea", "diarrhea_severe"),
        ("拉肚子2次，发烧38.3", "diarrhea_with_fever"),
        ("晕倒了", "syncope"),
        ("救命", "distress"),
        ("咳血", "bleeding"),
    ],
)
def test_each_red_rule(text: str, rule_id: str):
    result = triage(parse_reply(text))
    assert result.priority == "red"
    assert rule_id in result.red_flags
    assert any(reason.startswith(f"{rule_id}: ") for reason in result.reasons)


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("diarrhea 5 times", "diarrhea_4_to_6"),
        ("只能吃软的", "dysphagia_changed"),
        ("吐了两次", "vomiting"),
        ("有点咳嗽", "cough_new"),
        ("short of breath climbing stairs", "dyspnea"),
        ("全身痒", "rash_widespread"),
        ("very tired", "top_of_scale"),
        ("nausea", "ungraded_symptom"),
        ("我很不舒服", "unwell"),
        ("住院了", "hospital"),
    ],
)
def test_each_amber_rule(text: str, rule_id: str):
    result = triage(parse_reply(text))
    assert result.priority == "amber"
    assert result.red_flags == ()
    assert any(reason.startswith(f"{rule_id}: ") for reason in result.reasons)


def test_reasons_are_machine_and_human_readable():
    result = triage(parse_reply("发烧38.5"))
    assert "temperature_high: temperature 38.5 C >= 38.0" in result.reasons
    result = triage(parse_reply("拉肚子一天8次"))
    assert "diarrhea_7_or_more: diarrhoea 8 stools a day over baseline >= 7" in result.reasons


def test_green_and_none():
    assert priority("有点恶心") == "green"
    assert priority("好的") == "green"
    assert priority("没有发烧") == "green"
    result = triage(parse_reply("STOP"))
    assert (result.priority, result.reasons) == ("none", (NO_CONTENT_REASON,))


def test_negated_red_flags_never_drive_priority():
    for text in ("没有吐血", "no chest pain", "没有黑便", "didn't faint", "不发烧", "烧退了"):
        assert priority(text) == "green", text


def test_red_takes_precedence_and_keeps_amber_reasons():
    result = triage(parse_reply("胸痛，还吐了两次"))
    assert result.priority == "red"
    assert result.reasons[0].startswith("chest_pain: ")
    assert any(r.startswith("vomiting: ") for r in result.reasons)
    assert not any(r.startswith("routine_reply") for r in result.reasons)


def test_worse_by_two_points_uses_previous_grades():
    parsed = parse_reply("恶心比较明显")  # nausea grade 2
    assert triage(parsed).priority == "green"
    assert triage(parsed, previous_grades={"nausea": 1}).priority == "green"
    worse = triage(parsed, previous_grades={"nausea": 0})
    assert worse.priority == "amber"
    assert "worse_by_2: nausea worse by >= 2 points (grade 0 -> 2)" in worse.reasons
    assert triage(parsed, previous_grades={}).priority == "amber"


def test_a_cough_is_new_unless_the_patient_already_had_one():
    parsed = parse_reply("有点咳嗽")
    assert triage(parsed).priority == "amber"
    assert triage(parsed, previous_grades={"cough": 0}).priority == "amber"
    assert triage(parsed, previous_grades={"cough": 1}).priority == "green"


def test_a_hand_built_reply_can_be_triaged():
    parsed = parse_reply("好的")
    mention = SymptomMention("fatigue", 3, False, "exhausted", {})
    built = type(parsed)(parsed.text, parsed.normalized, "en", "symptom_report", (mention,))
    assert triage(built).priority == "amber"


# ------------------------------------------------------------------ rules are data


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "triage_rules.yaml"
    shutil.copy(DEFAULT_RULES_PATH, target)
    return target


def test_study_team_can_change_a_threshold(rules_copy: Path):
    text = rules_copy.read_text(encoding="utf-8")
    rules_copy.write_text(
        text.replace("when: {temperature_at_least: 38.0}", "when: {temperature_at_least: 38.5}"),
        encoding="utf-8",
    )
    custom = load_triage_rules(rules_copy)
    parsed = parse_reply("体温38.2")
    assert triage(parsed).priority == "red"
    assert triage(parsed, custom).priority != "red"


def test_minimal_rules_file(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 1\nrules:\n"
        "  - id: any_cough\n    priority: amber\n    when: {symptom: {code: cough}}\n"
        "    reason: 'cough seen: {evidence}'\n",
        encoding="utf-8",
    )
    rules = load_triage_rules(path)
    assert triage(parse_reply("胸痛"), rules).priority == "none"
    result = triage(parse_reply("咳嗽"), rules)
    assert result == TriageResult("amber", ("any_cough: cough seen: 咳嗽",), ())


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("priority: red", "priority: purple", "rules[0].priority"),
        ("{code: hematemesis}", "{code: gout}", "rules[2].when"),
        ("temperature_at_least: 38.0}", "temperature_at_least: high}", "rules[0].when"),
        ("  - id: temperature_high\n", "  - id: Temperature High\n", "rules[0].id"),
        ("version: 1", "version: 2", "version"),
        ("{code: chest_pain}", "{code: chest_pain, colour: red}", "rules[6].when"),
        ('reason: "chest pain', 'reason: "chest {pain', "rules[6].reason"),
        ("  - id: melena\n", "  - id: hematemesis\n", "rules[3].id"),
    ],
)
def test_bad_rules_name_file_and_field(rules_copy: Path, old: str, new: str, field: str):
    text = rules_copy.read_text(encoding="utf-8")
    assert old in text
    rules_copy.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(TriageRulesError) as error:
        load_triage_rules(rules_copy)
    assert str(rules_copy) in str(error.value)
    assert f": {field}" in str(error.value)


def test_missing_or_broken_rules_file(tmp_path: Path):
    with pytest.raises(TriageRulesError, match="file not found"):
        load_triage_rules(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(TriageRulesError, match="not valid YAML"):
        load_triage_rules(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(TriageRulesError, match=r"empty.yaml: \(top level\)"):
        load_triage_rules(empty)


# ------------------------------------------------------------------ classify (the CLI's JSON)


def test_classify_returns_exactly_the_cli_object():
    result = classify("发烧38.5，拉肚子3次，没有吐")
    assert list(result) == ["text", "intent", "symptoms", "temperature_c", "priority", "reasons"]
    assert result["text"] == "发烧38.5，拉肚子3次，没有吐"
    assert result["intent"] == "symptom_report"
    assert result["symptoms"] == [{"code": "fever", "grade": 1}, {"code": "diarrhea", "grade": 1}]
    assert result["temperature_c"] == 38.5
    assert result["priority"] == "red"
    assert all(isinstance(r, str) for r in result["reasons"])
    json.dumps(result, ensure_ascii=False)


def test_classify_nulls_and_options():
    result = classify("恶心", lang="zh")
    assert result["symptoms"] == [{"code": "nausea", "grade": None}]
    assert result["temperature_c"] is None
    answered = classify("4", context=ReplyContext(awaiting_checkin=True, checkin_symptom="nausea"))
    assert (answered["intent"], answered["priority"]) == ("checkin_answer", "amber")
    assert classify("恶心比较明显", previous_grades={"nausea": 0})["priority"] == "amber"


def test_classify_output_is_always_encodable():
    result = classify("\ud800 胸痛")
    json.dumps(result, ensure_ascii=False).encode("utf-8")
    assert result["priority"] == "red"


# --------------------------------------------------------------------------- regimen and safety net


def test_irinotecan_first_loose_stool_is_amber_but_not_on_other_drugs():
    parsed = parse_reply("今天开始拉稀了，一天两次")
    irinotecan = TriageContext(chemo="irinotecan", phase="induction", days_since_infusion=5)
    docetaxel = TriageContext(chemo="docetaxel", phase="induction", days_since_infusion=5)
    assert triage(parsed, context=irinotecan).priority == "amber"
    assert any(
        r.startswith("irinotecan_first_loose_stool")
        for r in triage(parsed, context=irinotecan).reasons
    )
    assert triage(parsed, context=docetaxel).priority == "green"


def test_borderline_temperature_is_amber_in_chemotherapy_phases_only():
    parsed = parse_reply("体温37.6")
    assert triage(parsed, context=TriageContext(phase="induction")).priority == "amber"
    assert triage(parsed, context=TriageContext(phase="salvage")).priority == "amber"
    assert triage(parsed, context=TriageContext(phase="maintenance")).priority == "green"
    assert triage(parsed).priority == "amber", "unknown phase: the more urgent reading"


def test_low_temperature_is_red_during_chemotherapy_and_amber_in_maintenance():
    parsed = parse_reply("体温35.0")
    assert triage(parsed, context=TriageContext(phase="induction")).priority == "red"
    assert triage(parsed, context=TriageContext(phase="maintenance")).priority == "amber"


def test_the_nurse_never_reads_no_fever_for_a_given_temperature():
    result = triage(parse_reply("没发烧，37.6"), context=TriageContext(phase="maintenance"))
    assert not any("no fever" in reason for reason in result.reasons)
    assert any("37.6" in reason for reason in result.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "腿上青了一大块",
        "my leg went a funny colour",
        "asdf qwer",
        "他这两天老是出虚汗",
        "退烧药吃完了",
    ],
)
def test_the_safety_net_makes_unread_clinical_text_amber(text: str):
    result = triage(parse_reply(text))
    assert result.priority == "amber"
    assert any(r.startswith("safety_net") for r in result.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "yes",
        "好的",
        "收到",
        "明天几点到？",
        "新年快乐",
        "谁啊",
        "🙂",
        "what time is my appointment?",
    ],
)
def test_the_safety_net_leaves_non_clinical_messages_alone(text: str):
    result = triage(parse_reply(text))
    assert result.priority in ("none", "green")
    assert not any(r.startswith("safety_net") for r in result.reasons)


def test_the_safety_net_is_off_for_a_number_that_is_not_enrolled():
    assert (
        triage(parse_reply("asdf qwer"), context=TriageContext(enrolled=False)).priority == "none"
    )
