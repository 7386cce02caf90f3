"""Triage reasons, CTCAE terms and levels rendered in the reader's language (issue 13 §1)."""

from __future__ import annotations

from flask import Flask
from flask_babel import force_locale

from app.domain.checkins import load_checkins
from app.domain.triage import load_triage_rules
from app.services.shared.protocols import current_protocol
from app.web import labels, reasons, terms


def test_every_rule_has_a_translatable_text_equal_to_the_rules_file(app: Flask) -> None:
    rules = {rule.id: rule.reason for rule in load_triage_rules().rules}
    with app.test_request_context(), force_locale("en"):
        assert {key: str(text) for key, text in reasons.RULE_TEXTS.items()} == rules


def test_a_stored_reason_is_read_back_and_shown_in_chinese(app: Flask) -> None:
    stored = "worse_by_2: dysphagia worse by >= 2 points (grade 1 -> 3)"
    parsed = reasons.parse_reason(stored)
    assert parsed.rule_id == "worse_by_2"
    assert parsed.params == {"code": "dysphagia", "previous": "1", "grade": "3"}
    with app.test_request_context():
        with force_locale("zh"):
            assert reasons.reason_label(stored) == "吞咽困难加重 ≥ 2 级（1 级 → 3 级）"
        with force_locale("en"):
            label = reasons.reason_label(stored)
            assert label == "difficulty swallowing worse by >= 2 points (grade 1 -> 3)"


def test_check_in_evidence_and_service_reasons_are_in_words(app: Flask) -> None:
    with app.test_request_context(), force_locale("zh"):
        label = reasons.reason_label(
            "dysphagia_liquids: cannot swallow liquids or saliva ('check-in S=4')"
        )
        assert label == "水或口水都咽不下（“吞咽困难 4”）"
        assert reasons.reason_label("check-in not answered: call the patient") == (
            "症状自评未回答：请致电患者"
        )
        assert reasons.reason_label("something new") == "something new"


def test_every_ctcae_and_pro_ctcae_term_of_the_protocol_has_a_chinese_name(app: Flask) -> None:
    with app.test_request_context(), force_locale("zh"):
        for item in load_checkins(current_protocol()).items:
            if item.ctcae_term:
                assert terms.ctcae_label(item.ctcae_term) != item.ctcae_term, item.ctcae_term
            if item.pro_ctcae_term:
                assert terms.pro_ctcae_label(item.pro_ctcae_term) != item.pro_ctcae_term


def test_one_vocabulary_for_levels(app: Flask) -> None:
    with app.test_request_context(), force_locale("zh"):
        assert [labels.level_label(x) for x in ("red", "amber", "green")] == [
            "紧急",
            "当日处理",
            "常规",
        ]


def test_a_label_of_a_constant_follows_each_readers_language(app: Flask) -> None:
    template = app.jinja_env.from_string("{{ 'planned'|sms_status }} {{ 'red'|alert_level }}")
    with app.test_request_context():
        with force_locale("en"):
            assert template.render() == "Planned Urgent"
        with force_locale("zh"):
            assert template.render() == "计划中 紧急"
