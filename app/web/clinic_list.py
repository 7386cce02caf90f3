"""The printable clinic list's rows: who comes on the day, visits, arrival and preparation.

About 1,000 patients come on a day at 10,000 patients, but their rows share a few dozen texts
(a kind's label, a test's fasting rule, a preparation, a last-meal time): each distinct text is
worked out once a page (`ClinicWords`), and the rows carry finished strings, so the template
only writes them out. Translating per row was most of the page's cost (issue 18 §3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from flask_babel import gettext as _

from app.domain.protocol import Fasting
from app.domain.reminders import ReminderEvent, ReminderPolicy
from app.services.schedule.queries import ClinicEventRow
from app.web import preparation as prep
from app.web.helpers import patient_url
from app.web.labels import kind_label


@dataclass(frozen=True)
class ClinicEvent:
    """One visit of a patient on the clinic day: its kind, the kind's label and its title."""

    kind: str
    label: str
    title: str


@dataclass(frozen=True)
class ClinicVisit:
    """One patient's visits on the clinic day, with arrival time and preparation, in words."""

    study_id: str
    initials: str
    href: str
    events: list[ClinicEvent]
    arrive_at: str
    preparation: list[str]
    fasting: list[str]
    last_intake: list[str]


class ClinicWords:
    """The list's texts in the reader's language, each distinct one worked out once."""

    def __init__(self, policy: ReminderPolicy, *, zh: bool) -> None:
        """Texts for ``policy``'s reminder rules, in Chinese when ``zh``."""
        self.policy = policy
        self.zh = zh
        self.lang = "zh" if zh else "en"
        self.separator = _("; ")
        self._kinds: dict[str, str] = {}
        self._rules: dict[tuple[str, str], tuple[list[time], list[str]]] = {}
        self._tests: dict[str, tuple[Fasting | None, list[str]]] = {}
        self._lines: dict[tuple[str, tuple[str, ...]], str] = {}
        self._intake: dict[tuple[date, time | None, Fasting | None], list[str]] = {}

    def event(self, row: ClinicEventRow) -> ClinicEvent:
        """The visit's kind label and title."""
        label = self._kinds.get(row.kind)
        if label is None:
            label = self._kinds[row.kind] = kind_label(row.kind)
        title = row.title_zh if self.zh and row.title_zh else row.title_en
        return ClinicEvent(row.kind, label, title)

    def rules(self, row: ClinicEventRow) -> tuple[list[time], list[str]]:
        """The arrival times and preparations of the reminder rules for the event.

        Rules match on the kind and the code in the key (ReminderRule.matches), never the date.
        """
        cache_key = (row.kind, row.key)
        found = self._rules.get(cache_key)
        if found is None:
            reminder = ReminderEvent(key=row.key, kind=row.kind, date=row.date)
            arrivals, preparation = [], []
            for rule in self.policy.rules_for(reminder):
                if rule.arrive_at:
                    arrivals.append(rule.arrive_at)
                text = _preparation(rule, row.key)
                if text and text.get(self.lang):
                    preparation.append(text.get(self.lang))
            found = self._rules[cache_key] = (arrivals, preparation)
        return found

    def test(self, row: ClinicEventRow) -> tuple[Fasting | None, str | None]:
        """The event's fasting rule and its fasting / contrast line (None: nothing to say)."""
        details = row.details
        cache_key = repr((details.get("fasting"), details.get("contrast")))
        found = self._tests.get(cache_key)
        if found is None:
            found = self._tests[cache_key] = prep.event_rules(details)
        fasting, words = found
        if not words:
            return fasting, None
        title = row.title_zh if self.zh and row.title_zh else row.title_en
        line_key = (title, tuple(words))
        line = self._lines.get(line_key)
        if line is None:
            rules = self.separator.join(words)
            line = self._lines[line_key] = _("%(test)s: %(rules)s", test=title, rules=rules)
        return fasting, line

    def last_intake(self, day: date, arrive: time | None, fasting: Fasting | None) -> list[str]:
        """'Last meal by 23:30 the day before' and the like."""
        cache_key = (day, arrive, fasting)
        found = self._intake.get(cache_key)
        if found is None:
            found = self._intake[cache_key] = prep.last_intake(day, arrive, fasting)
        return found


def clinic_visits(rows: Iterable[ClinicEventRow], words: ClinicWords) -> list[ClinicVisit]:
    """Group the day's events by patient, with the earliest arrival and every preparation."""
    by_patient: dict[str, list[ClinicEventRow]] = {}
    for row in rows:
        by_patient.setdefault(row.study_id, []).append(row)
    return [visit(events, words, patient_url(study_id)) for study_id, events in by_patient.items()]


def visit(events: list[ClinicEventRow], words: ClinicWords, href: str) -> ClinicVisit:
    """One patient's row: visits, first arrival, preparations, fasting lines, last intake."""
    arrivals: list[time] = []
    preparation: list[str] = []
    fasting: list[str] = []
    rules: list[Fasting | None] = []
    for row in events:
        times, texts = words.rules(row)
        arrivals.extend(times)
        preparation.extend(text for text in texts if text not in preparation)
        rule, line = words.test(row)
        rules.append(rule)
        if line is not None:
            fasting.append(line)
    first = min(arrivals) if arrivals else None
    intake = words.last_intake(events[0].date, first, prep.strictest(rules))
    return ClinicVisit(
        study_id=events[0].study_id,
        initials=events[0].initials,
        href=href,
        events=[words.event(row) for row in events],
        arrive_at=first.strftime("%H:%M") if first else "",
        preparation=preparation,
        fasting=fasting,
        last_intake=intake,
    )


def _preparation(rule: Any, key: str) -> Any:
    """The rule's preparation for the event (by a code in its key, else the default one)."""
    for part in key.split("."):
        text = rule.preparation.get(part)
        if text:
            return text
    return rule.preparation_for(None)
