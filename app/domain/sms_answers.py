"""Reading a bare SMS answer (pure): a value for one check-in question, or a yes / no.

Used by the inbound decision (app.domain.inbound_decision: does this text answer the open
check-in?) and by the check-in service that records the answer, so both read it the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from app.domain import checkins as ck
from app.domain.replies import parse_chinese_number

LABEL_WORDS = re.compile(r"^[\w\s\u3400-\u9fff']+$")
YES_WORDS = frozenset({"1", "y", "yes", "ok", "是", "是的", "有", "对", "确认", "确定"})
NO_WORDS = frozenset({"0", "n", "no", "否", "不", "不是", "没有", "无", "错了"})

_UNIT = re.compile(r"\s*(?:°C|°|度|摄氏度|C)$", re.IGNORECASE)
_NUMBER = re.compile(r"^\d{1,3}(?:\.\d{1,2})?$")
_TRAILING = " \t\r\n。.!！,，;；~～"


def read_single_answer(text: str, question: ck.Question) -> Any | None:
    """A bare answer to one question: a number, a Chinese numeral or an answer label; else None.

    The value is not validated here (``question.problem`` does that), so "7" to a 0-4 question
    is returned as 7 and then refused.
    """
    normalized = unicodedata.normalize("NFKC", text or "").replace("℃", "°C").strip(_TRAILING)
    if not normalized or len(normalized) > 24:
        return None
    bare = _UNIT.sub("", normalized).strip()
    if _NUMBER.match(bare):
        return float(bare) if "." in bare else int(bare)
    if len(bare) <= 3:
        number = parse_chinese_number(bare)
        if number is not None:
            return number
    lowered = normalized.lower()
    for lang in ("zh", "en"):
        for value, label in question.options(lang):
            if LABEL_WORDS.match(label) and lowered == label.lower():
                return value
    return None


def bare(text: str) -> str:
    """The text without width variants and trailing punctuation."""
    return unicodedata.normalize("NFKC", text or "").strip().strip(_TRAILING)


def read_yes_no(text: str) -> bool | None:
    """A bare yes (True) or no (False) to a question asked back; None for anything else."""
    word = bare(text).lower()
    return True if word in YES_WORDS else False if word in NO_WORDS else None


def answers_checkin(
    text: str,
    items: Sequence[ck.CheckinItem],
    current: ck.Question | None,
) -> bool:
    """True when the SMS answers the check-in: a bare answer to ``current`` or compact codes."""
    if current is not None and read_single_answer(text, current) is not None:
        return True
    return ck.parse_compact(text or "", items).recognised
