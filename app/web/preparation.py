"""Fasting and contrast of the day's tests in words, for the printable clinic list."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.domain.protocol import Fasting
from app.web.labels import humanise

CONTRAST_LABELS = {
    "barium": _l("Barium contrast: drunk during the X-ray"),
    "water_soluble": _l("Water-soluble contrast (not barium): after re-irradiation"),
}


@dataclass(frozen=True)
class FastingLine:
    """One test of the day that needs fasting or a contrast: its title and the rule in words."""

    title: str
    rules: list[str]


def fasting_text(fasting: Fasting) -> str:
    """'Nothing to eat for 8 h before (water allowed)' and the like."""
    if fasting.water_hours and fasting.water_hours >= fasting.food_hours:
        return _("Nothing to eat or drink for %(hours)d h before", hours=fasting.water_hours)
    if fasting.water_hours:
        return _(
            "Nothing to eat for %(food)d h and nothing to drink for %(water)d h before",
            food=fasting.food_hours,
            water=fasting.water_hours,
        )
    return _("Nothing to eat for %(hours)d h before (water allowed)", hours=fasting.food_hours)


def contrast_text(code: str) -> str:
    """The contrast of an imaging test in words."""
    label = CONTRAST_LABELS.get(code)
    return str(label) if label is not None else humanise(code)


def event_rules(details: Mapping[str, Any]) -> tuple[Fasting | None, list[str]]:
    """An event's fasting rule (None: none) and its rules in words (fasting, then contrast)."""
    fasting = Fasting.strictest([Fasting.from_json(details.get("fasting"))])
    rules = [fasting_text(fasting)] if fasting is not None else []
    if details.get("contrast"):
        rules.append(contrast_text(str(details["contrast"])))
    return fasting, rules


def last_intake(day: date, arrive: time | None, fasting: Fasting | None) -> list[str]:
    """'Last meal by 23:30 the day before', from the arrival time and the strictest rule."""
    if arrive is None or fasting is None:
        return []
    at = datetime.combine(day, arrive)
    lines = []
    if fasting.food_hours:
        meal = at - timedelta(hours=fasting.food_hours)
        clock = meal.strftime("%H:%M")
        lines.append(_day_before(_("Last meal by %(time)s", time=clock), meal, day))
    if fasting.water_hours:
        drink = at - timedelta(hours=fasting.water_hours)
        clock = drink.strftime("%H:%M")
        lines.append(_day_before(_("Last drink by %(time)s", time=clock), drink, day))
    return lines


def _day_before(text: str, when: datetime, day: date) -> str:
    if when.date() < day:
        return _("%(text)s the day before", text=text)
    return text


def strictest(rules: Iterable[Fasting | None]) -> Fasting | None:
    """The one fasting rule that satisfies all of the day's tests."""
    return Fasting.strictest(rules)
