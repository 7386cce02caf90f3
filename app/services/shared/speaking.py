"""Rendering many messages in one language: Flask-Babel's catalogue looked up once, not per string.

``speaking(locale)`` holds that locale's translations (looked up under Flask-Babel's
``force_locale``); inside it, ``gettext`` and ``ngettext`` here translate exactly as Flask-Babel's
do (same catalogue, same ``%`` formatting) without its per-call context lookups, which were most
of the cost of planning a patient's reminders. Outside the block they are Flask-Babel's own.

Only this module's ``gettext`` / ``ngettext`` speak the held language: Flask-Babel's own locale
is not forced for the block, so Babel's formatting inside it is given its ``locale=`` explicitly.

``catalogues_held()``: inside it (a run rendering for many patients), each language's
translations are looked up once for the whole block instead of once per ``speaking``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from gettext import NullTranslations
from typing import Any

import flask_babel

_held: ContextVar[NullTranslations | None] = ContextVar("cadence_translations", default=None)
_known: ContextVar[dict[str, NullTranslations] | None] = ContextVar(
    "cadence_catalogues", default=None
)


@contextmanager
def catalogues_held() -> Iterator[None]:
    """Inside: ``speaking`` looks each language's translations up once for the whole block."""
    token = _known.set({})
    try:
        yield
    finally:
        _known.reset(token)


@contextmanager
def speaking(locale: str) -> Iterator[None]:
    """Translate in ``locale`` (this module's gettext / ngettext) inside the block."""
    token = _held.set(translations_of(locale))
    try:
        yield
    finally:
        _held.reset(token)


def translations_of(locale: str) -> NullTranslations:
    """Flask-Babel's translations for ``locale`` (kept for the block of ``catalogues_held``)."""
    known = _known.get()
    found = None if known is None else known.get(locale)
    if found is None:
        with flask_babel.force_locale(locale):
            found = flask_babel.get_translations()
        if known is not None:
            known[locale] = found
    return found


def gettext(string: str, **variables: Any) -> str:
    """Flask-Babel's gettext, with the held translations inside ``speaking``."""
    held = _held.get()
    if held is None:
        return flask_babel.gettext(string, **variables)
    text = held.ugettext(string)  # type: ignore[attr-defined]
    return text % variables if variables else text


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """Flask-Babel's ngettext, with the held translations inside ``speaking``."""
    held = _held.get()
    if held is None:
        return flask_babel.ngettext(singular, plural, num, **variables)
    variables.setdefault("num", num)
    return held.ungettext(singular, plural, num) % variables  # type: ignore[attr-defined]
