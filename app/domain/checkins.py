"""Symptom check-ins: questionnaire, branching, compact replies, PRO-CTCAE grades, triage input.

The questionnaire is data: the ``checkins:`` section of the protocol file (see the comments
there). This module loads it into typed objects, chooses the items for a patient's arm and
phase, decides the next question (PRO-CTCAE branching), reads a whole check-in sent as one
compact reply ("D2 S1 F37.2"), grades answers with the PRO-CTCAE composite grade (Basch et al.,
Clin Trials 2021) and turns graded answers into a ``ParsedReply`` so that check-ins go through
the same triage rules (app/protocols/triage_rules.yaml) as free-text replies.

Answers are a mapping from question code to value: an int 0-4 on the PRO-CTCAE scales, 0/1 for
yes/no and presence, and for the temperature question 0 (no fever), 1 (feels feverish, no
reading) or a temperature in degrees C as a float.

Pure domain code: standard library, PyYAML (through the protocol) and jsonschema only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from app.domain.protocol import PHASE_NAMES, Protocol
from app.domain.replies import SYMPTOM_CODES, ParsedReply, SymptomMention, load_vocabulary
from app.domain.triage import TriageContext, TriageResult, TriageRules, triage

Answer = int | float
"""One answer: a 0-4 score, 0/1, or a temperature in degrees C."""

KINDS = ("pro_ctcae", "custom")
PRO_CTCAE_GRADINGS: dict[tuple[str, ...], str] = {
    ("frequency",): "frequency",
    ("severity",): "severity",
    ("presence",): "presence",
    ("frequency", "severity"): "frequency_severity",
    ("severity", "interference"): "severity_interference",
}
"""Attribute sequences of PRO-CTCAE items with a published composite table, and their names."""
SCALE_SIZES = {
    "frequency": 5,
    "severity": 5,
    "interference": 5,
    "presence": 2,
    "yes_no": 2,
    "temperature": 2,
}
"""Number of numbered answers (0..n-1) of each attribute's scale."""
LANGUAGES = ("en", "zh")

# ----------------------------------------------------------------- composite grade tables
# Basch E, et al. Composite grading algorithm for the NCI's PRO-CTCAE. Clin Trials 2021;18:104-114
# (as summarised in the project's clinical README, section 5). Index = attribute score 0-4.
FREQUENCY_ONLY = (0, 1, 1, 2, 3)
SEVERITY_ONLY = (0, 1, 2, 3, 3)
FREQUENCY_X_SEVERITY = {  # rows: frequency 1-4; columns: severity 0-4
    1: (1, 1, 1, 2, 2),
    2: (1, 1, 2, 2, 2),
    3: (1, 1, 2, 3, 3),
    4: (1, 1, 2, 3, 3),
}
SEVERITY_X_INTERFERENCE = {  # rows: severity 1-4; columns: interference 0-4
    1: (1, 1, 1, 2, 2),
    2: (1, 1, 2, 2, 3),
    3: (1, 2, 2, 3, 3),
    4: (2, 2, 2, 3, 3),
}
PRESENCE_ONLY = (0, 1)
"""ASSUMPTION: a yes/no PRO-CTCAE item (rash) has no published table; "yes" is graded 1."""
_SINGLE_TABLES = {"frequency": FREQUENCY_ONLY, "severity": SEVERITY_ONLY, "presence": PRESENCE_ONLY}


class CheckinsError(ValueError):
    """The check-in section is invalid; the message names the source and the field."""

    def __init__(self, source: str, field_name: str, problem: str) -> None:
        self.source = source
        self.field = field_name
        self.problem = problem
        super().__init__(f"{source}: {field_name}: {problem}")


class AnswerError(ValueError):
    """Answers that cannot be graded (unknown code or value out of range); lists the problems."""

    def __init__(self, problems: Sequence[AnswerProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.message for p in self.problems))


# --------------------------------------------------------------------------- typed objects


@dataclass(frozen=True)
class Condition:
    """One set of requirements of a ``when``: every given key must hold."""

    phases: frozenset[str] | None = None
    choices: tuple[tuple[str, frozenset[str]], ...] = ()

    def holds(self, choices: Mapping[str, str], phase: str) -> bool:
        """True when the patient's choices and the check-in's phase meet every requirement."""
        if self.phases is not None and phase not in self.phases:
            return False
        return all(choices.get(name) in allowed for name, allowed in self.choices)


def _applies(when: tuple[Condition, ...], choices: Mapping[str, str], phase: str) -> bool:
    """No conditions: always; otherwise any one condition must hold."""
    return not when or any(c.holds(choices, phase) for c in when)


@dataclass(frozen=True)
class ItemGuidance:
    """Advice shown with an item's first question (e.g. diarrhoea tablets for irinotecan)."""

    code: str
    text_en: str
    text_zh: str
    when: tuple[Condition, ...] = ()

    def text(self, lang: str) -> str:
        """The advice in ``lang`` (zh, otherwise English)."""
        return self.text_zh if lang == "zh" else self.text_en


