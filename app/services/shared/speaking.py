"""Rendering many messages in one language: Flask-Babel's catalogue looked up once, not per string.

``speaking(locale)`` is ``force_locale`` that also holds that locale's translations; inside it,
``gettext`` and ``ngettext`` here translate exactly as Flask-Babel's do (same catalogue, same
``%`` formatting) without its per-call context lookups, which were most of the cost of planning
a patient's reminders. Outside the block they are Flask-Babel's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from gettext import NullTranslations
from typing import Any

import flask_babel

_held: ContextVar[NullTranslations | None] = ContextVar("cadence_translations", default=None)


@contextmanager
def speaking(locale: str) -> Iterator[None]:
    """Render in ``locale`` (Flask-Babel's force_locale) with its translations held."""
    with flask_babel.force_locale(locale):
        token = _held.set(flask_babel.get_translations())
        try:
            yield
        finally:
            _held.reset(token)


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
