"""Read-side of check-ins: a patient's check-ins and symptom trend chart, metrics records, the
symptom-report export. Nothing here writes to the database."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, and_, case, cast, func, or_, select
from sqlalchemy.orm import selectinload

from app.domain import charts
from app.domain import checkins as ck
from app.domain.metrics import (
    DUE_STATUSES,
    RESPONDED_STATUSES,
    AlertRecord,
    CheckinRecord,
    ResponseRate,
)
from app.extensions import db
from app.models import Alert, CalendarEvent, CheckinSession, Patient
from app.services.conversations.checkins.sessions import questionnaire
from app.services.shared.pagination import Page, paginate

TREND_DAYS = 120
NON_ALERT_KINDS = ("call_task", "opt_out")
"""Inbox items that are tasks, not alerts: left out of the alert statistics."""
CSV_COLUMNS = (
    "study_id",
    "checkin_id",
    "checkin_date",
    "answered_on",
    "item_code",
    "item",
    "question_code",
    "attribute",
    "answer",
    "answer_label",
    "composite_grade",
    "grade",
    "ctcae_term",
    "pro_ctcae_term",
    "channel",
    "priority",
)


# -- one patient ---------------------------------------------------------------------------------


def patient_sessions(patient_id: int, *, limit: int = 20) -> list[CheckinSession]:
    """The patient's check-ins, newest first."""
    return list(
        db.session.scalars(
            select(CheckinSession)
            .where(CheckinSession.patient_id == patient_id)
            .order_by(CheckinSession.sent_at.desc(), CheckinSession.id.desc())
            .limit(limit)
        )
    )


def answered_on(session: CheckinSession, tz: ZoneInfo) -> date:
    """The local date a check-in was (last) answered, else its calendar date."""
    moment = session.answered_at or session.first_answer_at
    if moment is None:
        return session.event_date
    if session.answer_log:
        last = max(str(entry.get("at", "")) for entry in session.answer_log)
        if last:
            moment = datetime.fromisoformat(last)
    return moment.astimezone(tz).date()


@dataclass(frozen=True)
class TrendChart:
    """The trend chart of one patient and what it covers."""

    svg: str
    start: date
    end: date
    symptoms: list[str]
    quiet_symptoms: list[str]


def trend_series(
    sessions: Sequence[CheckinSession], tz: ZoneInfo
) -> dict[str, list[tuple[date, int]]]:
    """Grade of each item over time (items never above 0 included), oldest first."""
    series: dict[str, list[tuple[date, int]]] = {}
    for session in sorted(sessions, key=lambda s: (answered_on(s, tz), s.id)):
        day = answered_on(session, tz)
        for result in session.results or []:
            grade = result.get("grade")
            if isinstance(grade, int):
                series.setdefault(str(result["item"]), []).append((day, grade))
    return series


def treatment_markers(events: Sequence[CalendarEvent], labels: dict[str, str]) -> list[tuple]:
    """Infusion and radiotherapy dates of the calendar as chart markers."""
    markers = []
    for event_row in events:
        if event_row.status == "cancelled":
            continue
        if event_row.kind == "infusion":
            markers.append((event_row.date, labels["infusion"], "infusion"))
        elif event_row.kind == "radiotherapy":
            markers.append((event_row.date, labels["radiotherapy"], "radiotherapy"))
    return markers


def trend_chart(
    patient: Patient, *, today: date, lang: str, words: dict[str, str], days: int | None = None
) -> TrendChart:
    """The patient's symptom grades over time with infusions and radiotherapy marked."""
    tz = ZoneInfo(patient.timezone or "Asia/Shanghai")
    sessions = [s for s in patient_sessions(patient.id, limit=400) if s.results]
    series = trend_series(sessions, tz)
    shown = {code: pts for code, pts in series.items() if any(g > 0 for _, g in pts)}
    quiet = [code for code in series if code not in shown]
    end = max([today, *(d for pts in shown.values() for d, _ in pts)])
    start = chart_start(patient.start_date, series, end, days)
    titles = item_titles(lang)
    labels = dict(words) | {code: titles.get(code, code) for code in series}
    svg = charts.trend_chart_svg(
        shown,
        treatment_markers(patient.events, words),
        start=start,
        end=end,
        labels=labels,
        chart_id=f"trend-{patient.id}",
    )
    return TrendChart(svg, start, end, [labels[c] for c in shown], [labels[c] for c in quiet])


