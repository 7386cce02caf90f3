"""Understanding patients' SMS replies (Chinese and English): intent, symptoms, grades, temperature.

Pure domain code (standard library and PyYAML only). The words live in data files under
``app/domain/vocabulary/`` so the study team can extend them; this module holds the mechanics:
normalisation of phone input, phrase matching (longest match wins), negation, grading from
levels, severity words and counts, temperatures, compact check-in codes and the intent.

``parse_reply`` never raises for any ``str``: if something unexpected happens it returns an
``unknown`` reply flagged ``parse_error``, which triage rates amber so a person reads it.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from app.domain.reply_normalizer import (
    PinyinIndex,
    build_pinyin_index,
    fix_homophones,
    from_pinyin,
    fuzzy_word,
    to_first_person,
    to_simplified,
)

INTENTS = (
    "confirm",
    "reschedule_request",
    "symptom_report",
    "checkin_answer",
    "opt_out",
    "opt_in",
    "help",
    "unknown",
)
SYMPTOM_CODES = (
    "diarrhea",
    "dysphagia",
    "fever",
    "nausea",
    "vomiting",
    "hematemesis",
    "melena",
    "dyspnea",
    "cough",
    "chest_pain",
    "rash",
    "pruritus",
    "mucositis",
    "numbness",
    "fatigue",
    "anorexia",
    "abdominal_pain",
    "skin_nodules",
    "syncope",
)
LANGUAGES = ("zh", "en", "mixed", "unknown")
CHECKIN_SCALES = ("severity", "frequency", "presence", "grade", "count")
GRADINGS = ("severity", "count", "temperature")
DEFAULT_VOCABULARY_DIR = Path(__file__).with_name("vocabulary")
VOCABULARY_FILES = (
    "symptoms.yaml",
    "modifiers.yaml",
    "intents.yaml",
    "flags.yaml",
    "spelling.yaml",
)

MAX_INPUT_CHARS = 4000
"""Only this many characters of a message are read (an SMS is at most 1,600)."""
MAX_NORMALIZED_CHARS = 8000
"""Cap after normalisation (NFKC can lengthen text); a cut message is flagged ``truncated``."""

# PRO-CTCAE 0-4 score -> composite grade 0-3 (Basch et al. 2021).
_COMPOSITE_GRADE = {"frequency": (0, 1, 1, 2, 3), "severity": (0, 1, 2, 3, 3)}
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_NUMERAL_CHARS = frozenset("零〇一二两三四五六七八九十百几")
_EN_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "a couple of": 2,
    "couple of": 2,
    "a couple": 2,
    "a dozen": 12,
    "dozen": 12,
    "once": 1,
    "twice": 2,
    "thrice": 3,
}
_MANY_TIMES = 10
"""Count assumed for "many times" / "好多次": enough to reach the top of a count scale."""


class VocabularyError(ValueError):
    """A vocabulary file is missing or malformed; the message names the file and the field."""


@dataclass(frozen=True)
class SymptomMention:
    """One symptom found in a reply, with its CTCAE-like grade when the words allow one."""

    code: str
    grade: int | None = None
    negated: bool = False
    evidence: str = ""
    detail: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ReplyContext:
    """What the service knows when a reply arrives (open question, opt-out state, baseline)."""

    awaiting_checkin: bool = False
    opted_out: bool = False
    baseline_stools: int = 0
    checkin_symptom: str | None = None
    checkin_scale: str = "severity"
    awaiting_temperature: bool = False


@dataclass(frozen=True)
class ParsedReply:
    """One understood reply: intent, symptoms (negated ones kept), temperature, answers."""

    text: str
    normalized: str
    language: str
    intent: str
    symptoms: tuple[SymptomMention, ...] = ()
    temperature_c: float | None = None
    answer: int | None = None
    codes: dict[str, int] = field(default_factory=dict, hash=False)
    flags: tuple[str, ...] = ()
    unread_hints: tuple[str, ...] = ()
    non_clinical: bool = False

    @property
    def active_symptoms(self) -> tuple[SymptomMention, ...]:
        """Symptoms that are present (not negated)."""
        return tuple(s for s in self.symptoms if not s.negated)

    @property
    def negated_symptoms(self) -> tuple[SymptomMention, ...]:
        """Symptoms the patient said are absent or gone."""
        return tuple(s for s in self.symptoms if s.negated)

    def symptom(self, code: str) -> SymptomMention | None:
        """The active mention of ``code``, if any."""
        return next((s for s in self.active_symptoms if s.code == code), None)


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True, eq=False)
class PhraseSet:
    """Compiled zh + en phrases searched in normalised text."""

    pattern: re.Pattern[str] | None

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[re.Match]:
        """Non-empty matches in ``text[pos:endpos]``."""
        if self.pattern is None:
            return iter(())
        end = len(text) if endpos is None else endpos
        return (m for m in self.pattern.finditer(text, pos, end) if m.end() > m.start())

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> re.Match | None:
        """The first non-empty match, or None."""
        return next(self.finditer(text, pos, endpos), None)


@dataclass(frozen=True, eq=False)
class WholeSet:
    """Phrases that must be the whole (cleaned) message."""

    literals: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]

    def matches(self, spaced: str) -> bool:
        """True when the cleaned message is one of the phrases."""
        if not spaced:
            return False
        if spaced in self.literals or _compact(spaced) in self.literals:
            return True
        return any(p.fullmatch(spaced) or p.fullmatch(_compact(spaced)) for p in self.patterns)


@dataclass(frozen=True, eq=False)
class LevelLexicon:
    """A named level of a symptom with its grade, the phrases implying it and its cues."""

    name: str
    grade: int
    implies: PhraseSet
    cues: PhraseSet


@dataclass(frozen=True, eq=False)
class SymptomLexicon:
    """Everything the parser knows about one symptom code."""

    code: str
    grading: str
    mentions: PhraseSet
    negated: PhraseSet
    levels: tuple[LevelLexicon, ...] = ()
    count_key: str = "count"
    over_baseline_key: str = ""
    subtract_baseline: bool = False
    count_grades: tuple[tuple[int, int], ...] = ()
    fever_at_least: float = 38.0
    temperature_grades: tuple[tuple[str, float, int], ...] = ()

    def level(self, name: str | None) -> LevelLexicon | None:
        """The level called ``name``."""
        return next((lv for lv in self.levels if lv.name == name), None)


@dataclass(frozen=True, eq=False)
class CheckinCode:
    """A compact check-in code letter: which symptom and which 0-4 scale."""

    symptom: str
    scale: str
    levels: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class IntentLexicon:
    """Keywords for the non-symptom intents."""

    polite: tuple[str, ...]
    opt_out: WholeSet
    opt_out_anywhere: PhraseSet
    opt_in: WholeSet
    opt_in_after_opt_out: WholeSet
    help: WholeSet
    reschedule: PhraseSet
    confirm: PhraseSet
    confirm_emoji: tuple[str, ...]
    confirm_negators: re.Pattern[str] | None
    confirm_max_chars: int
    numbered: Mapping[str, str]
    checkin_codes: Mapping[str, CheckinCode]


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """The compiled reply vocabulary (see app/domain/vocabulary/README.md)."""

    source: str
    symptoms: Mapping[str, SymptomLexicon]
    flags: Mapping[str, PhraseSet]
    neutral: PhraseSet
    negation_before: re.Pattern[str] | None
    negation_after: re.Pattern[str] | None
    negation_chain: re.Pattern[str] | None
    negation_answer: re.Pattern[str] | None
    cue_cancel: re.Pattern[str] | None
    clause_breaks: PhraseSet
    severity: tuple[tuple[int, PhraseSet], ...]
    severity_neutral: PhraseSet
    temperature_words: PhraseSet
    intents: IntentLexicon
    corrections: Mapping[str, str]
    fuzzy_targets: tuple[str, ...]
    fuzzy_min_length: int
    fuzzy_never: frozenset[str]
    pinyin: PinyinIndex = field(default_factory=PinyinIndex)
    clinical_hints: PhraseSet = field(default_factory=lambda: PhraseSet(None))
    non_clinical: PhraseSet = field(default_factory=lambda: PhraseSet(None))
    fuzzy_two_edits_from: int = 9
    flag_sources: Mapping[str, str] = field(default_factory=dict)


def load_vocabulary(path: str | Path | None = None) -> Vocabulary:
    """Load and validate the vocabulary from a directory (default: app/domain/vocabulary/)."""
    if path is None:
        return _default_vocabulary()
    return _load_vocabulary_dir(Path(path))


@lru_cache(maxsize=1)
def _default_vocabulary() -> Vocabulary:
    return _load_vocabulary_dir(DEFAULT_VOCABULARY_DIR)


def _load_vocabulary_dir(directory: Path) -> Vocabulary:
    docs = {name: _read_yaml(directory / name) for name in VOCABULARY_FILES}
    symptoms = _build_symptoms(docs["symptoms.yaml"], str(directory / "symptoms.yaml"))
    mods_file = str(directory / "modifiers.yaml")
    mods = _mapping(docs["modifiers.yaml"], mods_file, "")
    negation = _mapping(mods.get("negation"), mods_file, "negation")
    severity = _mapping(mods.get("severity"), mods_file, "severity")
    spelling_file = str(directory / "spelling.yaml")
    spelling = _mapping(docs["spelling.yaml"], spelling_file, "")
    fuzzy = _mapping(spelling.get("fuzzy", {}), spelling_file, "fuzzy")
    return Vocabulary(
        source=str(directory),
        symptoms=symptoms,
        flags=_build_flags(docs["flags.yaml"], str(directory / "flags.yaml")),
        neutral=_phrase_set(mods.get("neutral", {}), mods_file, "neutral"),
        negation_before=_negation_before(negation, mods_file),
        negation_after=_anchored(negation.get("after", {}), mods_file, "negation.after", "start"),
        negation_chain=_anchored(negation.get("chain", {}), mods_file, "negation.chain", "whole"),
        negation_answer=_anchored(
            negation.get("answer_no", {}), mods_file, "negation.answer_no", "start"
        ),
        cue_cancel=_anchored(mods.get("cue_cancel", {}), mods_file, "cue_cancel", "start"),
        clause_breaks=_phrase_set(mods.get("clause_breaks", {}), mods_file, "clause_breaks"),
        severity=tuple(
            (grade, _phrase_set(severity.get(name, {}), mods_file, f"severity.{name}"))
            for grade, name in ((1, "mild"), (2, "moderate"), (3, "severe"))
        ),
        severity_neutral=_phrase_set(severity.get("neutral", {}), mods_file, "severity.neutral"),
        temperature_words=_phrase_set(
            mods.get("temperature_words", {}), mods_file, "temperature_words"
        ),
        intents=_build_intents(docs["intents.yaml"], str(directory / "intents.yaml")),
        corrections=_build_corrections(spelling.get("corrections", {}), spelling_file),
        fuzzy_targets=tuple(_string_list(fuzzy.get("targets", []), spelling_file, "fuzzy.targets")),
        fuzzy_min_length=_int(fuzzy.get("min_length", 7), spelling_file, "fuzzy.min_length", 3),
        fuzzy_never=frozenset(_string_list(fuzzy.get("never", []), spelling_file, "fuzzy.never")),
        clinical_hints=_phrase_set(mods.get("clinical_hints", {}), mods_file, "clinical_hints"),
        non_clinical=_phrase_set(
            _section(
                _mapping(docs["intents.yaml"], str(directory / "intents.yaml"), ""),
                "non_clinical",
                "anywhere",
                str(directory / "intents.yaml"),
            ),
            str(directory / "intents.yaml"),
            "non_clinical.anywhere",
        ),
        pinyin=build_pinyin_index(
            _zh_literals(
                [docs["symptoms.yaml"], docs["flags.yaml"], spelling.get("homophone_words", {})]
            ),
            _zh_literals(
                [spelling.get("pinyin_words", {}), docs["modifiers.yaml"], docs["intents.yaml"]]
            ),
        ),
        fuzzy_two_edits_from=_int(
            fuzzy.get("two_edits_from", 9), spelling_file, "fuzzy.two_edits_from", 5
        ),
        flag_sources=_flag_sources(docs["flags.yaml"], str(directory / "flags.yaml")),
    )


def _zh_literals(docs: list[Any]) -> list[str]:
    """Every literal (not ``re:``) Chinese phrase under a ``zh:`` key, in file order."""
    found: list[str] = []

    def walk(node: Any, chinese: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, chinese or key == "zh")
        elif isinstance(node, list):
            for item in node:
                walk(item, chinese)
        elif chinese and isinstance(node, str) and not node.startswith("re:"):
            found.append(_normalize_phrase(node))

    for doc in docs:
        walk(doc, False)
    return found


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise VocabularyError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise VocabularyError(f"{path}: not valid YAML: {exc}") from exc


def _where(file: str, field_name: str) -> str:
    return f"{file}: {field_name or '(top level)'}"


def _mapping(value: Any, file: str, field_name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise VocabularyError(f"{_where(file, field_name)}: expected a mapping")
    return value


def _string_list(value: Any, file: str, field_name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise VocabularyError(f"{_where(file, field_name)}: expected a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise VocabularyError(
                f"{_where(file, f'{field_name}[{i}]')}: expected a non-empty string, got {item!r}"
                ' (quote words YAML reads as booleans or numbers: "no", "yes", "on", "1")'
            )
    return value


def _int(value: Any, file: str, field_name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise VocabularyError(f"{_where(file, field_name)}: expected an integer >= {minimum}")
    return value


def _normalize_phrase(phrase: str) -> str:
    return unicodedata.normalize("NFKC", phrase.translate(_PRE_NFKC)).lower().strip()


def _literal_regex(phrase: str, language: str) -> str:
    phrase = _normalize_phrase(phrase)
    if language == "en":
        words = [re.escape(w).replace("'", "'?") for w in phrase.split()]
        return r"[\s\-]*".join(words)
    return r"\s?".join(re.escape(c) for c in phrase if not c.isspace())


def _phrase_regexes(value: Any, file: str, field_name: str) -> list[tuple[int, str]]:
    """(sort key, regex source) for every phrase of a {zh: [...], en: [...]} mapping."""
    groups = _mapping(value, file, field_name)
    out: list[tuple[int, str]] = []
    for language, items in groups.items():
        if language not in ("zh", "en"):
            raise VocabularyError(f"{_where(file, field_name)}: unknown language {language!r}")
        for item in _string_list(items, file, f"{field_name}.{language}"):
            out.append(_phrase_regex(item, language, file, f"{field_name}.{language}"))
    return out


def _phrase_regex(item: str, language: str, file: str, field_name: str) -> tuple[int, str]:
    body = item[3:] if item.startswith("re:") else _literal_regex(item, language)
    try:
        re.compile(body)
    except re.error as exc:
        raise VocabularyError(
            f"{_where(file, field_name)}: bad regular expression {item!r}: {exc}"
        ) from exc
    if not body:
        raise VocabularyError(f"{_where(file, field_name)}: empty phrase")
    wrapped = rf"(?<![a-z])(?:{body})(?![a-z])" if language == "en" else f"(?:{body})"
    return len(item), wrapped


def _compile_alternation(regexes: list[tuple[int, str]]) -> re.Pattern[str] | None:
    if not regexes:
        return None
    ordered = sorted(regexes, key=lambda pair: -pair[0])
    return re.compile("|".join(source for _, source in ordered))


def _phrase_set(value: Any, file: str, field_name: str) -> PhraseSet:
    return PhraseSet(_compile_alternation(_phrase_regexes(value, file, field_name)))


def _anchored(value: Any, file: str, field_name: str, anchor: str) -> re.Pattern[str] | None:
    regexes = _phrase_regexes(value, file, field_name)
    if not regexes:
        return None
    body = "|".join(source for _, source in sorted(regexes, key=lambda pair: -pair[0]))
    if anchor == "start":
        return re.compile(rf"[ ]?(?:{body})")
    return re.compile(rf"\s*(?:{body})\s*")


def _negation_before(negation: dict[str, Any], file: str) -> re.Pattern[str] | None:
    """Regex matching at the end of a clause prefix: a cue followed only by filler words."""
    cues = _mapping(negation.get("before", {}), file, "negation.before")
    fillers = _mapping(negation.get("filler", {}), file, "negation.filler")
    parts = []
    for language in ("zh", "en"):
        cue = [
            s for _, s in _phrase_regexes({language: cues.get(language)}, file, "negation.before")
        ]
        fill = [
            s
            for _, s in _phrase_regexes({language: fillers.get(language)}, file, "negation.filler")
        ]
        if not cue:
            continue
        cue_re = "|".join(cue)
        fill_re = "|".join(fill) or "(?!)"
        if language == "zh":
            parts.append(rf"(?:{cue_re})\s?(?:(?:{fill_re})\s?)*$")
        else:
            parts.append(rf"(?:{cue_re})(?:[\s\-]+(?:{fill_re}))*[\s\-]+$")
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def _whole_set(value: Any, file: str, field_name: str) -> WholeSet:
    groups = _mapping(value, file, field_name)
    literals: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for language, items in groups.items():
        if language not in ("zh", "en"):
            raise VocabularyError(f"{_where(file, field_name)}: unknown language {language!r}")
        for item in _string_list(items, file, f"{field_name}.{language}"):
            if item.startswith("re:"):
                try:
                    patterns.append(re.compile(item[3:]))
                except re.error as exc:
                    raise VocabularyError(
                        f"{_where(file, field_name)}: bad regular expression {item!r}: {exc}"
                    ) from exc
            else:
                literals.add(_compact(_normalize_phrase(item)))
    return WholeSet(frozenset(literals), tuple(patterns))


def _build_symptoms(doc: Any, file: str) -> dict[str, SymptomLexicon]:
    entries = _mapping(doc, file, "")
    unknown = sorted(set(entries) - set(SYMPTOM_CODES))
    if unknown:
        raise VocabularyError(f"{_where(file, unknown[0])}: unknown symptom code")
    missing = [code for code in SYMPTOM_CODES if code not in entries]
    if missing:
        raise VocabularyError(f"{_where(file, missing[0])}: symptom missing")
    return {code: _build_symptom(code, entries[code], file) for code in SYMPTOM_CODES}


def _build_symptom(code: str, raw: Any, file: str) -> SymptomLexicon:
    entry = _mapping(raw, file, code)
    grading = entry.get("grading", "severity")
    if grading not in GRADINGS:
        raise VocabularyError(f"{_where(file, code + '.grading')}: expected one of {GRADINGS}")
    if "mentions" not in entry:
        raise VocabularyError(f"{_where(file, code + '.mentions')}: required")
    levels = tuple(
        _build_level(item, file, f"{code}.levels[{i}]")
        for i, item in enumerate(_list(entry.get("levels", []), file, f"{code}.levels"))
    )
    extra: dict[str, Any] = {}
    if grading == "count":
        extra = _count_settings(entry.get("count"), file, f"{code}.count")
    if grading == "temperature":
        extra = _temperature_settings(entry.get("temperature"), file, f"{code}.temperature")
    return SymptomLexicon(
        code=code,
        grading=grading,
        mentions=_phrase_set(entry["mentions"], file, f"{code}.mentions"),
        negated=_phrase_set(entry.get("negated", {}), file, f"{code}.negated"),
        levels=levels,
        **extra,
    )


def _list(value: Any, file: str, field_name: str) -> list[Any]:
    if not isinstance(value, list):
        raise VocabularyError(f"{_where(file, field_name)}: expected a list")
    return value


def _build_level(raw: Any, file: str, field_name: str) -> LevelLexicon:
    entry = _mapping(raw, file, field_name)
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise VocabularyError(f"{_where(file, field_name + '.name')}: expected a snake_case name")
    return LevelLexicon(
        name=name,
        grade=_int(entry.get("grade"), file, f"{field_name}.grade", 0),
        implies=_phrase_set(entry.get("implies", {}), file, f"{field_name}.implies"),
        cues=_phrase_set(entry.get("cues", {}), file, f"{field_name}.cues"),
    )


def _count_settings(raw: Any, file: str, field_name: str) -> dict[str, Any]:
    entry = _mapping(raw, file, field_name)
    grades = _mapping(entry.get("grades"), file, f"{field_name}.grades")
    if not grades:
        raise VocabularyError(f"{_where(file, field_name + '.grades')}: required")
    pairs = []
    for minimum, grade in grades.items():
        _int(minimum, file, f"{field_name}.grades", 0)
        pairs.append((minimum, _int(grade, file, f"{field_name}.grades.{minimum}", 0)))
    key = entry.get("key", "count")
    over = entry.get("over_baseline_key", "")
    if not isinstance(key, str) or not isinstance(over, str):
        raise VocabularyError(f"{_where(file, field_name + '.key')}: expected a string")
    return {
        "count_key": key,
        "over_baseline_key": over,
        "subtract_baseline": bool(entry.get("subtract_baseline", False)),
        "count_grades": tuple(sorted(pairs, reverse=True)),
    }


def _temperature_settings(raw: Any, file: str, field_name: str) -> dict[str, Any]:
    entry = _mapping(raw, file, field_name)
    at_least = entry.get("fever_at_least", 38.0)
    if not isinstance(at_least, int | float) or isinstance(at_least, bool):
        raise VocabularyError(f"{_where(file, field_name + '.fever_at_least')}: expected a number")
    grades = []
    for i, item in enumerate(_list(entry.get("grades", []), file, f"{field_name}.grades")):
        row = _mapping(item, file, f"{field_name}.grades[{i}]")
        kind = "above" if "above" in row else "at_least"
        value = row.get(kind)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise VocabularyError(
                f"{_where(file, f'{field_name}.grades[{i}]')}: needs 'above' or 'at_least' number"
            )
        grade = _int(row.get("grade"), file, f"{field_name}.grades[{i}].grade", 0)
        grades.append((kind, float(value), grade))
    return {"fever_at_least": float(at_least), "temperature_grades": tuple(grades)}


def _build_flags(doc: Any, file: str) -> dict[str, PhraseSet]:
    entries = _mapping(doc, file, "")
    flags = {}
    for name, phrases in entries.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise VocabularyError(f"{_where(file, str(name))}: flag names are snake_case")
        entry = {k: v for k, v in _mapping(phrases, file, name).items() if k != "source"}
        flags[name] = _phrase_set(entry, file, name)
    return flags


def _flag_sources(doc: Any, file: str) -> dict[str, str]:
    """The clinical source named by each flag (``source:``), for the docs and `triage explain`."""
    sources = {}
    for name, entry in _mapping(doc, file, "").items():
        source = _mapping(entry, file, str(name)).get("source", "")
        if not isinstance(source, str):
            raise VocabularyError(f"{_where(file, f'{name}.source')}: expected text")
        sources[str(name)] = source
    return sources


def _build_intents(doc: Any, file: str) -> IntentLexicon:
    entry = _mapping(doc, file, "")
    confirm = _mapping(entry.get("confirm"), file, "confirm")
    polite_groups = _mapping(entry.get("polite", {}), file, "polite")
    polite = [
        _normalize_phrase(p)
        for language in ("zh", "en")
        for p in _string_list(polite_groups.get(language), file, f"polite.{language}")
    ]
    negators = _mapping(confirm.get("negators", {}), file, "confirm.negators")
    negator_regexes = [
        item[3:] if item.startswith("re:") else re.escape(_normalize_phrase(item)) + "$"
        for language in ("zh", "en")
        for item in _string_list(negators.get(language), file, f"confirm.negators.{language}")
    ]
    numbered = _mapping(entry.get("numbered", {}), file, "numbered")
    for number, intent in numbered.items():
        if intent not in INTENTS:
            raise VocabularyError(
                f"{_where(file, f'numbered.{number}')}: unknown intent {intent!r}"
            )
    return IntentLexicon(
        polite=tuple(sorted(polite, key=len, reverse=True)),
        opt_out=_whole_set(_section(entry, "opt_out", "whole", file), file, "opt_out.whole"),
        opt_out_anywhere=_phrase_set(
            _section(entry, "opt_out", "anywhere", file), file, "opt_out.anywhere"
        ),
        opt_in=_whole_set(_section(entry, "opt_in", "whole", file), file, "opt_in.whole"),
        opt_in_after_opt_out=_whole_set(
            _section(entry, "opt_in_after_opt_out", "whole", file),
            file,
            "opt_in_after_opt_out.whole",
        ),
        help=_whole_set(_section(entry, "help", "whole", file), file, "help.whole"),
        reschedule=_phrase_set(
            _section(entry, "reschedule", "anywhere", file), file, "reschedule.anywhere"
        ),
        confirm=_phrase_set(confirm.get("anywhere", {}), file, "confirm.anywhere"),
        confirm_emoji=tuple(_string_list(confirm.get("emoji", []), file, "confirm.emoji")),
        confirm_negators=re.compile("|".join(negator_regexes)) if negator_regexes else None,
        confirm_max_chars=_int(confirm.get("max_chars", 60), file, "confirm.max_chars", 1),
        numbered={str(k): v for k, v in numbered.items()},
        checkin_codes=_build_checkin_codes(entry.get("checkin_codes", {}), file),
    )


def _section(entry: dict[str, Any], name: str, key: str, file: str) -> Any:
    return _mapping(entry.get(name), file, name).get(key, {})


def _build_checkin_codes(raw: Any, file: str) -> dict[str, CheckinCode]:
    codes = {}
    for letters, spec in _mapping(raw, file, "checkin_codes").items():
        where = f"checkin_codes.{letters}"
        if not isinstance(letters, str) or not re.fullmatch(r"[A-Za-z]{1,3}", letters):
            raise VocabularyError(f"{_where(file, where)}: codes are 1-3 letters")
        item = _mapping(spec, file, where)
        if item.get("symptom") not in SYMPTOM_CODES:
            raise VocabularyError(f"{_where(file, where + '.symptom')}: unknown symptom code")
        if item.get("scale") not in CHECKIN_SCALES:
            raise VocabularyError(f"{_where(file, where + '.scale')}: expected {CHECKIN_SCALES}")
        levels = _mapping(item.get("levels", {}), file, where + ".levels")
        if not all(
            isinstance(k, int) and 0 <= k <= 4 and isinstance(v, str) for k, v in levels.items()
        ):
            raise VocabularyError(
                f"{_where(file, where + '.levels')}: expected {{0-4: level name}}"
            )
        codes[letters.upper()] = CheckinCode(item["symptom"], item["scale"], dict(levels))
    return codes


def _build_corrections(raw: Any, file: str) -> dict[str, str]:
    corrections = {}
    for target, typos in _mapping(raw, file, "corrections").items():
        for typo in _string_list(typos, file, f"corrections.{target}"):
            corrections[_normalize_phrase(typo)] = _normalize_phrase(str(target))
    return corrections


# --------------------------------------------------------------------------- normalisation

_PRE_NFKC = str.maketrans(
    {
        "º": "°",
        "˚": "°",
        "’": "'",
        "‘": "'",
        "′": "'",
        "`": "'",
        "“": '"',
        "”": '"',
        "〜": "~",
        "～": "~",
        "—": "-",
        "–": "-",
        "－": "-",
        "‐": "-",
        "‑": "-",
        "−": "-",
        "\u2028": "\n",
        "\u2029": "\n",
        "\r": "\n",
    }
)
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\ufe00-\ufe0f\ufeff\ud800-\udfff\U000e0000-\U000e007f]"
)
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r" ?\n[\s]*")
_ASCII_WORD = re.compile(r"[a-z]+")


def normalize_text(text: str, vocabulary: Vocabulary | None = None) -> str:
    """NFKC, lower case, invisible characters removed, spaces collapsed, common typos fixed."""
    vocab = vocabulary or load_vocabulary()
    return _normalize(text, vocab)[0]


def _normalize(text: str, vocab: Vocabulary) -> tuple[str, bool]:
    steps, truncated = normalization_steps(text, vocab)
    return steps[-1][1], truncated


def normalization_steps(text: str, vocab: Vocabulary) -> tuple[list[tuple[str, str]], bool]:
    """Each normalisation step as (name, text after it), and whether the input was truncated."""
    truncated = len(text) > MAX_INPUT_CHARS
    raw = text[:MAX_INPUT_CHARS].translate(_PRE_NFKC)
    raw = _INVISIBLE.sub(" ", raw)
    norm = unicodedata.normalize("NFKC", raw).lower()
    norm = _INVISIBLE.sub(" ", norm).replace("\t", " ")
    norm = _NEWLINES.sub("\n", _SPACES.sub(" ", norm)).strip()
    if len(norm) > MAX_NORMALIZED_CHARS:
        norm, truncated = norm[:MAX_NORMALIZED_CHARS], True
    steps = [("width_case_spaces", norm)]
    steps.append(("traditional_to_simplified", to_simplified(steps[-1][1])))
    steps.append(("pinyin_to_chinese", from_pinyin(steps[-1][1], vocab.pinyin)))
    steps.append(("subject_to_first_person", to_first_person(steps[-1][1])[0]))
    steps.append(("homophone_typos", fix_homophones(steps[-1][1], vocab.pinyin)))
    steps.append(("english_spelling", _fix_spelling(steps[-1][1], vocab)))
    return steps, truncated


def _fix_spelling(text: str, vocab: Vocabulary) -> str:
    cache: dict[str, str] = {}

    def fix(match: re.Match) -> str:
        word = match.group(0)
        if word not in cache:
            cache[word] = _corrected_word(word, vocab)
        return cache[word]

    return _ASCII_WORD.sub(fix, text)


def _corrected_word(word: str, vocab: Vocabulary) -> str:
    if word in vocab.corrections:
        return vocab.corrections[word]
    if len(word) < vocab.fuzzy_min_length or word in vocab.fuzzy_never:
        return word
    if word in vocab.fuzzy_targets:
        return word
    distance = 2 if len(word) >= vocab.fuzzy_two_edits_from else 1
    return fuzzy_word(word, vocab.fuzzy_targets, distance) or word


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", text)


def _spaced(text: str) -> str:
    """Punctuation and emoji removed, single spaces, no spaces between Chinese characters."""
    spaced = re.sub(r"[\W_]+", " ", text).strip()
    return re.sub(rf"(?<=[{_CJK}]) (?=[{_CJK}])", "", spaced)


def detect_language(normalized: str) -> str:
    """'zh', 'en', 'mixed' or 'unknown' from the scripts used in normalised text."""
    has_cjk = re.search(f"[{_CJK}]", normalized) is not None
    has_latin = re.search("[a-z]", normalized) is not None
    if has_cjk and has_latin:
        return "mixed"
    if has_cjk:
        return "zh"
    return "en" if has_latin else "unknown"


# --------------------------------------------------------------------------- numbers


def parse_chinese_number(text: str) -> int | None:
    """Chinese numerals to an int: 七 7, 十五 15, 二十三 23, 两 2; ranges 五六 -> 6, 十几 -> 19."""
    s = text.strip()
    if not s or any(c not in _CN_NUMERAL_CHARS for c in s):
        return None
    if "几" in s:
        return _chinese_approximate(s)
    if "百" in s:
        head, _, tail = s.partition("百")
        hundreds = 1 if head == "" else _CN_DIGITS.get(head)
        rest = 0 if tail == "" else parse_chinese_number(tail.lstrip("零〇"))
        return None if hundreds is None or rest is None else hundreds * 100 + rest
    if "十" in s:
        head, _, tail = s.partition("十")
        tens = 1 if head == "" else _digit_or_range(head)
        units = 0 if tail == "" else _digit_or_range(tail)
        return None if tens is None or units is None else tens * 10 + units
    return _digit_or_range(s)


def _chinese_approximate(s: str) -> int | None:
    """Upper bounds for 十几 (19), 二十几 (29), 几十 (30); a bare 几 is unknown."""
    if s == "十几":
        return 19
    if s == "几十":
        return 30
    match = re.fullmatch("([一二两三四五六七八九])十几", s)
    return _CN_DIGITS[match.group(1)] * 10 + 9 if match else None


def _digit_or_range(s: str) -> int | None:
    digits = [_CN_DIGITS.get(c) for c in s]
    if any(d is None for d in digits):
        return None
    if len(digits) == 1:
        return digits[0]
    if len(digits) == 2 and digits[1] == digits[0] + 1:
        return digits[1]
    return None


def _number_value(token: str) -> int | None:
    token = token.strip()
    if token.isdigit():
        return int(token)
    if token in _EN_NUMBERS:
        return _EN_NUMBERS[token]
    return parse_chinese_number(token)


_EN_NUMBER_ALT = "|".join(sorted((re.escape(w) for w in _EN_NUMBERS), key=len, reverse=True))
_NUM = (
    r"(?:\d{1,3}(?!\d)|[零〇一二两三四五六七八九十百几]{1,4}"
    rf"|(?<![a-z])(?:{_EN_NUMBER_ALT})(?![a-z]))"
)
_COUNT_RE = re.compile(
    rf"(?<![\d.第])(?P<a>{_NUM})(?:\s*(?:-|~|到|至|或|、|to|or)\s*(?P<b>{_NUM}))?\s*(?:多|余|\+)?\s*"
    r"(?P<unit>次|回|趟|遍|times?(?![a-z])|x(?![a-z])|episodes?(?![a-z])"
    r"|(?:loose |watery )?stools?(?![a-z])"
    r"|bowel movements?|bms?(?![a-z])|goes(?![a-z]))"
    r"|(?<![a-z])x\s*(?P<c>\d{1,3})(?!\d)"
    r"|(?<![a-z])(?P<d>once|twice|thrice)(?![a-z])"
    r"|(?P<many>好多次|很多次|无数次|n多次|数不清"
    r"|(?:so |too )?many times|lots of times|countless times"
    r"|loads of times)"
)
_MAX_COUNT = 100


@dataclass(frozen=True)
class _Count:
    value: int
    start: int
    end: int


def _find_counts(text: str) -> list[_Count]:
    counts = []
    for match in _COUNT_RE.finditer(text):
        value = _count_value(match)
        if value is not None and 0 <= value <= _MAX_COUNT:
            counts.append(_Count(value, match.start(), match.end()))
    return counts


def _count_value(match: re.Match) -> int | None:
    if match.group("many"):
        return _MANY_TIMES
    if match.group("c"):
        return int(match.group("c"))
    if match.group("d"):
        return _EN_NUMBERS[match.group("d")]
    low = _number_value(match.group("a"))
    high = _number_value(match.group("b")) if match.group("b") else None
    values = [v for v in (low, high) if v is not None]
    return max(values) if values else None


# --------------------------------------------------------------------------- temperature

_TEMP_NUMBER = re.compile(r"(?<![\d.:/])(?<!\d,)(\d{2,3})(?:(\.|,|点)(\d{1,2}))?(?!\d)")
_TEMP_UNIT = re.compile(
    r"[ ]?(?:(?P<f>°\s*f(?![a-z])|华氏度?|fahrenheit"
    r"|degrees?\s*f(?:ahrenheit)?(?![a-z])|deg\s*f(?![a-z])"
    r"|f(?![a-z]))|(?P<c>°\s*c(?![a-z])|摄氏度|celsius|degrees?\s*c(?:elsius)?(?![a-z])|deg\s*c(?![a-z])"
    r"|c(?![a-z]))|(?P<d>°|度|degrees?(?![a-z])|deg(?![a-z])))"
)
_DEGREE_DECIMAL = re.compile(r"([0-9零一二三四五六七八九])(?![0-9.]|\s*(?:次|回|趟|个|天|号))")
_NOT_TEMP_AFTER = re.compile(
    r"[ ]?(?:次|回|趟|遍|岁|号|分|天|年|月|日|个|块|元|斤|公斤|克|楼|床|kg|g(?![a-z])|mg|ml|cm|mm|%"
    r"|times?(?![a-z])|x(?![a-z])|years?|yrs?|mins?|minutes?|hours?|hrs?|h(?![a-z])|am(?![a-z])"
    r"|pm(?![a-z])|:\d|/\d|点(?!\d))"
)
_CN_TEMP = re.compile(
    r"([三四]十[一二三四五六七八九]?)(?:点([零一二三四五六七八九]))?度([零一二三四五六七八九])?"
)
_CELSIUS_RANGE = (34.0, 43.5)
_FAHRENHEIT_RANGE = (93.0, 110.0)
_BARE_DECIMAL_RANGE = (35.0, 42.9)


@dataclass(frozen=True)
class _Temperature:
    celsius: float
    start: int
    end: int


def _find_temperatures(text: str, contextual: bool) -> list[_Temperature]:
    found = []
    for match in _TEMP_NUMBER.finditer(text):
        reading = _read_temperature(text, match, contextual)
        if reading is not None:
            found.append(reading)
    for match in _CN_TEMP.finditer(text):
        whole = parse_chinese_number(match.group(1))
        decimal = match.group(2) or match.group(3)
        if whole is None:
            continue
        value = whole + (_CN_DIGITS[decimal] / 10 if decimal else 0.0)
        if _CELSIUS_RANGE[0] <= value <= _CELSIUS_RANGE[1]:
            found.append(_Temperature(value, match.start(), match.end()))
    return found


def _read_temperature(text: str, match: re.Match, contextual: bool) -> _Temperature | None:
    whole, separator, decimals = match.group(1), match.group(2), match.group(3)
    value = float(f"{whole}.{decimals}") if decimals else float(whole)
    end = match.end()
    unit = _TEMP_UNIT.match(text, end)
    if unit is None:
        if separator == "," or _NOT_TEMP_AFTER.match(text, end):
            return None
        celsius = _unitless_celsius(value, contextual, decimals is not None)
    else:
        end = unit.end()
        if unit.group("d") and not decimals and "度" in unit.group(0):
            decimal = _DEGREE_DECIMAL.match(text, end)
            if decimal:
                digit = decimal.group(1)
                value += (int(digit) if digit.isdigit() else _CN_DIGITS[digit]) / 10
                end = decimal.end()
        celsius = _celsius_with_unit(value, unit)
    if celsius is None:
        return None
    return _Temperature(celsius, match.start(), end)


def _celsius_with_unit(value: float, unit: re.Match) -> float | None:
    if unit.group("f"):
        return _from_fahrenheit(value)
    if unit.group("c"):
        return value if _CELSIUS_RANGE[0] <= value <= _CELSIUS_RANGE[1] else None
    if _CELSIUS_RANGE[0] <= value <= _CELSIUS_RANGE[1]:
        return value
    return _from_fahrenheit(value)


def _unitless_celsius(value: float, contextual: bool, has_decimal: bool) -> float | None:
    if contextual:
        if _CELSIUS_RANGE[0] <= value <= _CELSIUS_RANGE[1]:
            return value
        return _from_fahrenheit(value)
    if has_decimal and _BARE_DECIMAL_RANGE[0] <= value <= _BARE_DECIMAL_RANGE[1]:
        return value
    return None


def _from_fahrenheit(value: float) -> float | None:
    if not _FAHRENHEIT_RANGE[0] <= value <= _FAHRENHEIT_RANGE[1]:
        return None
    celsius = (value - 32.0) * 5.0 / 9.0
    return celsius if _CELSIUS_RANGE[0] <= celsius <= _CELSIUS_RANGE[1] else None


# --------------------------------------------------------------------------- segmentation

_SENTENCE_BREAK = re.compile(r"[。!?;\n…]|(?<!\d)\.|\.(?!\d)")
_CLAUSE_PUNCTUATION = re.compile(r"[,，]")


class _Segments:
    """Clause and sentence boundaries of a normalised text."""

    def __init__(self, length: int, clause_breaks: list[tuple[int, int]], sentence_breaks):
        self._length = length
        self._clauses = self._index(clause_breaks)
        self._sentences = self._index(sentence_breaks)

    @staticmethod
    def _index(breaks: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
        ordered = sorted(breaks)
        return sorted(end for _, end in ordered), [start for start, _ in ordered]

    def _around(self, index: tuple[list[int], list[int]], start: int, end: int) -> tuple[int, int]:
        ends, starts = index
        i = bisect.bisect_right(ends, start)
        left = ends[i - 1] if i else 0
        j = bisect.bisect_left(starts, end)
        right = starts[j] if j < len(starts) else self._length
        return left, max(right, end)

    def clause(self, start: int, end: int) -> tuple[int, int]:
        """The clause holding text[start:end]."""
        return self._around(self._clauses, start, end)

    def sentence(self, start: int, end: int) -> tuple[int, int]:
        """The sentence holding text[start:end]."""
        return self._around(self._sentences, start, end)


def _segments(text: str, vocab: Vocabulary, protected: list[_Span]) -> _Segments:
    sentence = [(m.start(), m.end()) for m in _SENTENCE_BREAK.finditer(text)]
    words = [(m.start(), m.end()) for m in vocab.clause_breaks.finditer(text)]
    commas = [(m.start(), m.end()) for m in _CLAUSE_PUNCTUATION.finditer(text)]
    clause = sentence + commas + [w for w in words if not _overlaps_any(w, protected)]
    return _Segments(len(text), clause, sentence)


def _overlaps_any(span: tuple[int, int], spans: list[_Span]) -> bool:
    return any(s.start < span[1] and span[0] < s.end for s in spans)


# --------------------------------------------------------------------------- phrase spans


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str  # neutral | negated | implies | mention | flag
    code: str = ""
    level: str | None = None
    grade: int | None = None


_KIND_RANK = {"neutral": 0, "negated": 1, "implies": 2, "mention": 3, "flag": 4}


_GENERIC_FLAGS = frozenset({"unwell", "hospital"})
"""Flags dropped inside a symptom phrase ("pain" in "chest pain"); specific red flags are kept."""


def _phrase_spans(text: str, vocab: Vocabulary) -> list[_Span]:
    """Symptom and flag mentions, longest first; a flag inside a symptom phrase is dropped."""
    neutral = [_Span(m.start(), m.end(), "neutral") for m in vocab.neutral.finditer(text)]
    symptoms = [
        s
        for s in _longest_first(neutral + _symptom_candidates(text, vocab), len(text))
        if s.kind != "neutral"
    ]
    flags = [
        s
        for s in _longest_first(neutral + _flag_candidates(text, vocab), len(text))
        if s.kind != "neutral"
        and not (
            s.code in _GENERIC_FLAGS
            and any(o.start <= s.start and s.end <= o.end for o in symptoms)
        )
    ]
    return sorted(symptoms + flags, key=lambda s: (s.start, s.end))


def _symptom_candidates(text: str, vocab: Vocabulary) -> list[_Span]:
    spans: list[_Span] = []
    for lex in vocab.symptoms.values():
        spans += [
            _Span(m.start(), m.end(), "mention", lex.code) for m in lex.mentions.finditer(text)
        ]
        spans += [
            _Span(m.start(), m.end(), "negated", lex.code) for m in lex.negated.finditer(text)
        ]
        for level in lex.levels:
            spans += [
                _Span(m.start(), m.end(), "implies", lex.code, level.name, level.grade)
                for m in level.implies.finditer(text)
            ]
    return spans


def _flag_candidates(text: str, vocab: Vocabulary) -> list[_Span]:
    return [
        _Span(m.start(), m.end(), "flag", name)
        for name, phrases in vocab.flags.items()
        for m in phrases.finditer(text)
    ]


def _longest_first(spans: list[_Span], length: int) -> list[_Span]:
    """Keep non-overlapping spans, longest first (ties by kind, then position)."""
    occupied = bytearray(length)
    kept = []
    for span in sorted(spans, key=lambda s: (s.start - s.end, _KIND_RANK[s.kind], s.start)):
        if 1 in occupied[span.start : span.end]:
            continue
        occupied[span.start : span.end] = b"\x01" * (span.end - span.start)
        kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def _negations(text: str, spans: list[_Span], segments: _Segments, vocab: Vocabulary) -> list[bool]:
    """For each symptom or flag span: is it negated?"""
    result: list[bool] = []
    previous: _Span | None = None
    previous_negated = False
    for span in spans:
        clause_start, clause_end = segments.clause(span.start, span.end)
        negated = span.kind == "negated" or _negated_by_cue(
            text, span, clause_start, clause_end, vocab
        )
        if not negated and previous is not None and previous_negated:
            same_clause = segments.clause(previous.start, previous.end)[0] == clause_start
            gap = text[previous.end : span.start]
            negated = bool(
                same_clause and vocab.negation_chain and vocab.negation_chain.fullmatch(gap)
            )
        result.append(negated)
        previous, previous_negated = span, negated
    return result


def _negated_by_cue(text: str, span: _Span, clause_start: int, clause_end: int, vocab) -> bool:
    before = text[max(clause_start, span.start - 60) : span.start]
    if vocab.negation_before is not None and vocab.negation_before.search(before):
        return True
    after = text[span.end : min(clause_end, span.end + 40)]
    if vocab.negation_after is not None and vocab.negation_after.match(after):
        return True
    answer = text[span.end : span.end + 20]
    return vocab.negation_answer is not None and vocab.negation_answer.match(answer) is not None


# --------------------------------------------------------------------------- grading


def _severity_by_span(text: str, spans: _SpanIndex, segments: _Segments, vocab) -> dict[int, int]:
    """Severity words (mild 1 .. severe 3) go to the nearest symptom in the clause or sentence."""
    words = [_Span(m.start(), m.end(), "neutral") for m in vocab.severity_neutral.finditer(text)]
    for grade, phrases in vocab.severity:
        words += [
            _Span(m.start(), m.end(), "mention", "", None, grade) for m in phrases.finditer(text)
        ]
    best: dict[int, int] = {}
    for word in _longest_first(words, len(text)):
        if word.grade is None:
            continue
        index = spans.nearest(word, segments.clause(word.start, word.end), prefer="after")
        if index is None:
            index = spans.nearest(word, segments.sentence(word.start, word.end), prefer="before")
        if index is not None:
            best[index] = max(best.get(index, 0), word.grade)
    return best


class _SpanIndex:
    """Non-overlapping spans sorted by position, for nearest-neighbour look-ups."""

    def __init__(self, spans: list[_Span]):
        self.spans = spans
        self._starts = [s.start for s in spans]
        self._ends = [s.end for s in spans]

    def nearest(self, item: _Span | _Count, window: tuple[int, int], prefer: str) -> int | None:
        """Index of the span nearest to item inside window (ties go to the preferred side)."""
        after = bisect.bisect_left(self._starts, item.end)
        before = bisect.bisect_right(self._ends, item.start) - 1
        if before + 1 < after:
            return before + 1  # overlapping span
        candidates = []
        if before >= 0 and self._inside(before, window):
            side = 0 if prefer == "before" else 1
            candidates.append((item.start - self._ends[before], side, before))
        if after < len(self.spans) and self._inside(after, window):
            side = 0 if prefer == "after" else 1
            candidates.append((self._starts[after] - item.end, side, after))
        return min(candidates)[2] if candidates else None

    def _inside(self, index: int, window: tuple[int, int]) -> bool:
        return self._ends[index] > window[0] and self._starts[index] < window[1]


def _counts_by_span(text: str, spans: _SpanIndex, segments: _Segments) -> dict[int, int]:
    """Counts (7次, 5-6 times, twice) go to the nearest symptom in the clause, sentence or text."""
    best: dict[int, int] = {}
    for count in _find_counts(text):
        index = spans.nearest(count, segments.clause(count.start, count.end), "before")
        if index is None:
            index = spans.nearest(count, segments.sentence(count.start, count.end), "before")
        if index is None:
            index = spans.nearest(count, (0, len(text)), "before")
        if index is not None:
            best[index] = max(best.get(index, -1), count.value)
    return best


def _cue_levels(
    text: str, spans: list[_Span], segments: _Segments, vocab
) -> dict[int, tuple[str, str]]:
    """Level cues ("at rest", "只能喝") in the same sentence as a mention: index -> (level, cue)."""
    levels: dict[int, tuple[str, str]] = {}
    cache: dict[tuple[str, int, int], tuple[str, str] | None] = {}
    for index, span in enumerate(spans):
        lex = vocab.symptoms.get(span.code) if span.kind != "flag" else None
        if lex is None or not lex.levels:
            continue
        sentence = segments.sentence(span.start, span.end)
        key = (lex.code, *sentence)
        if key not in cache:
            cache[key] = _best_cue_level(text, lex, sentence, vocab.cue_cancel)
        if cache[key] is not None:
            levels[index] = cache[key]
    return levels


def _best_cue_level(
    text: str, lex: SymptomLexicon, window: tuple[int, int], cancel: re.Pattern[str] | None
) -> tuple[str, str] | None:
    cues = [
        _Span(m.start(), m.end(), "mention", lex.code, level.name, level.grade)
        for level in lex.levels
        for m in level.cues.finditer(text, *window)
    ]
    kept = [
        cue
        for cue in _longest_first(cues, len(text))
        if cancel is None or not cancel.match(text[cue.end : min(window[1], cue.end + 16)])
    ]
    if not kept:
        return None
    best = max(kept, key=lambda s: s.grade or 0)
    return (best.level or "", text[best.start : best.end])


@dataclass
class _SpanGrade:
    grade: int | None
    negated: bool
    detail: dict[str, Any]
    cue: str = ""


def _grade_span(
    lex: SymptomLexicon,
    span: _Span,
    cue: tuple[str, str] | None,
    severity: int | None,
    count: int | None,
    context: ReplyContext,
) -> _SpanGrade:
    grades: list[int] = []
    detail: dict[str, Any] = {}
    cue_level, cue_text = cue or (None, "")
    level = _higher_level(lex, span.level, cue_level)
    if level is not None:
        grades.append(level.grade)
        detail["level"] = level.name
    used_cue = cue_text if level is not None and level.name == cue_level else ""
    negated = False
    if lex.grading == "count" and count is not None:
        count_grade = _count_grade(lex, count, context, detail)
        if count_grade is None:
            negated = True
        else:
            grades.append(count_grade)
    if severity and lex.grading != "temperature":
        grades.append(severity)
        detail["severity"] = ("mild", "moderate", "severe")[severity - 1]
    return _SpanGrade(max(grades) if grades else None, negated, detail, used_cue)


def _higher_level(lex: SymptomLexicon, *names: str | None) -> LevelLexicon | None:
    levels = [lv for lv in (lex.level(n) for n in names if n) if lv is not None]
    return max(levels, key=lambda lv: lv.grade) if levels else None


def _count_grade(
    lex: SymptomLexicon, count: int, context: ReplyContext, detail: dict[str, Any]
) -> int | None:
    """Grade from a count (None when the count is zero: the symptom is absent)."""
    detail[lex.count_key] = count
    if count == 0:
        return None
    measured = count
    if lex.subtract_baseline:
        measured = max(count - max(int(context.baseline_stools), 0), 0)
        if lex.over_baseline_key:
            detail[lex.over_baseline_key] = measured
    for minimum, grade in lex.count_grades:
        if measured >= minimum:
            return grade
    return lex.count_grades[-1][1] if lex.count_grades else 1


def _temperature_grade(lex: SymptomLexicon, celsius: float) -> int | None:
    for kind, bound, grade in lex.temperature_grades:
        if (kind == "above" and celsius > bound) or (kind == "at_least" and celsius >= bound):
            return grade
    return None


# --------------------------------------------------------------------------- extraction


@dataclass
class _Extraction:
    symptoms: list[SymptomMention]
    flags: list[str]
    negated_flags: list[str]
    temperature_c: float | None
    covered: list[tuple[int, int]] = field(default_factory=list)


def _extract(text: str, vocab: Vocabulary, context: ReplyContext) -> _Extraction:
    spans = _phrase_spans(text, vocab)
    segments = _segments(text, vocab, spans)
    negated = _negations(text, spans, segments, vocab)
    symptom_spans = [s for s in spans if s.kind != "flag"]
    symptom_negated = [n for s, n in zip(spans, negated, strict=True) if s.kind != "flag"]
    index = _SpanIndex(symptom_spans)
    severity = _severity_by_span(text, index, segments, vocab)
    counts = _counts_by_span(text, index, segments)
    cue_levels = _cue_levels(text, symptom_spans, segments, vocab)
    merged: dict[str, list[tuple[_Span, _SpanGrade]]] = {}
    for index, span in enumerate(symptom_spans):
        lex = vocab.symptoms[span.code]
        graded = _grade_span(
            lex, span, cue_levels.get(index), severity.get(index), counts.get(index), context
        )
        graded.negated = graded.negated or symptom_negated[index]
        merged.setdefault(span.code, []).append((span, graded))
    mentions = [_merge(text, code, items) for code, items in merged.items()]
    flags = [(s.code, n) for s, n in zip(spans, negated, strict=True) if s.kind == "flag"]
    contextual = (
        context.awaiting_temperature
        or "fever" in merged
        or vocab.temperature_words.search(text) is not None
    )
    temperatures = _find_temperatures(text, contextual)
    temperature = max((t.celsius for t in temperatures), default=None)
    mentions = _apply_temperature(mentions, temperatures, vocab.symptoms["fever"], text)
    return _Extraction(
        symptoms=mentions,
        flags=_unique(name for name, neg in flags if not neg),
        negated_flags=_unique(name for name, neg in flags if neg),
        temperature_c=None if temperature is None else round(temperature, 1),
        covered=[(s.start, s.end) for s in spans]
        + [(m.start(), m.end()) for m in vocab.neutral.finditer(text)]
        + [(t.start, t.end) for t in temperatures]
        + [(m.start(), m.end()) for m in vocab.temperature_words.finditer(text)],
    )


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


def _merge(text: str, code: str, items: list[tuple[_Span, _SpanGrade]]) -> SymptomMention:
    """One mention per code: active if any span is active; the highest grade and level win."""
    active = [(s, g) for s, g in items if not g.negated]
    chosen = active or items
    grades = [g.grade for _, g in chosen if g.grade is not None]
    detail: dict[str, Any] = {}
    for _, graded in sorted(chosen, key=lambda pair: pair[1].grade or -1):
        for key, value in graded.detail.items():
            if isinstance(value, int) and isinstance(detail.get(key), int):
                detail[key] = max(detail[key], value)
            else:
                detail[key] = value
    pieces = [text[s.start : s.end] for s, _ in chosen] + [g.cue for _, g in chosen if g.cue]
    evidence = " | ".join(_unique(pieces))
    return SymptomMention(
        code=code,
        grade=max(grades) if grades and active else None,
        negated=not active,
        evidence=evidence,
        detail=detail,
    )


def _apply_temperature(
    mentions: list[SymptomMention], temperatures: list[_Temperature], fever: SymptomLexicon, text
) -> list[SymptomMention]:
    """Grade fever from the highest temperature; a reading >= 38.0 is a fever whatever the words."""
    if not temperatures:
        return mentions
    hottest = max(temperatures, key=lambda t: t.celsius)
    celsius = round(hottest.celsius, 1)
    grade = _temperature_grade(fever, celsius)
    existing = next((m for m in mentions if m.code == "fever"), None)
    is_fever = celsius >= fever.fever_at_least
    if existing is None and not is_fever:
        return mentions
    if existing is not None and existing.negated and not is_fever:
        return mentions
    evidence = text[hottest.start : hottest.end]
    if existing is not None and not existing.negated:
        evidence = f"{existing.evidence} | {evidence}"
    updated = SymptomMention(
        code="fever",
        grade=grade,
        negated=False,
        evidence=evidence,
        detail={**(existing.detail if existing else {}), "temperature_c": celsius},
    )
    rest = [m for m in mentions if m.code != "fever"]
    return (
        [updated, *rest]
        if existing is None
        else [updated if m is existing else m for m in mentions]
    )


# --------------------------------------------------------------------------- answers and intent

_CODE_MESSAGE = re.compile(r"(?:[a-z]{1,3}\s*[:=]?\s*\d{1,2}(?!\d)[\s,;/&]*)+")
_CODE_PAIR = re.compile(r"([a-z]{1,3})\s*[:=]?\s*(\d{1,2})(?!\d)")
_MAX_CODE_MESSAGE = 80


def parse_codes(normalized: str) -> dict[str, int]:
    """Compact check-in codes: "d2 s1 f0" -> {"D": 2, "S": 1, "F": 0}; {} if not only codes."""
    text = normalized.strip().lower()
    if not text or len(text) > _MAX_CODE_MESSAGE or not _CODE_MESSAGE.fullmatch(text):
        return {}
    return {letters.upper(): int(value) for letters, value in _CODE_PAIR.findall(text)}


def _bare_number(spaced: str) -> int | None:
    if re.fullmatch(r"\d{1,3}", spaced):
        return int(spaced)
    if 0 < len(spaced) <= 3 and all(c in _CN_NUMERAL_CHARS for c in spaced):
        return parse_chinese_number(spaced)
    return None


def _scored_mention(
    code: str, scale: str, score: int, evidence: str, levels: Mapping[int, str] | None = None
) -> SymptomMention:
    """A check-in answer (0-4 score, or a count) as a symptom mention."""
    detail: dict[str, Any] = {"score": score, "scale": scale}
    if scale in _COMPOSITE_GRADE:
        detail[scale] = score  # the raw PRO-CTCAE answer, which the alert rules read
    if levels and score in levels:
        detail["level"] = levels[score]
    if score == 0:
        return SymptomMention(code, None, True, evidence, detail)
    if scale in _COMPOSITE_GRADE:
        grade = _COMPOSITE_GRADE[scale][score] if score <= 4 else None
    elif scale == "grade":
        grade = min(score, 5)
    else:
        grade = None
    return SymptomMention(code, grade, False, evidence, detail)


def _count_answer(
    lex: SymptomLexicon, count: int, evidence: str, context: ReplyContext
) -> SymptomMention:
    detail: dict[str, Any] = {}
    grade = _count_grade(lex, count, context, detail)
    return SymptomMention(lex.code, grade, grade is None, evidence, detail)


def _checkin_mentions(
    codes: dict[str, int], vocab: Vocabulary, evidence: str
) -> list[SymptomMention]:
    mentions = []
    for letters, score in codes.items():
        spec = vocab.intents.checkin_codes.get(letters)
        if spec is not None:
            mentions.append(_scored_mention(spec.symptom, spec.scale, score, evidence, spec.levels))
    return mentions


def _strip_polite(spaced: str, polite: tuple[str, ...]) -> str:
    text = spaced
    changed = True
    while changed and text:
        changed = False
        for word in polite:
            cjk = re.match(f"[{_CJK}]", word) is not None
            if text.startswith(word) and (cjk or text[len(word) : len(word) + 1] in ("", " ")):
                text, changed = text[len(word) :].strip(), True
            if text.endswith(word) and (cjk or text[-len(word) - 1 : -len(word)] in ("", " ")):
                text, changed = text[: -len(word)].strip(), True
    return text


def _whole_match(whole: WholeSet, spaced: str, polite: tuple[str, ...]) -> bool:
    return whole.matches(spaced) or whole.matches(_strip_polite(spaced, polite))


# Characters before a confirm word searched for a negator: the longest one the vocabulary has
# ("shouldnt really ", "不太") with room to spare.
NEGATOR_WINDOW = 24


def _is_confirmation(text: str, spaced: str, lex: IntentLexicon) -> bool:
    if "?" in text or len(spaced) > lex.confirm_max_chars:
        return False
    if any(e in text for e in lex.confirm_emoji):
        return True
    for match in lex.confirm.finditer(text):
        before = text[max(0, match.start() - NEGATOR_WINDOW) : match.start()]
        if lex.confirm_negators is None or not lex.confirm_negators.search(before):
            return True
    return False


def _simple_intent(
    text: str, spaced: str, vocab: Vocabulary, context: ReplyContext, number: int | None
) -> str:
    """Intent of a message without clinical content."""
    lex = vocab.intents
    if _whole_match(lex.opt_out, spaced, lex.polite) or lex.opt_out_anywhere.search(text):
        return "opt_out"
    if _whole_match(lex.opt_in, spaced, lex.polite):
        return "opt_in"
    if context.opted_out and _whole_match(lex.opt_in_after_opt_out, spaced, lex.polite):
        return "opt_in"
    if (not spaced and "?" in text) or _whole_match(lex.help, spaced, lex.polite):
        return "help"
    if number is not None:
        return lex.numbered.get(str(number), "unknown")
    if lex.reschedule.search(text):
        return "reschedule_request"
    if _is_confirmation(text, spaced, lex):
        return "confirm"
    return "unknown"


def _checkin_number_applies(number: int | None, context: ReplyContext) -> bool:
    if number is None or not context.awaiting_checkin:
        return False
    if context.checkin_scale == "count":
        return number <= _MAX_COUNT
    return number <= 4


# --------------------------------------------------------------------------- explanation


def explain_reply(text: str, vocabulary: Vocabulary | None = None) -> dict[str, Any]:
    """Every step of reading ``text``: normalisation, phrases matched with their entry, unread words."""
    vocab = vocabulary or load_vocabulary()
    steps, truncated = normalization_steps(text, vocab)
    normalized = steps[-1][1]
    spans = _phrase_spans(normalized, vocab)
    negated = _negations(normalized, spans, _segments(normalized, vocab, spans), vocab)
    matches = [
        {
            "text": normalized[span.start : span.end],
            "entry": f"{'flags' if span.kind == 'flag' else 'symptoms'}.{span.code}",
            "kind": span.kind,
            "level": span.level,
            "negated": is_negated,
            "source": vocab.flag_sources.get(span.code, "") if span.kind == "flag" else "",
        }
        for span, is_negated in zip(spans, negated, strict=True)
    ]
    return {
        "original": text,
        "steps": [{"step": name, "text": value} for name, value in steps],
        "truncated": truncated,
        "matches": matches,
    }


# --------------------------------------------------------------------------- entry point


def parse_reply(
    text: str,
    *,
    lang: str = "auto",
    context: ReplyContext | None = None,
    vocabulary: Vocabulary | None = None,
) -> ParsedReply:
    """Understand one SMS reply. Never raises: an internal error gives a parse_error reply.

    With the default vocabulary, replies up to CACHED_PARSE_CHARS long are remembered (the
    parse is a pure function of the text, language and context; "1", "好的", "收到" come
    again and again): each call gets its own copy.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    context = context or ReplyContext()
    if vocabulary is None and len(text) <= CACHED_PARSE_CHARS:
        remembered = _parse_with_default_vocabulary(text, lang, context)
        return replace(remembered, codes=dict(remembered.codes))
    return _parse_safely(text, lang, context, vocabulary or load_vocabulary())


