"""The patient's check-in page behind a signed SMS link: no sign-in, no JavaScript, phone-sized.

``/c/<token>`` shows the same questionnaire as the SMS check-in, in the patient's language
(``?lang=zh|en`` switches), with the PRO-CTCAE branching done in CSS (a follow-up question is
shown once an answer above 0 is chosen; without CSS it is simply shown, and the server ignores
a follow-up after a 0). Answers go to the same service function as SMS answers
(app.services.conversations.checkins.sessions.record_answers); a red result shows a prominent call-120 message.

The page shows nothing about the patient but their initials. The token is the only credential:
it is signed, expires and names one patient and one check-in (app.services.conversations.checkins.links).
CSRF protection is off for this blueprint on purpose: there is no sign-in session to ride on,
and anyone able to post a form here already holds the token. Responses are never cached and
send no Referer, so the token does not leak to other sites.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, redirect, render_template, request, url_for
from flask_babel import force_locale

from app.domain import checkins as ck
from app.extensions import csrf, limiter
from app.models import CheckinSession, utcnow
from app.services.conversations.checkins import sessions as service
from app.services.conversations.checkins.links import LinkError, read_token
from app.services.shared import reply_texts

bp = Blueprint("checkin_link", __name__, url_prefix="/c")
csrf.exempt(bp)

LANGS = ("zh", "en")
TEMPERATURE_FIELD = "%s_c"


def register_checkin_link(app: Flask) -> None:
    """Register the patient-facing blueprint."""
    app.register_blueprint(bp)


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


# -- view models ---------------------------------------------------------------------------------


@dataclass
class QuestionView:
    """One question on the page: asked, answered already, or shown only after a positive answer."""

    question: ck.Question
    state: str  # open | answered | conditional
    value: Any = None
    missing: bool = False
    error: str | None = None

    @property
    def field_name(self) -> str:
        """The form field of the answer."""
        return self.question.code

    def label_of(self, lang: str) -> str:
        """The chosen answer in words (answered questions)."""
        if self.question.is_temperature and self.value not in (0, 1, None):
            return f"{self.value} °C"
        labels = self.question.labels(lang)
        index = int(self.value) if self.value is not None else -1
        return f"{index} {labels[index]}" if 0 <= index < len(labels) else str(self.value)


@dataclass
class ItemView:
    """One symptom item with its questions in branching order."""

    item: ck.CheckinItem
    questions: list[QuestionView] = field(default_factory=list)


def build_views(
    items: Sequence[ck.CheckinItem],
    answers: Mapping[str, Any],
    *,
    missing: Sequence[str] = (),
    errors: Mapping[str, str] | None = None,
) -> list[ItemView]:
    """What the page shows for each item, given the answers kept so far."""
    views = []
    for item in items:
        view = ItemView(item)
        previous: QuestionView | None = None
        for question in item.questions:
            if previous is None:
                state = "answered" if question.code in answers else "open"
            elif previous.state == "answered":
                if not previous.value or previous.value <= 0:
                    break
                state = "answered" if question.code in answers else "open"
            else:
                state = "conditional"
            current = QuestionView(
                question,
                state,
                answers.get(question.code),
                question.code in missing,
                (errors or {}).get(question.code),
            )
            view.questions.append(current)
            previous = current
        views.append(view)
    return views


def form_answers(
    items: Sequence[ck.CheckinItem], answered: Mapping[str, Any], form: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Answers posted for questions not answered yet, and per-question errors (tampered input)."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for item in items:
        for question in item.questions:
            if question.code in answered:
                continue
            raw = _raw_value(question, form)
            if raw is None:
                continue
            try:
                value: Any = float(raw) if "." in raw else int(raw)
            except ValueError:
                errors[question.code] = "unreadable"
                continue
            if question.problem(value) is not None:
                errors[question.code] = "out_of_range"
                continue
            answers[question.code] = value
    return answers, errors


def _raw_value(question: ck.Question, form: Mapping[str, str]) -> str | None:
    if question.is_temperature:
        typed = (form.get(TEMPERATURE_FIELD % question.code) or "").strip().replace(",", ".")
        if typed:
            return typed[:8]
    raw = (form.get(question.code) or "").strip()
    return raw[:8] or None


def missing_questions(items: Sequence[ck.CheckinItem], answers: Mapping[str, Any]) -> list[str]:
    """Questions that apply but have no answer yet."""
    return [q.code for q in ck.applicable_questions(items, answers) if q.code not in answers]


# -- routes --------------------------------------------------------------------------------------


def _lang(session: CheckinSession) -> str:
    wanted = request.args.get("lang", "")
    return wanted if wanted in LANGS else (session.locale if session.locale in LANGS else "zh")


def _load(token: str) -> tuple[CheckinSession | None, str | None]:
    """The session a token opens, or (None, 'invalid' / 'expired')."""
    now = utcnow()
    try:
        target = read_token(token, now=now)
    except LinkError as exc:
        return None, exc.code
    try:
        session = service.get_session(target.session_id)
    except service.CheckinError:
        return None, "invalid"
    if session.patient_id != target.patient_id:
        return None, "invalid"
    return session, None


def _problem_page(code: str) -> Any:
    lang = request.args.get("lang", "")
    lang = lang if lang in LANGS else request.accept_languages.best_match(LANGS) or "zh"
    status = 410 if code == "expired" else 404
    with force_locale(lang):
        html = render_template(
            "checkin/problem.html", code=code, lang=lang, phone=reply_texts.clinic_phone()
        )
    return html, status


@bp.get("/<token>")
@limiter.limit("60 per minute")
def show(token: str) -> Any:
    """The check-in form, or its outcome once answered."""
    session, problem = _load(token)
    if session is None:
        return _problem_page(problem or "invalid")
    return _render(session, token, _lang(session))


@bp.post("/<token>")
@limiter.limit("20 per minute")
def submit(token: str) -> Any:
    """Keep the posted answers (same service as SMS answers), then show what is left or done."""
    session, problem = _load(token)
    if session is None:
        return _problem_page(problem or "invalid")
    lang = _lang(session)
    now = utcnow()
    if not service.accepts_answers(session, now):
        return _render(session, token, lang)
    items = service.session_items(session)
    answers, errors = form_answers(items, session.answers or {}, request.form)
    if answers:
        try:
            service.submit_web(session.id, session.patient_id, answers, now=now)
        except service.CheckinError:
            return _render(service.get_session(session.id), token, lang)
        session = service.get_session(session.id)
    if session.status == "answered":
        return redirect(url_for("checkin_link.show", token=token, lang=lang), code=303)
    missing = missing_questions(items, session.answers or {})
    return _render(session, token, lang, missing=missing, errors=errors, submitted=True)


def _render(
    session: CheckinSession,
    token: str,
    lang: str,
    *,
    missing: Sequence[str] = (),
    errors: Mapping[str, str] | None = None,
    submitted: bool = False,
) -> Any:
    now = utcnow()
    items = service.session_items(session)
    expired = not service.accepts_answers(session, now) and session.status != "answered"
    with force_locale(lang):
        context = {
            "session": session,
            "token": token,
            "lang": lang,
            "other_lang": "en" if lang == "zh" else "zh",
            "items": build_views(items, session.answers or {}, missing=missing, errors=errors),
            "label": service.questionnaire().label(lang),
            "codes": ck.compact_help(items, lang),
            "initials": session.patient.initials,
            "phone": reply_texts.clinic_phone(),
            "done_text": _done_text(session, lang, now) if session.status == "answered" else "",
            "red": session.priority == "red",
            "expired": expired,
            "missing": list(missing),
            "submitted": submitted,
            "temperature_field": TEMPERATURE_FIELD,
        }
        html = render_template("checkin/form.html", **context)
    return html, (410 if expired else 200)


def _done_text(session: CheckinSession, lang: str, now: Any) -> str:
    return "" if session.priority == "red" else service.outcome_text(session, lang, now)
