"""Normalise a reply before it is parsed: script, subject, pinyin, homophone typos, English typos.

Patients and families write the same emergency in many ways: Traditional characters, whole
sentences in toneless pinyin, a key character replaced by another with the same sound (the input
method's guess), English typos, or about a parent in the third person. Each step below maps one of
those ways onto the words the vocabulary knows. The original text is kept by the caller for the
record; these steps only change the text that is matched.

Pure domain code: OpenCC (Traditional -> Simplified), pypinyin (pinyin of characters) and
rapidfuzz (bounded edit distance) are libraries, not frameworks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice, product

import jieba
import opencc
from pypinyin import Style, lazy_pinyin, pinyin
from pypinyin.pinyin_dict import pinyin_dict
from rapidfuzz import process
from rapidfuzz.distance import OSA

_CJK_CHAR = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN_RUN = re.compile(r"[a-z][a-z' ]*[a-z]|[a-z]")
_MAX_SYLLABLES = 8
_MIN_PINYIN_PHRASE = 2
"""A pinyin run is converted only when it contains a known phrase of at least this many syllables."""


# --------------------------------------------------------------------------- Traditional -> Simplified


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional Chinese characters -> Simplified (OpenCC t2s); other text is unchanged."""
    if not _CJK_CHAR.search(text):
        return text
    return _converter().convert(text)


# --------------------------------------------------------------------------- subject

_ZH_RELATIVES = (
    "老头子|老太太|老太婆|老爷子|老人家|家里老人|家里的老人|老人|老伴儿?|爸爸|妈妈|父亲|母亲|老爸|老妈|爸|妈|"
    "丈夫|老公|妻子|老婆|爱人|爷爷|奶奶|外公|外婆|姥姥|姥爷|公公|婆婆|岳父|岳母|儿子|女儿|哥哥|姐姐|弟弟|妹妹|"
    "病人|患者"
)
_ZH_SUBJECT = re.compile(
    rf"(?:我们家|我家|俺家|家里|我的|我|俺)(?:的)?(?:{_ZH_RELATIVES})|(?<![其吉])(?:他|她)(?!们)"
    rf"|^(?:{_ZH_RELATIVES})"
)
_EN_RELATIVE = (
    r"(?:father|dad|daddy|mother|mom|mum|mommy|mummy|husband|wife|partner|son|daughter|brother|"
    r"sister|grandfather|grandmother|grandpa|grandma|granddad|uncle|aunt|patient|parent)"
)
_EN_SUBJECT: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(rf"\b(?:my|our|the) {_EN_RELATIVE}'?s\b(?! (?:is|has|was|had|can|feels|keeps))"),
        "my",
    ),
    (re.compile(rf"\b(?:my|our|the) {_EN_RELATIVE}\b"), "i"),
    (re.compile(rf"^{_EN_RELATIVE}\b"), "i"),
    (re.compile(r"\b(?:he|she)'s\b"), "i'm"),
    (re.compile(r"\b(?:he|she)\b"), "i"),
    (re.compile(r"\bhis\b"), "my"),
    (re.compile(r"\bher\b"), "my"),
    (re.compile(r"\bhim\b"), "me"),
)
_EN_AGREEMENT: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bi is\b"), "i am"),
    (re.compile(r"\bi has\b"), "i have"),
    (re.compile(r"\bi doesn'?t\b"), "i don't"),
    (re.compile(r"\bi does\b"), "i do"),
    (re.compile(r"\bi (feel|keep|seem|look|say|cough|vomit|throw|want|need|get)s\b"), r"i \1"),
)


def to_first_person(text: str) -> tuple[str, bool]:
    """A report about "he / my father / 我爸" rewritten as the patient's own; True if rewritten."""
    out = _ZH_SUBJECT.sub("我", text) if _CJK_CHAR.search(text) else text
    if re.search("[a-z]", out):
        for pattern, replacement in _EN_SUBJECT:
            out = pattern.sub(replacement, out)
        if out != text:
            for pattern, replacement in _EN_AGREEMENT:
                out = pattern.sub(replacement, out)
    return out, out != text


# --------------------------------------------------------------------------- pinyin


def _toneless(syllable: str) -> str:
    decomposed = unicodedata.normalize("NFD", syllable.replace("ü", "v"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ü", "v")


@lru_cache(maxsize=1)
def pinyin_syllables() -> frozenset[str]:
    """Every toneless pinyin syllable (from pypinyin's dictionary; ü written v)."""
    found: set[str] = set()
    for readings in pinyin_dict.values():
        for reading in readings.split(","):
            found.add(_toneless(reading.strip()))
    found.discard("")
    return frozenset(s for s in found if s.isalpha() and s.isascii())


def split_pinyin(word: str) -> list[str] | None:
    """A toneless pinyin word split into syllables ("fashao" -> [fa, shao]); None if not pinyin."""
    syllables = pinyin_syllables()
    word = word.replace("'", "")
    best: list[list[str] | None] = [None] * (len(word) + 1)
    best[0] = []
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 6), end):
            piece = word[start:end]
            prefix = best[start]
            if prefix is not None and piece in syllables:
                candidate = [*prefix, piece]
                current = best[end]
                if current is None or len(candidate) < len(current):
                    best[end] = candidate
    return best[len(word)]