@dataclass(frozen=True)
class Question:
    """One question of an item: one attribute with numbered answers (or a temperature)."""

    item_code: str
    code: str
    attribute: str
    position: int
    text_en: str
    text_zh: str
    labels_en: tuple[str, ...]
    labels_zh: tuple[str, ...]
    title_en: str
    title_zh: str
    reply_en: str = "Reply"
    reply_zh: str = "回复"
    levels: tuple[tuple[int, str], ...] = ()
    grade_if_yes: int | None = None
    temperature_min: float = 34.0
    temperature_max: float = 43.0

    @property
    def max_score(self) -> int:
        """Highest numbered answer (4 on PRO-CTCAE scales, 1 for yes/no)."""
        return len(self.labels_en) - 1

    @property
    def is_temperature(self) -> bool:
        """True for the temperature question (a number in C, or 0/1 without a thermometer)."""
        return self.attribute == "temperature"

    def text(self, lang: str) -> str:
        """The question in ``lang`` (zh, otherwise English)."""
        return self.text_zh if lang == "zh" else self.text_en

    def title(self, lang: str) -> str:
        """Short name of what this question asks (for code lists, tables and charts)."""
        return self.title_zh if lang == "zh" else self.title_en

    def labels(self, lang: str) -> tuple[str, ...]:
        """Answer labels 0..max in ``lang``."""
        return self.labels_zh if lang == "zh" else self.labels_en

    def options(self, lang: str) -> list[tuple[int, str]]:
        """Numbered answers as (value, label)."""
        return list(enumerate(self.labels(lang)))

    def level(self, score: Answer) -> str | None:
        """The vocabulary level an answer implies (e.g. swallowing 4 -> cannot_swallow_liquids)."""
        return dict(self.levels).get(int(score)) if float(score).is_integer() else None

    def sms_text(self, lang: str) -> str:
        """One SMS: the question and its numbered answers (no signature, no greeting)."""
        if lang == "zh":
            options = "，".join(f"{value}{label}" for value, label in self.options("zh"))
            return f"{self.text_zh}{self.reply_zh}{options}"
        options = ", ".join(f"{value} {label}" for value, label in self.options("en"))
        return f"{self.text_en} {self.reply_en} {options}"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a valid answer to this question, or None when it is."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{self.code}: answer must be a number, got {value!r}"
        if value != value:  # NaN
            return f"{self.code}: answer must be a number, got {value!r}"
        if self.is_temperature and value not in (0, 1):
            if self.temperature_min <= value <= self.temperature_max:
                return None
            return (
                f"{self.code}={_show(value)} is out of range: reply 0 (no fever), 1 (feel "
                f"feverish) or a temperature from {_show(self.temperature_min)} to "
                f"{_show(self.temperature_max)} C"
            )
        if not float(value).is_integer():
            return f"{self.code}={_show(value)} is not a whole number from 0 to {self.max_score}"
        if not 0 <= value <= self.max_score:
            return f"{self.code}={_show(value)} is out of range: answers are 0 to {self.max_score}"
        return None

    def coerce(self, value: Answer) -> Answer:
        """A valid answer in canonical form (int scores, float temperatures); ValueError if bad."""
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(problem)
        if self.is_temperature and value not in (0, 1):
            return round(float(value), 1)
        return int(value)


@dataclass(frozen=True)
class CheckinItem:
    """A symptom item: its questions (attributes in branching order), mapping and conditions."""

    code: str
    kind: str
    symptom: str
    ctcae_term: str | None
    title_en: str
    title_zh: str
    questions: tuple[Question, ...]
    pro_ctcae_item: int | None = None
    pro_ctcae_term: str | None = None
    when: tuple[Condition, ...] = ()
    guidance: tuple[ItemGuidance, ...] = ()

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attributes of the questions, in order (e.g. ('frequency', 'severity'))."""
        return tuple(q.attribute for q in self.questions)

    @property
    def grading(self) -> str:
        """How the item is graded: a PRO-CTCAE table name, or 'custom'."""
        return PRO_CTCAE_GRADINGS.get(self.attributes, "custom")

    def title(self, lang: str) -> str:
        """Short name of the symptom in ``lang``."""
        return self.title_zh if lang == "zh" else self.title_en

    def question(self, code: str) -> Question | None:
        """This item's question with ``code``."""
        return next((q for q in self.questions if q.code == code.upper()), None)


@dataclass(frozen=True)
class Questionnaire:
    """The validated check-in section of a protocol."""

    source: str
    version: int
    label_en: str
    label_zh: str
    intro_en: str
    intro_zh: str
    items: tuple[CheckinItem, ...]

    def label(self, lang: str) -> str:
        """'adapted from PRO-CTCAE' in ``lang``."""
        return self.label_zh if lang == "zh" else self.label_en

    def intro(self, lang: str) -> str:
        """The first message of a check-in in ``lang``."""
        return self.intro_zh if lang == "zh" else self.intro_en

    def item(self, code: str) -> CheckinItem | None:
        """The item with ``code``."""
        return next((i for i in self.items if i.code == code.upper()), None)


@dataclass(frozen=True)
class AnswerProblem:
    """Something wrong with an answer: unknown code, out of range, contradiction, unreadable."""

    kind: str
    code: str
    value: str
    message: str


ANSWER_PROBLEM_KINDS = (
    "unknown_code",
    "out_of_range",
    "not_applicable",
    "conflicting",
    "ambiguous",
    "unreadable",
)


@dataclass(frozen=True)
class CompactReply:
    """A check-in answered in one message: the valid answers and every problem found.

    ``recognised`` is True when at least one of the check-in's codes was found: otherwise the
    message is better read as free text (app.domain.replies.parse_reply).
    """

    answers: dict[str, Answer]
    problems: tuple[AnswerProblem, ...] = ()
    recognised: bool = False

    @property
    def ok(self) -> bool:
        """True when codes were found and nothing was wrong."""
        return self.recognised and not self.problems


