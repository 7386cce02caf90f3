"""Approved SMS templates as data: matching rendered texts, provider rules, the approval sheet."""

from __future__ import annotations

import csv
import io

import pytest

from app.sms.templates import ProviderRules, Template, TemplateCatalogue, TemplateError

TENCENT = ProviderRules("tencent", signature="【江苏省肿瘤医院】")


def template(text: str, **variables: dict) -> Template:
    return Template(
        kind="k",
        locale="zh",
        text=text,
        type="notification",
        purpose="test",
        variables=variables or {"a": {"max": 10, "example": "x"}},
        ids={"tencent": "1", "aliyun": "SMS_1"},
    )


def test_the_shipped_templates_pass_both_providers() -> None:
    catalogue = TemplateCatalogue.load()
    for provider in ("tencent", "aliyun"):
        assert catalogue.check(ProviderRules(provider)) == []


def test_a_rendered_reminder_resolves_to_its_template_and_values() -> None:
    catalogue = TemplateCatalogue.load()

    resolved = catalogue.resolve(
        "【江苏省肿瘤医院】提醒：您的治疗安排在3月5日。回复TD退订", "tencent"
    )

    assert (resolved.template.kind, resolved.template_id) == ("reminder", "2001001")
    assert resolved.values == ["您的治疗安排在3月5日。"]


def test_a_fixed_text_beats_the_general_template() -> None:
    catalogue = TemplateCatalogue.load(fallback="message")

    resolved = catalogue.resolve("Thank you, your appointment is confirmed.", "aliyun")

    assert (resolved.template.kind, resolved.values) == ("confirmed", [])


def test_an_unknown_text_is_refused_without_a_fallback_and_wrapped_with_one() -> None:
    with pytest.raises(TemplateError, match="no approved tencent template"):
        TemplateCatalogue.load().resolve("随便一句话", "tencent")

    wrapped = TemplateCatalogue.load(fallback="message").resolve("随便一句话", "tencent")
    assert (wrapped.template.kind, wrapped.template.locale) == ("message", "zh")
    assert wrapped.values == ["随便一句话"]


@pytest.mark.parametrize(
    "text,variables,problem",
    [
        ("【医院】您好{a}", {}, "【 or 】"),
        ("{a}", {}, "only variables"),
        ("您好{a}{b}", {"b": {"max": 3}}, "adjacent"),
        ("您好{a}", {"a": {"max": 3, "example": "https://x.cn/c"}}, "link"),
        ("您好{a}", {"a": {"max": 600}}, "characters with the signature"),
        ("您好{zz}", {}, "not declared"),
    ],
)
def test_each_provider_rule_is_checked(text: str, variables: dict, problem: str) -> None:
    spec = {"a": {"max": 10, "example": "x"}} | variables
    catalogue = TemplateCatalogue([template(text, **spec)])

    problems = catalogue.check(TENCENT)

    assert any(problem in p for p in problems), problems


def test_a_per_variable_limit_is_an_account_setting() -> None:
    catalogue = TemplateCatalogue.load()
    rules = ProviderRules("tencent", max_variable_length=12)

    assert any("limit 12" in p for p in catalogue.check(rules))


def test_the_export_numbers_tencent_variables_and_names_alibaba_ones() -> None:
    catalogue = TemplateCatalogue.load()

    tencent = list(csv.DictReader(io.StringIO(catalogue.export_csv("tencent"))))
    aliyun = list(csv.DictReader(io.StringIO(catalogue.export_csv("aliyun"))))

    reminder = next(r for r in tencent if r["kind"] == "reminder" and r["locale"] == "zh")
    assert reminder["template"] == "提醒：{1}回复TD退订" and reminder["id"] == "2001001"
    assert "{" not in reminder["example"]
    assert next(r for r in aliyun if r["kind"] == "reminder")["template"].count("${details}") == 1
