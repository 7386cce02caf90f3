"""Triage of a parsed reply: rules as data -> priority (red / amber / green / none) with reasons.

The rules live in ``app/protocols/triage_rules.yaml`` (the study team owns them). Every rule whose
condition holds adds a reason; the result takes the most urgent priority among them. Pure domain
code: standard library, PyYAML and jsonschema only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from app.domain.replies import (
    INTENTS,
    SYMPTOM_CODES,
    ParsedReply,
    ReplyContext,
    SymptomMention,
    explain_reply,
    parse_reply,
)

PHASES = ("induction", "maintenance", "salvage", "follow_up")
"""Treatment phases a TriageContext can name (app/domain/calendar.py's phases plus follow-up)."""
CHEMO_PHASES = ("induction", "salvage")
SAFETY_NET_REASON = "safety_net"
SAFETY_NET_INTENTS = ("symptom_report", "unknown")
"""Intents whose unread clinical words raise the reply to amber (the safety net)."""
PRIORITIES = ("none", "green", "amber", "red")
"""Priorities from least to most urgent."""
DEFAULT_RULES_PATH = Path(__file__).resolve().parents[1] / "protocols" / "triage_rules.yaml"
NO_CONTENT_REASON = "none: no clinical content"


@dataclass(frozen=True)
class TriageContext:
    """What the service knows about the patient's treatment when a reply arrives.

    Every field defaults to unknown; a rule that needs an unknown field holds only when it says
    ``when_unknown: true`` (the more urgent reading). ``enrolled`` False (a number that is not
    an enrolled patient) switches the safety net off.
    """

    chemo: str | None = None
    pd1: str | None = None
    phase: str | None = None
    days_since_infusion: int | None = None
    enrolled: bool = True


class TriageRulesError(ValueError):
    """The triage rules file is missing or invalid; the message names the file and the field."""


@dataclass(frozen=True)
class TriageRule:
    """One rule: when its condition holds the reply gets at least ``priority``."""

    id: str
    priority: str
    when: Mapping[str, Any]
    reason: str


@dataclass(frozen=True)
class TriageRules:
    """A validated, ordered set of triage rules."""

    source: str
    rules: tuple[TriageRule, ...]


@dataclass(frozen=True)
class TriageResult:
    """Priority of a reply, its reasons ("rule_id: explanation") and the red rules that fired."""

    priority: str
    reasons: tuple[str, ...]
    red_flags: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        """0 (none) .. 3 (red), for sorting."""
        return PRIORITIES.index(self.priority)


# --------------------------------------------------------------------------- loading

_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}
_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
_RULES_SCHEMA: dict[str, Any] = {
    "$defs": {
        "condition": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
            "properties": {
                "temperature_at_least": {"type": "number"},
                "temperature_below": {"type": "number"},
                "temperature_missing": {"const": True},
                "symptom": {"$ref": "#/$defs/symptom"},
                "negated_symptom": {"enum": [*SYMPTOM_CODES, "*"]},
                "flag": _NAME,
                "context": {"$ref": "#/$defs/context"},
                "intent": {
                    "oneOf": [
                        {"enum": list(INTENTS)},
                        {"type": "array", "items": {"enum": list(INTENTS)}, "minItems": 1},
                    ]
                },
                "all": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
                "any": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
            },
        },
        "context": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "phase": {
                    "oneOf": [
                        {"enum": list(PHASES)},
                        {"type": "array", "items": {"enum": list(PHASES)}, "minItems": 1},
                    ]
                },
                "chemo": {"oneOf": [_NAME, {**_STRINGS, "items": _NAME}]},
                "pd1": {"oneOf": [_NAME, {**_STRINGS, "items": _NAME}]},
                "days_since_infusion_at_most": {"type": "integer", "minimum": 0},
                "days_since_infusion_at_least": {"type": "integer", "minimum": 0},
                "when_unknown": {"type": "boolean"},
            },
        },
        "symptom": {
            "type": "object",
            "required": ["code"],
            "additionalProperties": False,
            "properties": {
                "code": {
                    "oneOf": [
                        {"enum": [*SYMPTOM_CODES, "*"]},
                        {"type": "array", "items": {"enum": list(SYMPTOM_CODES)}, "minItems": 1},
                    ]
                },
                "min_grade": {"type": "integer", "minimum": 0, "maximum": 5},
                "max_grade": {"type": "integer", "minimum": 0, "maximum": 5},
                "level": {"oneOf": [_NAME, {**_STRINGS, "items": _NAME}]},
                "ungraded": {"type": "boolean"},
                "new": {"type": "boolean"},
                "worse_by": {"type": "integer", "minimum": 1},
                "detail_at_least": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"type": "number"},
                },
                "detail_missing": {"type": "string", "minLength": 1},
            },
        },
    },
    "type": "object",
    "required": ["version", "rules"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "rules": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "priority", "when", "reason"],
                "additionalProperties": False,
                "properties": {
                    "id": _NAME,
                    "priority": {"enum": ["red", "amber", "green"]},
                    "when": {"$ref": "#/$defs/condition"},
                    "reason": {"type": "string", "minLength": 1},
                },
            },
        },
    },
}
_VALIDATOR = Draft202012Validator(_RULES_SCHEMA)


