"""Staff-side views of check-ins: the patient page's panel (trend chart, recent check-ins) and
the answers of one check-in as readable rows (also used by the inbox)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from app.models import CheckinSession, Patient
from app.services.conversations.checkins import queries as checkin_queries
from app.services.conversations.checkins.sessions import questionnaire
from app.web import labels
from app.web.helpers import clinic_today

STATUS_LABELS = {
    "scheduled": _l("Scheduled, question not sent yet"),
    "sent": _l("Sent, not answered yet"),
    "partial": _l("Partly answered"),
    "answered": _l("Answered"),
    "missed": _l("Missed"),
    "call_task": _l("Nurse to call"),
}
CHANNEL_LABELS = labels.CHANNEL_LABELS
PRIORITY_LABELS = {
    "red": labels.LEVEL_LABELS["red"],
    "amber": labels.LEVEL_LABELS["amber"],
    "green": labels.LEVEL_LABELS["green"],
    "none": _l("No symptoms"),
}
CHART_WORDS = {
    "title": _l("Symptom grades over time"),
    "grade": _l("Grade"),
    "infusion": _l("Infusion"),
    "radiotherapy": _l("Radiotherapy"),
    "empty": _l("No symptom above grade 0 in this period"),
    "range": _l("Grades 0-{top} from {start} to {end}."),
    "no_reports": _l("{name}: no reports."),
    "series": _l(
        "{name}: {count} {noun}, highest {peak} on {peak_date}, latest {last} on {last_date}."
    ),
    "report": _l("report"),
    "reports": _l("reports"),
    "dates": _l("{name}: {dates}."),
    "run": _l("{name}: {first} to {last}."),
}


def lang() -> str:
    """The staff member's language (zh or en)."""
    locale = get_locale()
    return "zh" if locale is not None and locale.language == "zh" else "en"


@dataclass(frozen=True)
class ResultRow:
    """One symptom item of a check-in, for people: answers in words, grades, CTCAE term."""

    item_code: str
    title: str
    answers: list[str]
    composite_grade: int | None
    grade: int | None
    present: bool
    ctcae_term: str | None


def result_rows(session: CheckinSession, language: str | None = None) -> list[ResultRow]:
    """The graded items of a check-in with each answer in words ('D=3 frequently')."""
    language = language or lang()
    questionnaire_items = {i.code: i for i in questionnaire().items}
    rows = []
    for result in session.results or []:
        item = questionnaire_items.get(str(result.get("item")))
        answers = []
        for code, value in (result.get("scores") or {}).items():
            question = item.question(code) if item else None
            answers.append(_answer_words(question, code, value, language))
        rows.append(
            ResultRow(
                item_code=str(result.get("item")),
                title=item.title(language) if item else str(result.get("item")),
                answers=answers,
                composite_grade=result.get("composite_grade"),
                grade=result.get("grade"),
                present=bool(result.get("present")),
                ctcae_term=result.get("ctcae_term"),
            )
        )
    return rows


def _answer_words(question: Any, code: str, value: Any, language: str) -> str:
    """One answer in words: what was asked, the answer and its score ('频率：经常（3）')."""
    if question is None:
        return f"{code}={value}"
    title = question.title(language)
    if question.is_temperature and value not in (0, 1):
        return f"{title} {value} °C"
    words = question.labels(language)
    index = int(value)
    label = words[index] if 0 <= index < len(words) else "?"
    return f"{title}：{label}（{value}）" if language == "zh" else f"{title}: {label} ({value})"


def patient_checkin_panel(patient: Patient) -> dict[str, Any]:
    """What the patient page shows: the trend chart and the recent check-ins."""
    span = request.args.get("trend")
    days = 0 if span == "all" else None
    words = {key: str(value) for key, value in CHART_WORDS.items()}
    chart = checkin_queries.trend_chart(
        patient, today=clinic_today(), lang=lang(), words=words, days=days
    )
    return {
        "chart": chart,
        "svg": Markup(chart.svg),  # built by app.domain.charts, every text escaped there
        "sessions": checkin_queries.patient_sessions(patient.id, limit=12),
        "all": span == "all",
    }


def percent(value: float | None) -> str:
    """A 0-1 rate as '87 %' ('—' when there is none)."""
    return "—" if value is None else f"{round(value * 100)} %"


def duration_td(value: timedelta | None) -> str:
    """A timedelta with the app's short duration format ('3 h 5 min'); '—' when None."""
    if value is None:
        return "—"
    return labels.duration_label(value.total_seconds())


def register_checkin_panels(app: Flask) -> None:
    """Template helpers and label filters of the check-in views."""
    app.jinja_env.globals.update(
        checkin_panel=patient_checkin_panel,
        checkin_result_rows=result_rows,
    )
    app.jinja_env.filters.update(
        checkin_status=lambda code: labels._lookup(STATUS_LABELS, code),
        checkin_channel=lambda code: labels._lookup(CHANNEL_LABELS, code),
        triage_priority=lambda code: labels._lookup(PRIORITY_LABELS, code),
        pct=percent,
        duration_td=duration_td,
    )
    labels.ACTION_LABELS.update(
        {
            "checkin.start": _l("Check-in sent"),
            "checkin.answer": _l("Check-in answered"),
            "checkin.complete": _l("Check-in complete"),
            "checkin.remind": _l("Check-in reminder sent"),
            "checkin.offered_to_contact": _l("Unanswered check-in offered to a caregiver"),
            "checkin.call_task": _l("Check-in handed to a nurse to call"),
            "checkin.close": _l("Check-in closed"),
            "alert.raise_level": _l("Alert level raised"),
        }
    )