@dataclass(frozen=True)
class GradedAnswer:
    """One item's answers with the PRO-CTCAE composite grade and the grade used for triage."""

    item: CheckinItem
    scores: dict[str, Answer]
    composite_grade: int | None
    grade: int | None
    present: bool
    complete: bool
    level: str | None = None
    temperature_c: float | None = None

    @property
    def symptom(self) -> str:
        """Symptom code (app/domain/replies.SYMPTOM_CODES)."""
        return self.item.symptom

    @property
    def ctcae_term(self) -> str | None:
        """CTCAE v5 term the item maps to (None for skin nodules: no CTCAE term)."""
        return self.item.ctcae_term

    @property
    def evidence(self) -> str:
        """The answers as codes, e.g. 'check-in N=2 NS=1'."""
        return "check-in " + " ".join(f"{code}={_show(v)}" for code, v in self.scores.items())

    def score(self, attribute: str) -> Answer | None:
        """The answer for an attribute (frequency, severity, ...), if given."""
        for question in self.item.questions:
            if question.attribute == attribute and question.code in self.scores:
                return self.scores[question.code]
        return None


# --------------------------------------------------------------------------- loading

_TEXT = {"type": "string", "minLength": 1}
_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}
_CODE = {"type": "string", "pattern": "^[A-Z]{1,3}$"}
_SCHEMA: dict[str, Any] = {
    "$defs": {
        "labels": {"type": "array", "items": _TEXT, "minItems": 2, "maxItems": 5},
        "condition": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "phases": {"type": "array", "items": _NAME, "minItems": 1},
                "choices": {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": _NAME,
                    "additionalProperties": {"type": "array", "items": _NAME, "minItems": 1},
                },
            },
        },
        "when": {
            "oneOf": [
                {"$ref": "#/$defs/condition"},
                {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
            ]
        },
        "scale": {
            "type": "object",
            "required": ["labels_en", "labels_zh"],
            "additionalProperties": False,
            "properties": {
                "labels_en": {"$ref": "#/$defs/labels"},
                "labels_zh": {"$ref": "#/$defs/labels"},
            },
        },
        "guidance": {
            "type": "object",
            "required": ["code", "text_en", "text_zh"],
            "additionalProperties": False,
            "properties": {
                "code": _NAME,
                "text_en": _TEXT,
                "text_zh": _TEXT,
                "when": {"$ref": "#/$defs/when"},
            },
        },
        "question": {
            "type": "object",
            "required": ["code", "attribute", "text_en", "text_zh"],
            "additionalProperties": False,
            "properties": {
                "code": _CODE,
                "attribute": {"enum": list(SCALE_SIZES)},
                "text_en": _TEXT,
                "text_zh": _TEXT,
                "title_en": _TEXT,
                "title_zh": _TEXT,
                "labels_en": {"$ref": "#/$defs/labels"},
                "labels_zh": {"$ref": "#/$defs/labels"},
                "levels": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": _NAME,
                },
                "grade_if_yes": {
                    "oneOf": [{"type": "null"}, {"type": "integer", "minimum": 0, "maximum": 4}]
                },
            },
        },
        "item": {
            "type": "object",
            "required": ["code", "kind", "symptom", "title_en", "title_zh", "questions"],
            "additionalProperties": False,
            "properties": {
                "code": _CODE,
                "kind": {"enum": list(KINDS)},
                "symptom": {"enum": list(SYMPTOM_CODES)},
                "ctcae_term": {"oneOf": [{"type": "null"}, _TEXT]},
                "title_en": _TEXT,
                "title_zh": _TEXT,
                "pro_ctcae_item": {"type": "integer", "minimum": 1},
                "pro_ctcae_term": _TEXT,
                "when": {"$ref": "#/$defs/when"},
                "guidance": {"type": "array", "items": {"$ref": "#/$defs/guidance"}},
                "questions": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/question"},
                    "minItems": 1,
                    "maxItems": 3,
                },
            },
        },
    },
    "type": "object",
    "required": ["version", "label_en", "label_zh", "intro_en", "intro_zh", "scales", "items"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "label_en": _TEXT,
        "label_zh": _TEXT,
        "intro_en": _TEXT,
        "intro_zh": _TEXT,
        "reply_en": _TEXT,
        "reply_zh": _TEXT,
        "temperature_range": {
            "type": "object",
            "required": ["min", "max"],
            "additionalProperties": False,
            "properties": {"min": {"type": "number"}, "max": {"type": "number"}},
        },
        "scales": {
            "type": "object",
            "required": list(SCALE_SIZES),
            "additionalProperties": False,
            "properties": {name: {"$ref": "#/$defs/scale"} for name in SCALE_SIZES},
        },
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1},
    },
}
_VALIDATOR = Draft202012Validator(_SCHEMA)
_CACHE: dict[int, tuple[Any, Questionnaire]] = {}


def load_checkins(source: Protocol | Mapping[str, Any] | Questionnaire) -> Questionnaire:
    """The validated questionnaire of a protocol (or of a bare ``checkins`` section mapping)."""
    if isinstance(source, Questionnaire):
        return source
    section, name, phases, choices = _section_of(source)
    cached = _CACHE.get(id(section))
    if cached is not None and cached[0] is section:
        return cached[1]
    questionnaire = _Builder(section, name, phases, choices).build()
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[id(section)] = (section, questionnaire)
    return questionnaire