def load_triage_rules(path: str | Path | None = None) -> TriageRules:
    """Load and validate triage rules (default: app/protocols/triage_rules.yaml)."""
    if path is None:
        return _default_rules()
    return _load_rules(Path(path))


@lru_cache(maxsize=1)
def _default_rules() -> TriageRules:
    return _load_rules(DEFAULT_RULES_PATH)


def _load_rules(path: Path) -> TriageRules:
    try:
        with path.open(encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise TriageRulesError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise TriageRulesError(f"{path}: not valid YAML: {exc}") from exc
    error = best_match(_VALIDATOR.iter_errors(doc))
    if error is not None:
        raise TriageRulesError(f"{path}: {_field_path(error.absolute_path)}: {error.message}")
    rules = tuple(TriageRule(r["id"], r["priority"], r["when"], r["reason"]) for r in doc["rules"])
    _check_rules(path, rules)
    return TriageRules(str(path), rules)


def _field_path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _check_rules(path: Path, rules: tuple[TriageRule, ...]) -> None:
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.id in seen:
            raise TriageRulesError(f"{path}: rules[{index}].id: duplicate rule id {rule.id!r}")
        seen.add(rule.id)
        try:
            rule.reason.format_map(_Placeholders())
        except (ValueError, IndexError, AttributeError, KeyError) as exc:
            raise TriageRulesError(
                f"{path}: rules[{index}].reason: bad placeholder in {rule.reason!r}: {exc}"
            ) from exc


class _Placeholders(dict):
    """Reason template values; unknown placeholders read as '?'."""

    def __missing__(self, key: str) -> str:
        return "?"


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Facts:
    parsed: ParsedReply
    previous: Mapping[str, int] | None
    context: TriageContext = TriageContext()


Match = dict[str, Any]


def _temperature_at_least(value: float, facts: _Facts) -> list[Match]:
    t = facts.parsed.temperature_c
    return [{"temperature": t, "threshold": value}] if t is not None and t >= value else []


def _temperature_below(value: float, facts: _Facts) -> list[Match]:
    t = facts.parsed.temperature_c
    return [{"temperature": t, "threshold": value}] if t is not None and t < value else []


def _temperature_missing(_value: bool, facts: _Facts) -> list[Match]:
    return [{}] if facts.parsed.temperature_c is None else []


def _symptom(spec: Mapping[str, Any], facts: _Facts) -> list[Match]:
    return [
        _mention_facts(m, facts)
        for m in facts.parsed.active_symptoms
        if _mention_matches(m, spec, facts.previous)
    ]


def _negated_symptom(code: str, facts: _Facts) -> list[Match]:
    active = {m.code for m in facts.parsed.active_symptoms}
    if facts.parsed.temperature_c is not None:
        active.add("fever")  # a reading was given: the nurse reads the number, never "no fever"
    return [
        _mention_facts(m, facts)
        for m in facts.parsed.negated_symptoms
        if (code == "*" or m.code == code) and m.code not in active
    ]


def _context(spec: Mapping[str, Any], facts: _Facts) -> list[Match]:
    ctx, unknown_ok = facts.context, bool(spec.get("when_unknown", False))
    checks = []
    for key in ("phase", "chemo", "pd1"):
        if key in spec:
            value = getattr(ctx, key)
            checks.append(unknown_ok if value is None else value in _as_list(spec[key]))
    days = ctx.days_since_infusion
    if "days_since_infusion_at_most" in spec:
        at_most = spec["days_since_infusion_at_most"]
        checks.append(unknown_ok if days is None else days <= at_most)
    if "days_since_infusion_at_least" in spec:
        at_least = spec["days_since_infusion_at_least"]
        checks.append(unknown_ok if days is None else days >= at_least)
    if not all(checks):
        return []
    return [
        {
            "phase": ctx.phase or "unknown phase",
            "chemo": ctx.chemo or "unknown chemotherapy",
            "days_since_infusion": "?" if days is None else days,
        }
    ]


def _flag(name: str, facts: _Facts) -> list[Match]:
    return [{"flag": name}] if name in facts.parsed.flags else []


def _intent(value: str | list[str], facts: _Facts) -> list[Match]:
    wanted = [value] if isinstance(value, str) else value
    return [{"intent": facts.parsed.intent}] if facts.parsed.intent in wanted else []


def _all(conditions: list[Mapping[str, Any]], facts: _Facts) -> list[Match]:
    merged: Match = {}
    for condition in conditions:
        matches = _evaluate(condition, facts)
        if not matches:
            return []
        merged = {**matches[0], **merged}
    return [merged]


def _any(conditions: list[Mapping[str, Any]], facts: _Facts) -> list[Match]:
    return [m for condition in conditions for m in _evaluate(condition, facts)]


_HANDLERS: dict[str, Callable[[Any, _Facts], list[Match]]] = {
    "temperature_at_least": _temperature_at_least,
    "temperature_below": _temperature_below,
    "temperature_missing": _temperature_missing,
    "symptom": _symptom,
    "negated_symptom": _negated_symptom,
    "flag": _flag,
    "intent": _intent,
    "context": _context,
    "all": _all,
    "any": _any,
}


def _evaluate(condition: Mapping[str, Any], facts: _Facts) -> list[Match]:
    ((key, value),) = condition.items()
    return _HANDLERS[key](value, facts)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_new(mention: SymptomMention, previous: Mapping[str, int] | None) -> bool:
    return previous is None or _previous_grade(previous, mention.code) <= 0


def _previous_grade(previous: Mapping[str, int], code: str) -> int:
    value = previous.get(code, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _mention_matches(
    mention: SymptomMention, spec: Mapping[str, Any], previous: Mapping[str, int] | None
) -> bool:
    checks = (
        spec["code"] == "*" or mention.code in _as_list(spec["code"]),
        "min_grade" not in spec
        or (mention.grade is not None and mention.grade >= spec["min_grade"]),
        "max_grade" not in spec
        or (mention.grade is not None and mention.grade <= spec["max_grade"]),
        "level" not in spec or mention.detail.get("level") in _as_list(spec["level"]),
        "ungraded" not in spec or (mention.grade is None) == spec["ungraded"],
        "new" not in spec or _is_new(mention, previous) == spec["new"],
        "worse_by" not in spec or _worse_by(mention, previous, spec["worse_by"]),
        "detail_at_least" not in spec or _detail_at_least(mention, spec["detail_at_least"]),
        "detail_missing" not in spec or spec["detail_missing"] not in mention.detail,
    )
    return all(checks)


def _worse_by(mention: SymptomMention, previous: Mapping[str, int] | None, points: int) -> bool:
    if previous is None or mention.grade is None:
        return False
    return mention.grade - _previous_grade(previous, mention.code) >= points


def _detail_at_least(mention: SymptomMention, minimums: Mapping[str, float]) -> bool:
    for key, minimum in minimums.items():
        value = mention.detail.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            return False
    return True


def _mention_facts(mention: SymptomMention, facts: _Facts) -> Match:
    values: Match = {
        key: value for key, value in mention.detail.items() if isinstance(value, str | int | float)
    }
    values.update(
        code=mention.code,
        grade="ungraded" if mention.grade is None else mention.grade,
        level=mention.detail.get("level", "unspecified"),
        evidence=_short(mention.evidence),
        previous="?" if facts.previous is None else _previous_grade(facts.previous, mention.code),
        temperature=facts.parsed.temperature_c,
    )
    return values


def _short(text: str, limit: int = 60) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- public API


def triage(
    parsed: ParsedReply,
    rules: TriageRules | None = None,
    *,
    previous_grades: Mapping[str, int] | None = None,
    context: TriageContext | None = None,
) -> TriageResult:
    """Priority of a parsed reply with its reasons; previous_grades enables the 'worse by' rules."""
    rule_set = rules or load_triage_rules()
    facts = _Facts(parsed, previous_grades, context or TriageContext())
    fired: list[tuple[int, str, str]] = []
    for rule in rule_set.rules:
        for match in _evaluate(rule.when, facts):
            text = rule.reason.format_map(_Placeholders(match))
            fired.append((PRIORITIES.index(rule.priority), rule.id, f"{rule.id}: {text}"))
    net = safety_net(parsed, facts.context)
    if net is not None and max((rank for rank, _, _ in fired), default=0) < _AMBER:
        fired.append((_AMBER, SAFETY_NET_REASON, net))
    if not fired:
        return TriageResult("none", (NO_CONTENT_REASON,), ())
    top = max(rank for rank, _, _ in fired)
    shown = [f for f in fired if f[0] >= min(top, PRIORITIES.index("amber"))]
    shown.sort(key=lambda f: -f[0])
    reasons = tuple(dict.fromkeys(reason for _, _, reason in shown))
    red = PRIORITIES.index("red")
    red_flags = tuple(dict.fromkeys(rule_id for rank, rule_id, _ in fired if rank == red))
    return TriageResult(PRIORITIES[top], reasons, red_flags)


_AMBER = PRIORITIES.index("amber")


def safety_net(parsed: ParsedReply, context: TriageContext | None = None) -> str | None:
    """The safety-net reason when a person must read what the parser could not, else None.

    Free text from an enrolled patient that is not clearly non-clinical and that the parser
    could not read in full (an unknown message, or clinical words left unread in a symptom
    report) is at least amber, whatever the word lists say.
    """
    if context is not None and not context.enrolled:
        return None
    if parsed.intent not in SAFETY_NET_INTENTS:
        return None
    if parsed.unread_hints:
        words = ", ".join(parsed.unread_hints[:5])
        return (
            f"{SAFETY_NET_REASON}: clinical words not understood ({words}): a person must read it"
        )
    if parsed.intent == "unknown" and not parsed.non_clinical:
        return f"{SAFETY_NET_REASON}: message not understood and not clearly non-clinical"
    return None


def classify(
    text: str,
    *,
    lang: str = "auto",
    context: ReplyContext | None = None,
    previous_grades: Mapping[str, int] | None = None,
    triage_context: TriageContext | None = None,
) -> dict[str, Any]:
    """The JSON object printed by `flask triage classify` for one message."""
    parsed = parse_reply(text, lang=lang, context=context)
    result = triage(parsed, previous_grades=previous_grades, context=triage_context)
    return {
        "text": _printable(parsed.text),
        "intent": parsed.intent,
        "symptoms": [{"code": m.code, "grade": m.grade} for m in parsed.active_symptoms],
        "temperature_c": parsed.temperature_c,
        "priority": result.priority,
        "reasons": list(result.reasons),
    }


def _printable(text: str) -> str:
    """The text with lone surrogates replaced, so it can always be encoded as UTF-8 JSON."""
    return re.sub("[\ud800-\udfff]", "\ufffd", text if isinstance(text, str) else str(text))


def explain(
    text: str,
    *,
    lang: str = "auto",
    context: ReplyContext | None = None,
    triage_context: TriageContext | None = None,
) -> dict[str, Any]:
    """Every step from text to priority, for `flask triage explain` (the study team's view)."""
    parsed = parse_reply(text, lang=lang, context=context)
    result = triage(parsed, context=triage_context)
    reading = explain_reply(text)
    return {
        **reading,
        "language": parsed.language,
        "intent": parsed.intent,
        "symptoms": [
            {"code": m.code, "grade": m.grade, "evidence": m.evidence, "detail": m.detail}
            for m in parsed.active_symptoms
        ],
        "negated": [m.code for m in parsed.negated_symptoms],
        "flags": list(parsed.flags),
        "temperature_c": parsed.temperature_c,
        "unread_clinical_words": list(parsed.unread_hints),
        "non_clinical": parsed.non_clinical,
        "rules_fired": list(result.reasons),
        "safety_net": safety_net(parsed, triage_context),
        "priority": result.priority,
    }
