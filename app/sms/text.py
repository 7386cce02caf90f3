"""Clean text typed by staff before it goes out by SMS.

Terminal escape sequences and control characters (ESC, BEL, NUL, DEL, C1 controls...) and bidirectional overrides are removed;
tabs become spaces; CR LF, lone CR and any run of line breaks (blank lines included) become one
newline, which every SMS encoding carries; spaces around a line break and at either end go.
"""

from __future__ import annotations

import re
import unicodedata

_LINE_BREAKS = re.compile(
    r"[ \t]*(?:\r\n|\r|\n|\u2028|\u2029|\x0b|\x0c)(?:[ \t\r\n\x0b\x0c\u2028\u2029]*)"
)
_ANSI_SEQUENCES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_SPACES = re.compile(r"[ \t]{2,}")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_sms_text(text: str) -> str:
    """The text with line breaks collapsed to single newlines and control characters removed."""
    text = _LINE_BREAKS.sub("\n", _ANSI_SEQUENCES.sub("", text or ""))
    kept = "".join(ch for ch in text if _kept(ch))
    kept = _SPACES.sub(" ", kept.replace("\t", " "))
    return "\n".join(line.strip(" ") for line in kept.split("\n")).strip()


def _kept(ch: str) -> bool:
    """Newlines and tabs stay (tabs become spaces); other controls and bidi overrides go."""
    if ch in "\n\t":
        return True
    return unicodedata.category(ch) != "Cc" and ch not in _BIDI_CONTROLS
