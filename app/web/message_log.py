"""The SMS message log (filter by patient, status, kind and date) and the patient-page panel.

(app/web/messages.py holds the translated error texts of the web UI; this is the log.)
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, render_template, request
from flask_babel import lazy_gettext as _l

from app.models import MESSAGE_KINDS, OUTBOX_STATUSES, OutboxMessage, Patient
from app.services.messaging import outbox
from app.services.messaging.reminders import blocked_reason
from app.services.messaging.status_callbacks import error_text
from app.web.helpers import clinic_today, clinic_tz, page_number, parse_iso_date
from app.web.nav import add_nav_item
from app.web.security import require_login, requires

bp = Blueprint("messages", __name__, url_prefix="/messages")
bp.before_request(require_login)

STATUS_LABELS = {
    "planned": _l("Planned"),
    "claimed": _l("Sending"),
    "unknown": _l("Unclear, checking with the provider"),
    "queued": _l("Accepted by the provider"),
    "sending": _l("Sending"),
    "sent": _l("Sent"),
    "delivered": _l("Delivered"),
    "undelivered": _l("Not delivered"),
    "failed": _l("Failed"),
    "expired": _l("Not sent: too late"),
    "blocked": _l("Not sent: blocked"),
    "cancelled": _l("Cancelled"),
}
PROBLEM_STATUSES = frozenset({"undelivered", "failed", "expired", "blocked", "unknown"})
KIND_LABELS = {
    "reminder": _l("Reminder"),
    "moved": _l("Visit moved"),
    "checkin": _l("Check-in"),
    "reply": _l("Reply"),
    "notice": _l("Notice"),
    "page": _l("Page to staff"),
}
REASON_LABELS = {
    "opted_out": _l("The patient opted out of SMS"),
    "invalid_number": _l("The phone number is invalid or unreachable"),
    "no_consent": _l("No SMS consent recorded"),
    "off_study": _l("The patient is off study"),
    "retries_exhausted": _l("Gave up after repeated provider errors"),
    "retrying": _l("Provider busy: will try again"),
    "ambiguous": _l("The provider did not answer clearly: checking before any resend"),
    "lease_expired": _l("The sender stopped mid-send: checking before any resend"),
    "expired": _l("The event was already over"),
    "late": _l("Too late to be useful: sending was delayed too long"),
    "rejected": _l("Refused by the provider"),
    "undelivered": _l("The carrier could not deliver it"),
    "failed": _l("The provider could not send it"),
    "consent_withdrawn": _l("The contact withdrew consent"),
    "number_changed": _l("The contact's number changed"),
    "contact_deactivated": _l("The contact was deactivated"),
    "inactive_contact": _l("The contact was deactivated"),
    "not_chosen": _l("Not chosen for this contact"),
}
NOTE_LABELS = {
    "merged": _l("several reminders merged"),
    "re-planned": _l("re-planned after a calendar change"),
    "event moved or cancelled": _l("the visit moved or was cancelled"),
    "merged_for_budget": _l("merged: daily limit"),
    "deferred_for_budget": _l("moved to the next day: daily limit"),
    "over_budget": _l("over the daily limit (last chance before the event)"),
    "body_variant": _l("wording varied: same text within 24 h"),
    "shifted_duplicate": _l("moved: same text within 24 h"),
    "duplicate_body": _l("same text within 24 h (could not vary)"),
}


def register_message_log(app: Flask) -> None:
    """Register the blueprint, its navigation entry and the patient-page helpers."""
    app.register_blueprint(bp)
    add_nav_item(app, "messages.index", _l("Messages"), order=60, permission="patients.view")


@bp.app_template_global("sms_next_planned")
def sms_next_planned(patient: Patient, limit: int = 5) -> list[OutboxMessage]:
    """The patient's next planned messages (for the patient page)."""
    return outbox.next_planned(patient.id, limit=limit)


@bp.app_template_global("sms_blocked_reason")
def sms_blocked_reason(patient: Patient) -> str | None:
    """Why no SMS goes to this patient, translated, or None."""
    reason = blocked_reason(patient)
    return str(REASON_LABELS.get(reason, reason)) if reason else None


@bp.app_template_global("sms_local_time")
def sms_local_time(message: OutboxMessage, tz_name: str | None = None) -> Any:
    """A message's send time in the patient's (or the given) time zone, aware."""
    tz = ZoneInfo(tz_name or message.patient.timezone)
    return message.send_after.astimezone(tz)


@bp.app_template_filter("sms_status")
def sms_status_label(status: str) -> str:
    """The translated name of an outbox status."""
    return str(STATUS_LABELS.get(status, status))


@bp.app_template_filter("sms_kind")
def sms_kind_label(kind: str) -> str:
    """The translated name of a message kind."""
    return str(KIND_LABELS.get(kind, kind))