def chart_start(
    study_start: date, series: dict[str, list[tuple[date, int]]], end: date, days: int | None
) -> date:
    """Where the chart begins: the study start (``days=0``), else two weeks before the first
    report, at most ``days`` (TREND_DAYS) and at least four weeks before ``end``."""
    if days == 0:
        return min(study_start, end - timedelta(days=28))
    reported = [d for pts in series.values() for d, _ in pts]
    first = min(reported) - timedelta(days=14) if reported else end
    span = TREND_DAYS if days is None else days
    return min(max(first, end - timedelta(days=span)), end - timedelta(days=28))


def item_titles(lang: str) -> dict[str, str]:
    """Item code -> short title in ``lang``."""
    return {item.code: item.title(lang) for item in questionnaire().items}


# -- metrics records -----------------------------------------------------------------------------


def metrics_status(session: CheckinSession, now: datetime) -> str:
    """A session's status in app.domain.metrics terms (answered/partial/missed/pending)."""
    if session.status == "answered":
        return "answered"
    over = session.closed_at is not None or now >= session.expires_at
    if session.status == "call_task":
        return "partial" if session.answers else "missed"
    if session.status == "partial":
        return "partial" if over else "pending"
    if session.status in ("scheduled", "sent"):
        return "missed" if over else "pending"
    return "missed"


def checkin_records(now: datetime, *, since: datetime | None = None) -> list[CheckinRecord]:
    """Every check-in (sent since ``since``) as a metrics record keyed by study id."""
    stmt = select(CheckinSession).options(selectinload(CheckinSession.patient))
    if since is not None:
        stmt = stmt.where(CheckinSession.sent_at >= since)
    return [
        CheckinRecord(s.patient.study_id, s.event_date, metrics_status(s, now))
        for s in db.session.scalars(stmt)
    ]


def metrics_status_sql(now: datetime) -> Any:
    """SQL: ``metrics_status`` of each check-in session, word for word (for aggregates)."""
    over = or_(CheckinSession.closed_at.is_not(None), CheckinSession.expires_at <= now)
    answers = cast(CheckinSession.answers, String)
    answered_some = and_(CheckinSession.answers.is_not(None), answers.not_in(("{}", "null")))
    status = CheckinSession.status
    return case(
        (status == "answered", "answered"),
        (status == "call_task", case((answered_some, "partial"), else_="missed")),
        (status == "partial", case((over, "partial"), else_="pending")),
        (status.in_(("scheduled", "sent")), case((over, "missed"), else_="pending")),
        else_="missed",
    )


def _rate_columns(status: Any) -> tuple[Any, Any, Any]:
    """SUMs of check-ins due, responded to and completed, over a column of metrics statuses."""

    def share(statuses: Sequence[str]) -> Any:
        return func.coalesce(func.sum(case((status.in_(sorted(statuses)), 1), else_=0)), 0)

    return share(DUE_STATUSES), share(RESPONDED_STATUSES), share(("answered",))


def _sessions_with_status(now: datetime, since: datetime | None) -> Any:
    stmt = select(CheckinSession.patient_id, metrics_status_sql(now).label("status"))
    if since is not None:
        stmt = stmt.where(CheckinSession.sent_at >= since)
    return stmt.subquery()


def response_rates_page(
    now: datetime, *, since: datetime | None = None, page: int = 1, per_page: int = 50
) -> tuple[Page, ResponseRate]:
    """One page of response rates per patient (by study id) and the pooled rate, counted in SQL
    as app.domain.metrics.response_rates / overall_response_rate count them in Python."""
    sessions = _sessions_with_status(now, since)
    due, responded, completed = _rate_columns(sessions.c.status)
    per_patient: Select[Any] = (
        select(Patient.study_id, due, responded, completed)
        .join(sessions, sessions.c.patient_id == Patient.id)
        .group_by(Patient.study_id)
        .order_by(Patient.study_id)
    )
    counted = select(sessions.c.patient_id).distinct()
    result = paginate(per_patient, page, per_page, scalars=False, count_query=counted)
    rates = [ResponseRate(sid, int(d), int(r), int(c)) for sid, d, r, c in result.items]
    pooled = db.session.execute(select(due, responded, completed).select_from(sessions)).one()
    overall = ResponseRate(None, *(int(n) for n in pooled))
    return Page(items=rates, page=result.page, per_page=per_page, total=result.total), overall


