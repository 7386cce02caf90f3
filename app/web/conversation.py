"""Conversation view per patient: every SMS in and out with delivery status; nurse replies."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models import Patient, utcnow
from app.services.conversations import conversation as service
from app.services.messaging.reminders import blocked_reason
from app.services.shared.patient_lookup import PatientNotFound, get_patient
from app.web.message_log import REASON_LABELS
from app.web.security import current_actor, require_login, requires

bp = Blueprint("conversation", __name__, url_prefix="/patients")
bp.before_request(require_login)

SOURCE_LABELS = {
    "sms": _l("SMS from the patient"),
    "web": _l("Answered on the check-in page"),
    "webhook_reply": _l("Answered at once"),
    "outbox": _l("SMS to the patient"),
}
ERRORS = {
    "empty": _l("Write a message or choose a ready phrase."),
    "too_long": _l("The message is too long (at most 500 characters)."),
    "invalid": _l("The form has expired. Reload the page and try again."),
}


def register_conversation(app: Flask) -> None:
    """Register the blueprint and its label filter."""
    app.register_blueprint(bp)
    app.jinja_env.filters["conversation_source"] = lambda code: str(SOURCE_LABELS.get(code, code))


def _patient_or_404(study_id: str) -> Patient:
    try:
        return get_patient(study_id)
    except PatientNotFound:
        abort(404)


@bp.get("/<study_id>/conversation")
@requires("patients.view")
def show(study_id: str) -> Any:
    """The conversation, oldest first, with the reply form at the bottom."""
    patient = _patient_or_404(study_id)
    now = utcnow()
    locale = patient.locale if patient.locale in ("zh", "en") else "zh"
    return render_template(
        "inbox/conversation.html",
        patient=patient,
        entries=service.conversation(patient, now=now),
        phrases={code: service.phrase_text(code, locale) for code in service.READY_PHRASES},
        phrases_own={code: str(text) for code, text in service.READY_PHRASES.items()},
        blocked=_blocked_label(patient),
        nonce=secrets.token_urlsafe(16),
        now=now,
        max_chars=service.MAX_REPLY_CHARS,
    )


def _blocked_label(patient: Patient) -> str | None:
    reason = blocked_reason(patient)
    return str(REASON_LABELS.get(reason, reason)) if reason else None


@bp.post("/<study_id>/conversation")
@requires("patients.write")
def reply(study_id: str) -> Any:
    """Queue the nurse's SMS (own words or a ready phrase in the patient's language)."""
    patient = _patient_or_404(study_id)
    form = request.form
    try:
        service.send_nurse_reply(
            patient,
            text=form.get("text", ""),
            phrase=form.get("phrase", ""),
            nonce=form.get("nonce", ""),
            actor=current_actor(),
            now=utcnow(),
        )
    except service.ConversationError as exc:
        if exc.code == "blocked":
            flash(_("No SMS can be sent: %(reason)s", reason=_blocked_label(patient)), "error")
        else:
            flash(str(ERRORS.get(exc.code, exc)), "error")
        return redirect(url_for("conversation.show", study_id=patient.study_id) + "#reply")
    flash(_("Your message is queued and will be sent in a moment."), "success")
    return redirect(url_for("conversation.show", study_id=patient.study_id) + "#reply")