def _section_of(source: Protocol | Mapping[str, Any]) -> tuple[Any, str, set[str], dict]:
    """The raw section, a name for messages, the known phases and the known choices."""
    if isinstance(source, Protocol):
        if "checkins" not in source.raw:
            raise CheckinsError(str(source.path), "checkins", "this protocol has no check-ins")
        choices = {code: set(c.options) for code, c in source.choices.items()}
        return source.raw["checkins"], str(source.path), set(source.phases), choices
    return source, "checkins section", set(PHASE_NAMES), {}


class _Builder:
    """Turns the schema-valid section into typed objects, checking what a schema cannot."""

    def __init__(self, raw: Any, source: str, phases: set[str], choices: dict) -> None:
        self.raw = raw
        self.source = source
        self.phases = phases
        self.choices = choices

    def fail(self, field_name: str, problem: str) -> CheckinsError:
        """An error naming ``checkins.<field>``."""
        return CheckinsError(self.source, f"checkins.{field_name}".rstrip("."), problem)

    def build(self) -> Questionnaire:
        """The questionnaire, or CheckinsError on the first problem."""
        if not isinstance(self.raw, Mapping):
            raise self.fail("", f"expected a mapping, got {type(self.raw).__name__}")
        error = best_match(_VALIDATOR.iter_errors(self.raw))
        if error is not None:
            raise self.fail(_field_path(error.absolute_path), _explain(error))
        temperature = self.raw.get("temperature_range", {"min": 34.0, "max": 43.0})
        if not 1 < temperature["min"] < temperature["max"]:
            raise self.fail("temperature_range", "expected 1 < min < max (degrees C)")
        items = tuple(self._item(raw, f"items[{i}]") for i, raw in enumerate(self.raw["items"]))
        self._check_unique(items)
        return Questionnaire(
            source=self.source,
            version=self.raw["version"],
            label_en=self.raw["label_en"],
            label_zh=self.raw["label_zh"],
            intro_en=self.raw["intro_en"],
            intro_zh=self.raw["intro_zh"],
            items=items,
        )

    def _check_unique(self, items: tuple[CheckinItem, ...]) -> None:
        seen: dict[str, str] = {}
        for i, item in enumerate(items):
            for j, question in enumerate(item.questions):
                where = f"items[{i}].questions[{j}].code"
                if question.code in seen:
                    raise self.fail(
                        where,
                        f"duplicate question code {question.code!r} (already used by item "
                        f"{seen[question.code]!r}); compact replies need unique codes",
                    )
                seen[question.code] = item.code

    def _item(self, raw: Mapping[str, Any], where: str) -> CheckinItem:
        attributes = tuple(q["attribute"] for q in raw["questions"])
        self._check_attributes(raw["kind"], attributes, where)
        if raw["questions"][0]["code"] != raw["code"]:
            raise self.fail(
                f"{where}.questions[0].code",
                f"the first question must have the item's code {raw['code']!r}, "
                f"got {raw['questions'][0]['code']!r}",
            )
        if raw["kind"] == "pro_ctcae" and "pro_ctcae_item" not in raw:
            raise self.fail(f"{where}.pro_ctcae_item", "required for a pro_ctcae item")
        questions = tuple(
            self._question(raw, q, position, f"{where}.questions[{position}]")
            for position, q in enumerate(raw["questions"])
        )
        return CheckinItem(
            code=raw["code"],
            kind=raw["kind"],
            symptom=raw["symptom"],
            ctcae_term=raw.get("ctcae_term"),
            title_en=raw["title_en"],
            title_zh=raw["title_zh"],
            questions=questions,
            pro_ctcae_item=raw.get("pro_ctcae_item"),
            pro_ctcae_term=raw.get("pro_ctcae_term"),
            when=self._when(raw.get("when"), f"{where}.when"),
            guidance=tuple(
                ItemGuidance(
                    code=g["code"],
                    text_en=g["text_en"],
                    text_zh=g["text_zh"],
                    when=self._when(g.get("when"), f"{where}.guidance[{k}].when"),
                )
                for k, g in enumerate(raw.get("guidance", []))
            ),
        )

    def _check_attributes(self, kind: str, attributes: tuple[str, ...], where: str) -> None:
        if kind == "pro_ctcae":
            if attributes not in PRO_CTCAE_GRADINGS:
                allowed = "; ".join(", ".join(a) for a in PRO_CTCAE_GRADINGS)
                raise self.fail(
                    f"{where}.questions",
                    f"attributes {', '.join(attributes)} have no composite grading table "
                    f"(supported: {allowed})",
                )
            return
        if attributes == ("temperature",) or set(attributes) == {"yes_no"}:
            return
        raise self.fail(
            f"{where}.questions",
            "a custom item asks either one temperature question or yes_no questions, got "
            + ", ".join(attributes),
        )

    def _question(
        self, item: Mapping[str, Any], raw: Mapping[str, Any], position: int, where: str
    ) -> Question:
        attribute = raw["attribute"]
        scale = self.raw["scales"][attribute]
        labels = {
            lang: tuple(raw.get(f"labels_{lang}", scale[f"labels_{lang}"])) for lang in LANGUAGES
        }
        size = SCALE_SIZES[attribute]
        for lang in LANGUAGES:
            if len(labels[lang]) != size:
                key = f"labels_{lang}"
                raise self.fail(
                    f"{where}.{key}" if key in raw else f"scales.{attribute}.{key}",
                    f"expected {size} labels (answers 0-{size - 1}), got {len(labels[lang])}",
                )
        if "grade_if_yes" in raw and attribute != "yes_no":
            raise self.fail(f"{where}.grade_if_yes", "only yes_no questions have grade_if_yes")
        levels = self._levels(item["symptom"], raw.get("levels", {}), size, f"{where}.levels")
        temperature = self.raw.get("temperature_range", {"min": 34.0, "max": 43.0})
        first = position == 0
        return Question(
            item_code=item["code"],
            code=raw["code"],
            attribute=attribute,
            position=position,
            text_en=raw["text_en"],
            text_zh=raw["text_zh"],
            labels_en=labels["en"],
            labels_zh=labels["zh"],
            title_en=raw.get("title_en")
            or (item["title_en"] if first else f"{item['title_en']} ({attribute})"),
            title_zh=raw.get("title_zh")
            or (item["title_zh"] if first else f"{item['title_zh']}（{_ATTRIBUTE_ZH[attribute]}）"),
            reply_en=self.raw.get("reply_en", "Reply"),
            reply_zh=self.raw.get("reply_zh", "回复"),
            levels=levels,
            grade_if_yes=raw.get("grade_if_yes"),
            temperature_min=float(temperature["min"]),
            temperature_max=float(temperature["max"]),
        )

    def _levels(
        self, symptom: str, raw: Mapping[Any, str], size: int, where: str
    ) -> tuple[tuple[int, str], ...]:
        known = {lv.name for lv in getattr(load_vocabulary().symptoms.get(symptom), "levels", ())}
        levels = []
        for key, name in raw.items():
            score = int(key) if str(key).isdigit() else None
            if score is None or not 0 < score < size:
                raise self.fail(f"{where}.{key}", f"expected an answer from 1 to {size - 1}")
            if name not in known:
                allowed = ", ".join(sorted(known)) or "none"
                raise self.fail(
                    f"{where}.{key}",
                    f"unknown level {name!r} of {symptom} (vocabulary levels: {allowed})",
                )
            levels.append((score, name))
        return tuple(sorted(levels))

    def _when(self, raw: Any, where: str) -> tuple[Condition, ...]:
        if raw is None:
            return ()
        alternatives = raw if isinstance(raw, list) else [raw]
        return tuple(
            self._condition(c, f"{where}[{i}]" if isinstance(raw, list) else where)
            for i, c in enumerate(alternatives)
        )

    def _condition(self, raw: Mapping[str, Any], where: str) -> Condition:
        for phase in raw.get("phases", []):
            if phase not in self.phases:
                raise self.fail(
                    f"{where}.phases",
                    f"unknown phase {phase!r} (known: {', '.join(sorted(self.phases))})",
                )
        for name, options in raw.get("choices", {}).items():
            if not self.choices:
                break
            if name not in self.choices:
                known = ", ".join(sorted(self.choices))
                raise self.fail(f"{where}.choices.{name}", f"unknown choice (known: {known})")
            for option in options:
                if option not in self.choices[name]:
                    known = ", ".join(sorted(self.choices[name]))
                    raise self.fail(
                        f"{where}.choices.{name}", f"unknown option {option!r} (known: {known})"
                    )
        phases = frozenset(raw["phases"]) if "phases" in raw else None
        choices = tuple(sorted((k, frozenset(v)) for k, v in raw.get("choices", {}).items()))
        return Condition(phases, choices)


