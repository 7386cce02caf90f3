"""A sign per calendar event kind: an icon and a letter, so colour is never the only cue.

The letter is in the reader's language (a Latin initial in English, one Chinese character in
Chinese: a Chinese screen shows no Latin letters); the icon is an inline SVG symbol drawn in
templates/calendar/_kind_icons.html.
"""

from __future__ import annotations

from app.web.labels import is_zh

KIND_LETTERS = {
    "infusion": {"en": "I", "zh": "输"},
    "radiotherapy": {"en": "R", "zh": "放"},
    "labs": {"en": "L", "zh": "血"},
    "imaging": {"en": "S", "zh": "影"},
    "endoscopy": {"en": "E", "zh": "镜"},
    "review": {"en": "D", "zh": "诊"},
    "followup": {"en": "F", "zh": "访"},
    "premedication": {"en": "P", "zh": "药"},
    "checkin": {"en": "C", "zh": "问"},
}
"""One letter per kind and language; letters are unique within a language (a test checks)."""


def kind_letter(kind: str) -> str:
    """The letter of an event kind in the reader's language ('?' for an unknown kind)."""
    letters = KIND_LETTERS.get(kind)
    if letters is None:
        return "?"
    return letters["zh" if is_zh() else "en"]