def pinyin_of(text: str) -> list[str]:
    """Toneless pinyin of each character of ``text`` (non-Chinese characters as they are)."""
    return lazy_pinyin(text, style=Style.NORMAL, v_to_u=False, errors=lambda s: list(s))


_LOOSE_INITIAL = re.compile(r"^(zh|ch|sh|n)")
_LOOSE_FINAL = re.compile(r"(ang|eng|ing)$")
_MAX_READINGS = 16


def loose_syllable(syllable: str) -> str:
    """A syllable with the sounds input methods confuse merged (zh/z, ch/c, sh/s, n/l, -ng/-n)."""
    merged = _LOOSE_INITIAL.sub(
        lambda m: {"zh": "z", "ch": "c", "sh": "s", "n": "l"}[m.group(1)], syllable
    )
    return _LOOSE_FINAL.sub(lambda m: m.group(1)[:-1], merged)


def _readings(chars: str) -> list[tuple[str, ...]]:
    """Loose pinyin keys of a phrase under every reading of its characters (at most 16)."""
    in_context = pinyin_of(chars)
    loose = [
        sorted(
            {loose_syllable(in_context[i])}
            | {loose_syllable(r) for r in pinyin(c, style=Style.NORMAL, heteronym=True)[0]}
        )
        for i, c in enumerate(chars)
    ]
    return list(islice(product(*loose), _MAX_READINGS))


def _exact_readings(chars: str) -> list[tuple[str, ...]]:
    """Toneless pinyin of a phrase in context and under every reading of its characters."""
    in_context = pinyin_of(chars)
    options = [
        [in_context[i], *(r for r in pinyin(c, style=Style.NORMAL, heteronym=True)[0])]
        for i, c in enumerate(chars)
    ]
    return list(dict.fromkeys(islice(product(*options), _MAX_READINGS)))


_URGENT_CHARS = "血黑"


def _more_urgent(phrase: str, current: str | None) -> bool:
    """Two phrases that sound the same: keep the first, unless the new one names bleeding."""
    if current is None:
        return True
    urgency = sum(phrase.count(c) for c in _URGENT_CHARS)
    return urgency > sum(current.count(c) for c in _URGENT_CHARS)


@dataclass(frozen=True, eq=False)
class PinyinIndex:
    """Chinese vocabulary phrases by the pinyin of their characters."""

    by_pinyin: dict[tuple[str, ...], str] = field(default_factory=dict)
    clinical: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    lengths: tuple[int, ...] = ()


def build_pinyin_index(clinical: Iterable[str], other: Iterable[str]) -> PinyinIndex:
    """Index of Chinese phrases: ``clinical`` ones are also targets of homophone correction."""
    by_pinyin: dict[tuple[str, ...], str] = {}
    homophones: dict[tuple[str, ...], list[str]] = {}
    for phrase, is_clinical in [*((p, True) for p in clinical), *((p, False) for p in other)]:
        chars = "".join(c for c in phrase if not c.isspace())
        if not chars or not all(_CJK_CHAR.fullmatch(c) for c in chars):
            continue
        if len(chars) > 1 or not is_clinical:  # one syllable alone: everyday words only
            for reading in _exact_readings(chars):
                if _more_urgent(chars, by_pinyin.get(reading)):
                    by_pinyin[reading] = chars
        if is_clinical and len(chars) >= 2:
            for reading in _readings(chars):
                homophones.setdefault(reading, [])
                if chars not in homophones[reading]:
                    homophones[reading].append(chars)
    lengths = tuple(sorted({len(k) for k in homophones}, reverse=True))
    return PinyinIndex(by_pinyin, {k: tuple(v) for k, v in homophones.items()}, lengths)


_ENGLISH_WORDS = frozenset(
    [
        "a",
        "an",
        "he",
        "hen",
        "men",
        "ran",
        "fan",
        "man",
        "long",
        "hang",
        "bang",
        "gang",
        "change",
        "pa",
        "ma",
        "me",
        "die",
        "tie",
        "pie",
        "lie",
        "sue",
    ]
)


_NUMERALS = {
    "ling": "零", "yi": "一", "er": "二", "liang": "两", "san": "三", "si": "四", "wu": "五",
    "liu": "六", "qi": "七", "ba": "八", "jiu": "九", "shi": "十", "ji": "几", "ban": "半",
}  # fmt: skip
_UNITS = {"du": "度", "ci": "次", "dian": "点", "hui": "回", "tang": "趟", "tian": "天"}
_DIGIT_UNIT = re.compile(r"(?<=\d) ?(du|ci|hui|tang)\b(?: ?(?=\d))?")


def _numeral(syllables: list[str], i: int) -> str | None:
    """A number syllable next to another number or a unit ("san shi ba du") as a numeral."""
    syllable = syllables[i]
    if syllable in _UNITS and i > 0 and syllables[i - 1] in _NUMERALS:
        return _UNITS[syllable]
    if syllable not in _NUMERALS:
        return None
    neighbours = syllables[i - 1 : i] + syllables[i + 1 : i + 2]
    return _NUMERALS[syllable] if any(n in _NUMERALS or n in _UNITS for n in neighbours) else None