CACHED_PARSE_CHARS = 160
"""Longest reply whose parse is remembered (one SMS segment of Latin text); longer ones are
parsed every time, so the cache stays small (PARSE_CACHE_SIZE entries)."""
PARSE_CACHE_SIZE = 4096


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_with_default_vocabulary(text: str, lang: str, context: ReplyContext) -> ParsedReply:
    return _parse_safely(text, lang, context, load_vocabulary())


def forget_parses() -> None:
    """Forget every remembered parse (tests: each one parses with the code it runs)."""
    _parse_with_default_vocabulary.cache_clear()


def _parse_safely(text: str, lang: str, context: ReplyContext, vocab: Vocabulary) -> ParsedReply:
    try:
        return _parse(text, lang, context, vocab)
    except Exception:  # safety net: an unreadable reply must still reach a person
        return ParsedReply(
            text=text,
            normalized="",
            language="unknown",
            intent="unknown",
            flags=("parse_error",),
        )


def _parse(text: str, lang: str, context: ReplyContext, vocab: Vocabulary) -> ParsedReply:
    normalized, truncated = _normalize(text, vocab)
    language = lang if lang in ("zh", "en") else detect_language(normalized)
    spaced = _spaced(normalized)
    number = _bare_number(spaced)
    codes = {} if context.awaiting_temperature else parse_codes(normalized)
    extraction = _extract(normalized, vocab, context)
    symptoms = list(extraction.symptoms)
    intent: str | None = None
    answer = number
    if codes:
        coded = _checkin_mentions(codes, vocab, normalized)
        if coded or context.awaiting_checkin:
            intent, symptoms = "checkin_answer", coded
    elif _checkin_number_applies(number, context):
        intent = "checkin_answer"
        symptoms = _checkin_number_mentions(number, vocab, normalized, context)
    if intent is None:
        clinical = symptoms or extraction.temperature_c is not None or extraction.flags
        if clinical or extraction.negated_flags:
            intent = "symptom_report"
        else:
            intent = _simple_intent(normalized, spaced, vocab, context, number)
    flags = list(extraction.flags)
    if truncated:
        flags.append("truncated")
    if intent == "symptom_report" and vocab.intents.opt_out_anywhere.search(normalized):
        flags.append("opt_out_request")  # the symptom comes first; the opt-out is still asked for
    unread = _unread(normalized, extraction.covered)
    hints = _unread_hints(normalized, unread, extraction.covered, vocab)
    return ParsedReply(
        text=text,
        normalized=normalized,
        language=language,
        intent=intent,
        symptoms=tuple(symptoms),
        temperature_c=extraction.temperature_c,
        answer=answer,
        codes=codes,
        flags=tuple(flags),
        unread_hints=() if intent == "checkin_answer" else hints,
        non_clinical=_is_non_clinical(normalized, spaced, unread, hints, vocab),
    )