def alert_records(*, since: datetime | None = None) -> list[AlertRecord]:
    """Alerts (not call tasks or opt-out notes) raised since ``since`` as metrics records."""
    stmt = (
        select(
            Alert.id,
            Patient.study_id,
            Alert.level,
            Alert.created_at,
            Alert.acknowledged_at,
            Alert.resolved_at,
        )
        .outerjoin(Patient, Patient.id == Alert.patient_id)
        .where(Alert.kind.not_in(NON_ALERT_KINDS))
    )
    if since is not None:
        stmt = stmt.where(Alert.created_at >= since)
    return [
        AlertRecord(
            alert_id=a.id,
            patient_id=a.study_id or "",
            level=a.level,
            created_at=a.created_at,
            acknowledged_at=a.acknowledged_at,
            resolved_at=a.resolved_at,
        )
        for a in db.session.execute(stmt)
    ]


# -- symptom report export -----------------------------------------------------------------------


def symptom_report_rows(
    *,
    since: date | None = None,
    until: date | None = None,
    tz: ZoneInfo,
    patient_id: int | None = None,
) -> Iterator[dict[str, Any]]:
    """One row per answer to a symptom question (check-ins with answers, oldest first), of
    every patient or only ``patient_id``."""
    stmt = (
        select(CheckinSession)
        .options(selectinload(CheckinSession.patient))
        .where(CheckinSession.first_answer_at.is_not(None))
        .order_by(CheckinSession.event_date, CheckinSession.id)
    )
    if since is not None:
        stmt = stmt.where(CheckinSession.event_date >= since)
    if until is not None:
        stmt = stmt.where(CheckinSession.event_date <= until)
    if patient_id is not None:
        stmt = stmt.where(CheckinSession.patient_id == patient_id)
    questions = {q.code: q for item in questionnaire().items for q in item.questions}
    for session in db.session.scalars(stmt):
        answered = _answer_dates(session, tz)
        for result in session.results or []:
            for code, value in (result.get("scores") or {}).items():
                question = questions.get(code)
                yield {
                    "study_id": session.patient.study_id,
                    "checkin_id": session.id,
                    "checkin_date": session.event_date.isoformat(),
                    "answered_on": answered.get(code, ""),
                    "item_code": result.get("item"),
                    "item": question.title_en if question else code,
                    "question_code": code,
                    "attribute": question.attribute if question else "",
                    "answer": value,
                    "answer_label": _label(question, value),
                    "composite_grade": _blank(result.get("composite_grade")),
                    "grade": _blank(result.get("grade")),
                    "ctcae_term": result.get("ctcae_term") or "",
                    "pro_ctcae_term": result.get("pro_ctcae_term") or "",
                    "channel": session.channel or "",
                    "priority": session.priority or "",
                }


def _answer_dates(session: CheckinSession, tz: ZoneInfo) -> dict[str, str]:
    dates: dict[str, str] = {}
    for entry in session.answer_log or []:
        try:
            moment = datetime.fromisoformat(str(entry.get("at")))
        except ValueError:
            continue
        dates[str(entry.get("code"))] = moment.astimezone(tz).date().isoformat()
    return dates


def _label(question: ck.Question | None, value: Any) -> str:
    if question is None:
        return ""
    if question.is_temperature and value not in (0, 1):
        return f"{value} C"
    labels = question.labels("en")
    return labels[int(value)] if isinstance(value, int) and 0 <= value < len(labels) else ""


def _blank(value: Any) -> Any:
    return "" if value is None else value


def csv_safe(value: Any) -> Any:
    """A cell that a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def symptom_reports_csv(*, since: date | None, until: date | None, tz: ZoneInfo) -> str:
    """The symptom-report export as CSV text (header + one row per answer)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in symptom_report_rows(since=since, until=until, tz=tz):
        writer.writerow({key: csv_safe(value) for key, value in row.items()})
    return buffer.getvalue()