_ATTRIBUTE_ZH = {
    "frequency": "频率",
    "severity": "程度",
    "interference": "影响",
    "presence": "有无",
    "yes_no": "有无",
    "temperature": "体温",
}


def _field_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _explain(error: ValidationError) -> str:
    """What the schema expected, in words."""
    if error.validator == "required":
        return f"missing required field {str(error.message).split(chr(39))[1]!r}"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        return f"{error.message} (known fields: {', '.join(known)})"
    if error.validator == "pattern" and error.schema.get("pattern") == _CODE["pattern"]:
        return f"expected a code of 1 to 3 capital letters, got {error.instance!r}"
    if error.validator == "pattern":
        return f"expected a lower-case name, got {error.instance!r}"
    return f"expected {_describe(error)}, got {error.instance!r}"


def _describe(error: ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "enum":
        return "one of " + ", ".join(map(str, schema["enum"]))
    if error.validator == "oneOf":
        return "a condition mapping (phases, choices) or a list of them, or a valid value"
    return str(error.message)


# --------------------------------------------------------------------------- choosing items


def items_for(
    source: Protocol | Mapping[str, Any] | Questionnaire,
    choices: Mapping[str, str],
    phase: str,
    *,
    kinds: Iterable[str] | None = None,
) -> list[CheckinItem]:
    """Items asked of a patient with ``choices`` at a check-in in ``phase``, guidance filtered."""
    questionnaire = load_checkins(source)
    known = set(source.phases) if isinstance(source, Protocol) else set(PHASE_NAMES)
    if phase not in known:
        raise ValueError(f"unknown phase {phase!r} (known: {', '.join(sorted(known))})")
    if isinstance(source, Protocol):
        chosen = source.validate_choices(choices)
    else:
        chosen = {str(k).strip().lower(): str(v).strip().lower() for k, v in choices.items()}
    wanted = set(KINDS if kinds is None else kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown item kind(s) {sorted(unknown)} (known: {', '.join(KINDS)})")
    return [
        replace(item, guidance=tuple(g for g in item.guidance if _applies(g.when, chosen, phase)))
        for item in questionnaire.items
        if item.kind in wanted and _applies(item.when, chosen, phase)
    ]


# --------------------------------------------------------------------------- branching


def _normalised(answers: Mapping[str, Any]) -> dict[str, Any]:
    return {str(code).strip().upper(): value for code, value in answers.items()}


def _is_positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def applicable_questions(
    items: Sequence[CheckinItem], answers: Mapping[str, Answer]
) -> list[Question]:
    """Questions to ask given the answers so far: a follow-up only after an answer above 0."""
    given = _normalised(answers)
    found: list[Question] = []
    for item in items:
        for question in item.questions:
            found.append(question)
            if question.code not in given or not _is_positive(given[question.code]):
                break
    return found


def next_question(items: Sequence[CheckinItem], answers: Mapping[str, Answer]) -> Question | None:
    """The next unanswered question (PRO-CTCAE branching), or None when the check-in is done."""
    given = _normalised(answers)
    return next((q for q in applicable_questions(items, given) if q.code not in given), None)


def is_complete(items: Sequence[CheckinItem], answers: Mapping[str, Answer]) -> bool:
    """True when every question that applies has an answer."""
    return next_question(items, answers) is None


def check_answers(items: Sequence[CheckinItem], answers: Mapping[str, Any]) -> list[AnswerProblem]:
    """Problems with answers: unknown codes, values out of range, follow-ups after a 0."""
    given = _normalised(answers)
    questions = {q.code: q for item in items for q in item.questions}
    problems: list[AnswerProblem] = []
    for code, value in given.items():
        question = questions.get(code)
        if question is None:
            problems.append(_unknown_code(code, _show(value), items))
            continue
        problem = question.problem(value)
        if problem is not None:
            problems.append(AnswerProblem("out_of_range", code, _show(value), problem))
    problems += _contradictions(items, given)
    return problems


def _contradictions(items: Sequence[CheckinItem], given: Mapping[str, Any]) -> list[AnswerProblem]:
    """Follow-up answers given although the previous answer of their item was 0."""
    problems = []
    for item in items:
        for before, after in zip(item.questions, item.questions[1:], strict=False):
            if before.code in given and after.code in given and given[before.code] == 0:
                problems.append(
                    AnswerProblem(
                        "not_applicable",
                        after.code,
                        _show(given[after.code]),
                        f"{after.code}={_show(given[after.code])} contradicts "
                        f"{before.code}=0 ({item.title_en}: {before.labels_en[0]})",
                    )
                )
    return problems


def _unknown_code(code: str, value: str, items: Sequence[CheckinItem]) -> AnswerProblem:
    known = " ".join(q.code for item in items for q in item.questions)
    return AnswerProblem(
        "unknown_code", code, value, f"unknown code {code!r} (this check-in's codes: {known})"
    )


# --------------------------------------------------------------------------- compact replies

_SEPARATORS = " \t\r\n,;/&+|.-、，。；！!?？~～"
_TOKEN = re.compile(
    r"(?<![A-Z])(?P<code>[A-Z]{1,3})\s*[:=\-]?\s*(?P<value>\d{1,3}(?:\.\d+)?)"
    r"(?P<unit>\s*(?:°C|°|度)|C(?![A-Z]|\s*[:=\-]?\s*\d))?"
)


def _normalise_compact(text: str) -> str:
    """Full-width characters to ASCII (NFKC), upper case, ℃ to °C."""
    return unicodedata.normalize("NFKC", text).upper().replace("℃", "°C")


def parse_compact(reply: str | Mapping[str, int], items: Sequence[CheckinItem]) -> CompactReply:
    """Read a whole check-in sent as codes ("D2 S1 F37.2", "d2s1f0", full-width too).

    Never guesses: unknown codes, values out of range, conflicting repeats, follow-ups that
    contradict a 0 and any text that is not a code are returned as problems, and only the
    valid answers are kept. ``reply`` may also be ``ParsedReply.codes``.
    """
    if isinstance(reply, Mapping):
        pairs = [(str(k).upper(), str(v), v) for k, v in reply.items()]
        return _compact_result(pairs, [], items)
    text = _normalise_compact(reply if isinstance(reply, str) else str(reply))
    pairs: list[tuple[str, str, Any]] = []
    problems: list[AnswerProblem] = []
    position = 0
    questions = {q.code: q for item in items for q in item.questions}
    for match in _TOKEN.finditer(text):
        problems += _gap_problems(text[position : match.start()])
        raw = match.group("value")
        value: Any = float(raw) if "." in raw else int(raw)
        question = questions.get(match.group("code"))
        following = text[match.end() : match.end() + 2]
        if question is not None and question.is_temperature and re.fullmatch(r",\d", following):
            problems.append(
                AnswerProblem(
                    "ambiguous",
                    question.code,
                    raw + following,
                    f"{question.code}{raw}{following}: write temperatures with a point, "
                    f"e.g. {question.code}{raw}.{following[1]}",
                )
            )
            position = match.end() + 2
            continue
        if match.group("unit") and (question is None or not question.is_temperature):
            unit = match.group("unit").strip()
            problems.append(
                AnswerProblem(
                    "unreadable", match.group("code"), raw + unit, f"could not read {unit!r}"
                )
            )
        pairs.append((match.group("code"), raw, value))
        position = match.end()
    problems += _gap_problems(text[position:])
    return _compact_result(pairs, problems, items)


def _gap_problems(gap: str) -> list[AnswerProblem]:
    fragment = gap.strip(_SEPARATORS)
    if not fragment:
        return []
    return [AnswerProblem("unreadable", "", fragment, f"could not read {fragment!r} as a code")]


def _compact_result(
    pairs: list[tuple[str, str, Any]],
    problems: list[AnswerProblem],
    items: Sequence[CheckinItem],
) -> CompactReply:
    questions = {q.code: q for item in items for q in item.questions}
    recognised = any(code in questions for code, _, _ in pairs)
    answers: dict[str, Answer] = {}
    raw_values: dict[str, str] = {}
    conflicting: set[str] = set()
    for code, raw, value in pairs:
        question = questions.get(code)
        if question is None:
            problems.append(_unknown_code(code, raw, items))
            continue
        problem = question.problem(value)
        if problem is not None:
            problems.append(AnswerProblem("out_of_range", code, raw, problem))
            continue
        value = question.coerce(value)
        if code in answers and answers[code] != value:
            problems.append(
                AnswerProblem(
                    "conflicting",
                    code,
                    f"{raw_values[code]}/{raw}",
                    f"{code} answered twice with different values "
                    f"({raw_values[code]} and {raw}): neither was kept",
                )
            )
            conflicting.add(code)
        answers.setdefault(code, value)
        raw_values.setdefault(code, raw)
    for code in conflicting:
        answers.pop(code, None)
    contradictions = _contradictions(items, answers)
    for problem in contradictions:
        answers.pop(problem.code, None)
    ordered = {
        q.code: answers[q.code] for item in items for q in item.questions if q.code in answers
    }
    return CompactReply(ordered, tuple(problems + contradictions), recognised)


def compact_help(items: Sequence[CheckinItem], lang: str = "en") -> str:
    """The codes of these items, e.g. 'F temperature; D diarrhoea; N nausea; NS nausea (severity)'."""
    separator = "；" if lang == "zh" else "; "
    return separator.join(f"{q.code} {q.title(lang)}" for item in items for q in item.questions)


# --------------------------------------------------------------------------- grading


def composite_grade(item: CheckinItem, attribute_scores: Mapping[str, int]) -> int:
    """PRO-CTCAE composite grade 0-3 (Basch et al. 2021) from attribute scores 0-4.

    The first attribute 0 gives 0 whatever the rest. When only the first attribute is known
    (the follow-up is unanswered) its single-attribute table is used.
    """
    if item.grading == "custom":
        raise ValueError(f"{item.code}: a custom item has no PRO-CTCAE composite grade")
    unknown = set(attribute_scores) - set(item.attributes)
    if unknown:
        raise ValueError(f"{item.code}: unknown attribute(s) {sorted(unknown)}")
    scores = [attribute_scores.get(attribute) for attribute in item.attributes]
    for attribute, score in zip(item.attributes, scores, strict=True):
        limit = SCALE_SIZES[attribute] - 1
        if score is not None and (
            isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= limit
        ):
            raise ValueError(
                f"{item.code}: {attribute} must be an integer 0-{limit}, got {score!r}"
            )
    first = scores[0]
    if first is None:
        raise ValueError(f"{item.code}: {item.attributes[0]} is needed for the composite grade")
    if first == 0:
        return 0
    if len(scores) == 1 or scores[1] is None:
        return _SINGLE_TABLES[item.attributes[0]][first]
    table = (
        FREQUENCY_X_SEVERITY if item.grading == "frequency_severity" else SEVERITY_X_INTERFERENCE
    )
    return table[first][scores[1]]


def grade_answers(
    items: Sequence[CheckinItem], answers: Mapping[str, Answer]
) -> list[GradedAnswer]:
    """Grade every item with at least one answer; AnswerError for unknown codes or bad values.

    Only answers on the branching path count (a follow-up after a 0 is ignored). A follow-up
    answered while the first question is not gives a present, ungraded symptom, so that a
    person assesses it.
    """
    given = _normalised(answers)
    problems = [p for p in check_answers(items, given) if p.kind != "not_applicable"]
    if problems:
        raise AnswerError(problems)
    graded = []
    for item in items:
        result = _grade_item(item, given)
        if result is not None:
            graded.append(result)
    return graded


def _grade_item(item: CheckinItem, given: Mapping[str, Any]) -> GradedAnswer | None:
    path: dict[str, Answer] = {}
    for question in item.questions:
        if question.code not in given:
            break
        path[question.code] = question.coerce(given[question.code])
        if not _is_positive(path[question.code]):
            break
    complete = all(q.code in path for q in applicable_questions([item], path))
    if not path:
        stray = {q.code: q.coerce(given[q.code]) for q in item.questions if q.code in given}
        if not any(_is_positive(v) for v in stray.values()):
            return None
        return GradedAnswer(item, stray, None, None, True, False)
    if item.grading != "custom":
        scores = {q.attribute: int(path[q.code]) for q in item.questions if q.code in path}
        grade = composite_grade(item, scores)
        return GradedAnswer(
            item, path, grade, grade, grade > 0, complete, _level(item, path) if grade else None
        )
    if item.attributes == ("temperature",):
        return _grade_temperature(item, path, complete)
    return _grade_yes_no(item, path, complete)


def _level(item: CheckinItem, path: Mapping[str, Answer]) -> str | None:
    levels = [q.level(path[q.code]) for q in item.questions if q.code in path]
    return next((lv for lv in reversed(levels) if lv), None)


def _grade_temperature(item: CheckinItem, path: dict[str, Answer], complete: bool) -> GradedAnswer:
    (value,) = path.values()
    if value in (0, 1):  # no thermometer: 0 no fever, 1 feels feverish (graded by a person)
        present = value == 1
        return GradedAnswer(item, path, None, None if present else 0, present, complete)
    celsius = float(value)
    grade = fever_grade(celsius)
    return GradedAnswer(item, path, None, grade, grade > 0, complete, temperature_c=celsius)


def fever_grade(celsius: float) -> int:
    """CTCAE fever grade of a temperature (0 below the fever threshold), from the vocabulary."""
    fever = load_vocabulary().symptoms["fever"]
    for kind, bound, grade in fever.temperature_grades:
        if (kind == "above" and celsius > bound) or (kind == "at_least" and celsius >= bound):
            return grade
    return 0


def _grade_yes_no(item: CheckinItem, path: dict[str, Answer], complete: bool) -> GradedAnswer:
    yes = [q for q in item.questions if path.get(q.code) == 1]
    if not yes:
        return GradedAnswer(item, path, None, 0, False, complete)
    grades = [q.grade_if_yes for q in yes]
    grade = None if any(g is None for g in grades) else max(g for g in grades if g is not None)
    return GradedAnswer(item, path, None, grade, True, complete)


def grades_by_symptom(graded: Iterable[GradedAnswer]) -> dict[str, int]:
    """Grade per symptom (0 when absent; ungraded symptoms left out), for 'previous_grades'."""
    grades: dict[str, int] = {}
    for answer in graded:
        if answer.grade is not None:
            grades[answer.symptom] = max(grades.get(answer.symptom, 0), answer.grade)
    return grades


# --------------------------------------------------------------------------- triage input


def to_parsed_reply(
    graded: Sequence[GradedAnswer], *, text: str = "", language: str = "unknown"
) -> ParsedReply:
    """Graded answers as a parsed 'checkin_answer' reply, for app.domain.triage.triage()."""
    symptoms = tuple(_mention(answer) for answer in graded)
    temperatures = [a.temperature_c for a in graded if a.temperature_c is not None]
    codes = {
        code: int(value)
        for answer in graded
        for code, value in answer.scores.items()
        if float(value).is_integer() and not (answer.item.grading == "custom" and value > 1)
    }
    summary = text or " ".join(a.evidence.removeprefix("check-in ") for a in graded)
    return ParsedReply(
        text=summary,
        normalized=summary,
        language=language,
        intent="checkin_answer",
        symptoms=symptoms,
        temperature_c=max(temperatures) if temperatures else None,
        codes=codes,
    )


def _mention(answer: GradedAnswer) -> SymptomMention:
    detail: dict[str, Any] = {
        "source": "checkin",
        "item": answer.item.code,
        "scores": " ".join(f"{c}={_show(v)}" for c, v in answer.scores.items()),
    }
    if answer.item.grading != "custom":
        for question in answer.item.questions:
            if question.code in answer.scores:
                detail[question.attribute] = int(answer.scores[question.code])
    if answer.composite_grade is not None:
        detail["composite_grade"] = answer.composite_grade
    if answer.level:
        detail["level"] = answer.level
    if answer.temperature_c is not None:
        detail["temperature_c"] = answer.temperature_c
    if not answer.complete:
        detail["incomplete"] = 1
    grade = answer.grade if answer.present else None
    return SymptomMention(answer.symptom, grade, not answer.present, answer.evidence, detail)


def triage_answers(
    graded: Sequence[GradedAnswer],
    rules: TriageRules | None = None,
    *,
    previous_grades: Mapping[str, int] | None = None,
    context: TriageContext | None = None,
) -> TriageResult:
    """Triage of a check-in with the same rules as free text; previous grades judge worsening.

    Alerts read the raw answers (detail ``severity`` / ``frequency``), not the composite grade.
    """
    return triage(to_parsed_reply(graded), rules, previous_grades=previous_grades, context=context)


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


__all__ = [
    "ANSWER_PROBLEM_KINDS",
    "FREQUENCY_ONLY",
    "FREQUENCY_X_SEVERITY",
    "KINDS",
    "PRESENCE_ONLY",
    "SEVERITY_ONLY",
    "SEVERITY_X_INTERFERENCE",
    "Answer",
    "AnswerError",
    "AnswerProblem",
    "CheckinItem",
    "CheckinsError",
    "CompactReply",
    "Condition",
    "GradedAnswer",
    "ItemGuidance",
    "Question",
    "Questionnaire",
    "applicable_questions",
    "check_answers",
    "compact_help",
    "composite_grade",
    "fever_grade",
    "grade_answers",
    "grades_by_symptom",
    "is_complete",
    "items_for",
    "load_checkins",
    "next_question",
    "parse_compact",
    "to_parsed_reply",
    "triage_answers",
]