def _unread(text: str, covered: list[tuple[int, int]]) -> str:
    """The text with every span the parser understood blanked out."""
    chars = list(text)
    for start, end in covered:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


_HINT_CLAUSE = re.compile(r"[^,，。.!?;；\n]+")


def _unread_hints(
    text: str, unread: str, covered: list[tuple[int, int]], vocab: Vocabulary
) -> tuple[str, ...]:
    """Clinical words in clauses the parser understood nothing of ("partly read" messages)."""
    found: list[str] = []
    for clause in _HINT_CLAUSE.finditer(text):
        start, end = clause.span()
        if any(s < end and start < e for s, e in covered):
            continue  # the clause was read: its other words are context ("rash on my arm")
        found += [m.group(0) for m in vocab.clinical_hints.finditer(unread, start, end)]
    return tuple(_unique(found))


def _is_non_clinical(text: str, spaced: str, unread: str, hints: tuple[str, ...], vocab) -> bool:
    """Clearly not about health: no clinical word left unread, and empty or about logistics."""
    if hints:
        return False
    if not re.search(f"[a-z{_CJK}0-9]", spaced):
        return True
    return (
        vocab.non_clinical.search(unread) is not None or vocab.non_clinical.search(text) is not None
    )


def _checkin_number_mentions(
    number: int | None, vocab: Vocabulary, evidence: str, context: ReplyContext
) -> list[SymptomMention]:
    code = context.checkin_symptom
    if number is None or code not in vocab.symptoms:
        return []
    lex = vocab.symptoms[code]
    if context.checkin_scale == "count" and lex.grading == "count":
        return [_count_answer(lex, number, evidence, context)]
    return [_scored_mention(code, context.checkin_scale, number, evidence)]