PROVIDER_LABELS = {
    "console": _l("console (not sent)"),
    "twilio": "Twilio",
    "tencent": _l("Tencent Cloud"),
    "aliyun": _l("Alibaba Cloud"),
}
# Domestic providers' error codes (a part of the code) -> an explanation in the nurse's language;
# the provider's own text (often Chinese) is shown after it.
DOMESTIC_ERRORS = {
    "LimitExceeded": _l("frequency limit reached at the provider: sent later"),
    "BUSINESS_LIMIT_CONTROL": _l("frequency limit reached at the provider: sent later"),
    "DAY_LIMIT_CONTROL": _l("daily limit for this number reached: sent later"),
    "TemplateIncorrectOrUnapproved": _l("template not approved by the provider"),
    "SMS_TEMPLATE_ILLEGAL": _l("template not approved by the provider"),
    "no approved": _l("no approved template matches this text"),
    "IncorrectPhoneNumber": _l("invalid phone number"),
    "MOBILE_NUMBER_ILLEGAL": _l("invalid phone number"),
    "PhoneNumberInBlacklist": _l("the patient unsubscribed at the provider"),
    "InsufficientBalance": _l("the provider account has no SMS left"),
    "AMOUNT_NOT_ENOUGH": _l("the provider account has no SMS left"),
    "MK:": _l("the carrier could not deliver it (phone off, out of service or blocked)"),
}


@bp.app_template_filter("sms_provider")
def sms_provider_label(name: str | None) -> str:
    """The translated name of the provider that carried a message."""
    return str(PROVIDER_LABELS.get(name or "", name or ""))


def domestic_error_label(text: str | None) -> str | None:
    """An explanation of a Tencent / Alibaba error text in the current language, if known."""
    for marker, label in DOMESTIC_ERRORS.items():
        if text and marker in text:
            return str(label)
    return None


@bp.app_template_filter("sms_reason")
def sms_reason_label(message: OutboxMessage) -> str:
    """What went wrong with a message, for a nurse (reason, provider code and text)."""
    parts = []
    if message.error_reason:
        parts.append(str(REASON_LABELS.get(message.error_reason, message.error_reason)))
    if message.error_code:
        parts.append(f"{message.error_code}: {error_text(message.error_code)}")
    if message.provider in ("tencent", "aliyun") or "+" in (message.provider or ""):
        label = domestic_error_label(message.error_message)
        if label:
            parts.append(label)
        if message.error_message:
            parts.append(message.error_message[:200])
    return " · ".join(parts)


@bp.app_template_filter("sms_note")
def sms_note_label(note: str) -> str:
    """The translated name of a planning note."""
    return str(NOTE_LABELS.get(note, note))


@bp.app_template_test("sms_problem")
def is_problem(status: str) -> bool:
    """True for statuses a nurse should look at."""
    return status in PROBLEM_STATUSES


TABS = {
    "recent": _l("Sent and due today"),
    "attention": _l("Need attention"),
    "planned": _l("Planned (future)"),
}


def _tab_bounds(tab: str, *, dated: bool) -> dict[str, Any]:
    """The tab's part of the filter: up to the end of today, problems, or the future (dates or a
    status the nurse chose replace the tab's time bound)."""
    if dated and tab != "attention":
        return {}
    tomorrow = datetime.combine(clinic_today() + timedelta(days=1), time(0), tzinfo=clinic_tz())
    if tab == "planned":
        return {"due_after": tomorrow}
    if tab == "attention":
        return {"statuses": tuple(sorted(PROBLEM_STATUSES))}
    return {"due_until": tomorrow}


@bp.get("/")
@requires("patients.view")
def index() -> Any:
    """Every SMS, latest first, with body, segments, status history and errors."""
    status = request.args.get("status", "")
    kind = request.args.get("kind", "")
    tab = request.args.get("tab", "recent")
    tab = tab if tab in TABS else "recent"
    date_from = parse_iso_date(request.args.get("from"))
    date_to = parse_iso_date(request.args.get("to"))
    filters = outbox.MessageFilter(
        patient=request.args.get("patient", "").strip()[:32] or None,
        status=status if status in OUTBOX_STATUSES else None,
        kind=kind if kind in MESSAGE_KINDS else None,
        date_from=date_from,
        date_to=date_to,
        **_tab_bounds(tab, dated=bool(date_from or date_to or status in OUTBOX_STATUSES)),
    )
    page = outbox.message_log(filters, tz=clinic_tz(), page=page_number())
    return render_template(
        "messages/index.html",
        page=page,
        tab=tab,
        tabs=TABS,
        filters=filters,
        counts=outbox.log_summary(),
        statuses=OUTBOX_STATUSES,
        kinds=MESSAGE_KINDS,
    )