def from_pinyin(text: str, index: PinyinIndex) -> str:
    """Runs of toneless pinyin that contain a known phrase become Chinese ("fa shao" -> 发烧)."""
    text = _DIGIT_UNIT.sub(
        lambda m: {"du": "度", "ci": "次", "hui": "回", "tang": "趟"}[m.group(1)], text
    )
    return _LATIN_RUN.sub(lambda m: _convert_run(m.group(0), index), text)


def _convert_run(run: str, index: PinyinIndex) -> str:
    """Convert each stretch of pinyin words; other words ("OK", "please") stay as they are."""
    words = run.split()
    stretches: list[list[str]] = [[]]
    for word in words:
        if split_pinyin(word) is None:
            stretches.extend([[word], []])
        else:
            stretches[-1].append(word)
    if len(stretches) == 1:
        return _convert_stretch(run, words, index)
    parts = [
        _convert_stretch(" ".join(ws), ws, index) if ws and split_pinyin(ws[0]) else " ".join(ws)
        for ws in stretches
        if ws
    ]
    return " ".join(parts)


def _convert_stretch(run: str, words: list[str], index: PinyinIndex) -> str:
    syllables: list[str] = []
    for word in words:
        split = split_pinyin(word)
        if split is None:
            return run
        syllables.extend(split)
    if len(syllables) < _MIN_PINYIN_PHRASE or all(w in _ENGLISH_WORDS for w in words):
        return run
    out: list[str] = []
    found_phrase = False
    numerals = 0
    i = 0
    while i < len(syllables):
        for size in range(min(_MAX_SYLLABLES, len(syllables) - i), 0, -1):
            phrase = _numeral(syllables, i) if size == 1 else None
            phrase = phrase or index.by_pinyin.get(tuple(syllables[i : i + size]))
            if phrase is not None:
                out.append(phrase)
                numerals += size == 1 and _numeral(syllables, i) is not None
                found_phrase = found_phrase or size >= _MIN_PINYIN_PHRASE or numerals >= 2
                i += size
                break
        else:
            out.append(f" {syllables[i]} ")
            i += 1
    return re.sub(r" +", " ", "".join(out)) if found_phrase else run


_FUNCTION_CHARS = frozenset("了的得地着过也都又还就很")
_MIN_WORD_FREQUENCY = 5


@lru_cache(maxsize=1)
def _dictionary() -> jieba.Tokenizer:
    jieba.setLogLevel(60)
    jieba.initialize()
    return jieba.dt


def _is_word(chars: str) -> bool:
    """True when ``chars`` is a common Chinese word (jieba's dictionary)."""
    return (_dictionary().FREQ.get(chars) or 0) >= _MIN_WORD_FREQUENCY


def _plausible_typo(chars: list[str], start: int, phrase: str, position: int) -> bool:
    """One changed character is a typo unless the rest is filler or it forms a word outside."""
    kept = [c for k, c in enumerate(phrase) if k != position]
    j = start + position
    if all(c in _FUNCTION_CHARS for c in kept) or {chars[j], phrase[position]} & _FUNCTION_CHARS:
        return False
    before = "".join(chars[j - 1 : j + 1]) if position == 0 and j > 0 else ""
    after = "".join(chars[j : j + 2]) if position == len(phrase) - 1 else ""
    return not ((len(before) == 2 and _is_word(before)) or (len(after) == 2 and _is_word(after)))


def fix_homophones(text: str, index: PinyinIndex) -> str:
    """A clinical phrase typed with one character of the same sound replaced is read as the phrase."""
    if not _CJK_CHAR.search(text) or not index.clinical:
        return text
    chars = list(text)
    sounds = [loose_syllable(s) for s in pinyin_of(text)]
    if len(sounds) != len(chars):
        return text
    i = 0
    while i < len(chars):
        i += _fix_at(chars, sounds, i, index) or 1
    return "".join(chars)


def _fix_at(chars: list[str], sounds: list[str], i: int, index: PinyinIndex) -> int:
    for size in index.lengths:
        window = chars[i : i + size]
        if len(window) < size:
            continue
        for phrase in index.clinical.get(tuple(sounds[i : i + size]), ()):
            changed = [k for k, (a, b) in enumerate(zip(window, phrase, strict=True)) if a != b]
            if not changed:
                return 1  # already right; a typo may still follow inside the window
            if len(changed) == 1 and _plausible_typo(chars, i, phrase, changed[0]):
                chars[i : i + size] = list(phrase)
                return size
    return 0


# --------------------------------------------------------------------------- English typos


def fuzzy_word(word: str, targets: Sequence[str], max_distance: int) -> str | None:
    """The clinical term within ``max_distance`` edits (OSA: adjacent swaps count 1), or None."""
    match = process.extractOne(word, targets, scorer=OSA.distance, score_cutoff=max_distance)
    return None if match is None else match[0]
