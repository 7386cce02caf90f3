"""Patients: list, enrolment, the patient page, event actions, reschedule, treatment decisions."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from app.domain.calendar import DECISION_FLAGS, CalendarChange, CalendarError
from app.domain.patients import EnrolmentError, EnrolmentRequest
from app.models import PATIENT_STATUSES, CalendarEvent, Patient, utcnow
from app.services.conversations import inbox as inbox_service
from app.services.messaging import reminders
from app.services.schedule import calendar as calendar_service
from app.services.schedule import patient_queries
from app.services.schedule.contacts import contacts_of
from app.services.schedule.decision_preview import preview_decision
from app.services.schedule.patients import enrol_patient, mask_phone
from app.services.shared.audit_queries import patient_history
from app.services.shared.patient_lookup import PatientNotFound, get_patient
from app.services.shared.protocols import current_protocol
from app.web import labels, timeline
from app.web.cascade import (
    calendar_fingerprint,
    decision_summary,
    reschedule_summary,
)
from app.web.forms import (
    DecisionForm,
    EnrolmentForm,
    EventStatusForm,
    FlagDecisionForm,
    RescheduleForm,
)
from app.web.helpers import clinic_today, page_number
from app.web.labels import event_status_label, is_zh, localised
from app.web.messages import ENROLMENT_FIELDS, calendar_error, enrolment_error
from app.web.security import current_actor, require_login, requires
from app.web.timezones import timezone_choices

bp = Blueprint("patients", __name__, url_prefix="/patients")
bp.before_request(require_login)

DECISION_TITLES = {
    "progression": _l("Record progression"),
    "salvage": _l("Start salvage chemoradiation"),
    "stop": _l("Stop treatment"),
    "withdraw": _l("Withdraw from the study"),
}
DECISION_DATE_LABELS = {
    "progression": _l("Date of progression"),
    "salvage": _l("First day of salvage (first fraction)"),
    "stop": _l("Date treatment stops"),
    "withdraw": _l("Date of withdrawal"),
}
MARK_STATUSES = ("done", "missed", "confirmed", "planned")


def _patient_or_404(study_id: str) -> Patient:
    try:
        return get_patient(study_id)
    except PatientNotFound:
        abort(404)


def _event_or_404(patient: Patient, key: str) -> CalendarEvent:
    for row in patient.events:
        if row.key == key:
            return row
    abort(404)


# --------------------------------------------------------------------------- list


@bp.get("/")
def index() -> Any:
    """Searchable, sortable list of every patient."""
    sort = request.args.get("sort", "study_id")
    if sort not in patient_queries.SORTS:
        sort = "study_id"
    status = request.args.get("status", "")
    if status not in PATIENT_STATUSES:
        status = ""
    query = request.args.get("q", "").strip()[:64]
    descending = request.args.get("dir") == "desc"
    page = patient_queries.patients_page(
        today=clinic_today(),
        search=query,
        status=status,
        sort=sort,
        descending=descending,
        page=page_number(),
    )
    return render_template(
        "patients/list.html",
        page=page,
        query=query,
        status=status,
        sort=sort,
        descending=descending,
        statuses=PATIENT_STATUSES,
        status_counts=patient_queries.status_counts(),
        arm_label=_arm_label,
    )


def _arm_label(choices: dict[str, str]) -> str:
    protocol = current_protocol()
    parts = []
    for code, choice in protocol.choices.items():
        value = choices.get(code)
        option = choice.options.get(value) if value else None
        if option is None:
            parts.append(value or "?")
        else:
            parts.append(option.label_zh if is_zh() else option.label_en)
    return " + ".join(parts)


# --------------------------------------------------------------------------- enrolment


def _enrolment_form_class() -> type[EnrolmentForm]:
    """The enrolment form with one select per protocol choice (choice_<code>)."""
    protocol = current_protocol()
    zh = is_zh()

    class ProtocolEnrolmentForm(EnrolmentForm):
        pass

    for code, choice in protocol.choices.items():
        options = [SelectChoice("", _("Choose…"))] + [
            SelectChoice(opt.code, opt.label_zh if zh else opt.label_en)
            for opt in choice.options.values()
        ]
        setattr(
            ProtocolEnrolmentForm,
            f"choice_{code}",
            SelectField(
                choice.label_zh if zh else choice.label_en,
                choices=options,
                validators=[DataRequired(message=_l("Choose one option."))],
            ),
        )
    return ProtocolEnrolmentForm


@bp.route("/new", methods=["GET", "POST"])
@requires("patients.write")
def new() -> Any:
    """Enrol a patient: the whole calendar is created when the form is saved."""
    form = _enrolment_form_class()()
    form.timezone.choices = timezone_choices()
    form.locale.choices = [(code, labels.language_name(code)) for code in ("zh", "en")]
    if request.method == "GET":
        form.timezone.data = form.timezone.data or current_protocol().default_timezone
        form.locale.data = form.locale.data or "zh"
    choice_fields = [getattr(form, f"choice_{code}") for code in current_protocol().choices]
    if request.method == "POST":
        form_ok = form.validate_on_submit()
        enrolment = _enrolment_request(form)
        # Show the form's and the enrolment rules' errors together, so one round fixes all.
        problems = patient_queries.enrolment_errors(enrolment, today=clinic_today())
        _attach_enrolment_errors(form, choice_fields, problems)
        if form_ok and not problems:
            try:
                patient = enrol_patient(enrolment, actor=current_actor(), today=clinic_today())
            except EnrolmentError as exc:
                _attach_enrolment_errors(form, choice_fields, exc.errors)
            else:
                flash(
                    _(
                        "%(id)s enrolled: %(num)d calendar events created.",
                        id=patient.study_id,
                        num=len(patient.events),
                    ),
                    "success",
                )
                return redirect(url_for("patients.detail", study_id=patient.study_id))
    status = 400 if request.method == "POST" else 200
    return (
        render_template("patients/new.html", form=form, choice_fields=choice_fields),
        status,
    )


def _enrolment_request(form: EnrolmentForm) -> EnrolmentRequest:
    choices = {code: getattr(form, f"choice_{code}").data for code in current_protocol().choices}
    return EnrolmentRequest(
        study_id=form.study_id.data or "",
        initials=form.initials.data or "",
        phone=form.phone.data or "",
        choices=choices,
        start_date=form.start_date.data,
        sms_consent=bool(form.sms_consent.data),
        sms_consent_date=form.sms_consent_date.data,
        health_consent=bool(form.health_consent.data),
        locale=form.locale.data or "zh",
        timezone=form.timezone.data or "",
        recurrence_date=form.recurrence_date.data,
        started_before_cadence=bool(form.started_before_cadence.data),
        shared_phone_reason=form.shared_phone_reason.data or "",
    )


def _attach_enrolment_errors(
    form: EnrolmentForm, choice_fields: list[SelectField], errors: dict[str, str]
) -> None:
    """Put each error on its field, unless the form already reports a problem there."""
    for field_name, english in errors.items():
        message = enrolment_error(field_name, english)
        if field_name == "choices":
            if not any(f.errors for f in choice_fields):
                choice_fields[0].errors = [message]
            continue
        field = getattr(form, field_name, None) if field_name in ENROLMENT_FIELDS else None
        if field is None:
            form.form_errors.append(message)
        elif not field.errors:
            field.errors = [message]


# --------------------------------------------------------------------------- patient page


@bp.get("/<study_id>")
def detail(study_id: str) -> Any:
    """The patient's calendar as a timeline by phase and cycle, with actions and history."""
    patient = _patient_or_404(study_id)
    today = clinic_today()
    return render_template(
        "patients/detail.html",
        patient=patient,
        today=today,
        phases=timeline.build(patient.events, today),
        counts=timeline.counts(patient.events, today),
        next_events=next_events(patient, today),
        open_items=inbox_service.open_items(patient_id=patient.id),
        history=patient_history(patient.id),
        arm=_arm_label(patient.choices),
        phone=mask_phone(patient.phone_e164),
        contacts=contacts_of(patient),
        decisions=available_decisions(patient),
        decision_titles=DECISION_TITLES,
        status_form=EventStatusForm(),
        protocol=current_protocol(),
    )


def next_events(patient: Patient, today: date, limit: int = 5) -> list[CalendarEvent]:
    """The patient's next planned or confirmed events, soonest first."""
    upcoming = [
        e for e in patient.events if e.status in ("planned", "confirmed") and e.date >= today
    ]
    return sorted(upcoming, key=lambda e: (e.date, e.id))[:limit]


def available_decisions(patient: Patient) -> list[str]:
    """The treatment decisions that make sense for the patient now."""
    if patient.status in ("withdrawn", "off_study"):
        return []
    decisions = ["progression"]
    if patient.salvage_start is None and current_protocol().on_demand_phase() is not None:
        decisions.append("salvage")
    if patient.status != "follow_up":
        decisions.append("stop")
    decisions.append("withdraw")
    return decisions


# --------------------------------------------------------------------------- one event


@bp.get("/<study_id>/events/<key>")
def event(study_id: str, key: str) -> Any:
    """One event: details, mark done or missed, reschedule with a preview."""
    patient = _patient_or_404(study_id)
    row = _event_or_404(patient, key)
    form = RescheduleForm()
    if not form.new_date.data:
        form.new_date.data = row.date
    return _render_event(patient, row, form)


def _render_event(
    patient: Patient,
    row: CalendarEvent,
    form: RescheduleForm,
    *,
    summary: Any = None,
    error: str | None = None,
    status_code: int = 200,
) -> Any:
    today = clinic_today()
    return (
        render_template(
            "patients/event.html",
            patient=patient,
            event=row,
            form=form,
            status_form=EventStatusForm(),
            decision_forms=_decision_forms(row),
            summary=summary,
            error=error,
            today=today,
            can_mark=_can_mark(row, today),
            movable=row.status in ("planned", "confirmed"),
        ),
        status_code,
    )


def _decision_forms(row: CalendarEvent) -> list[FlagDecisionForm]:
    """One decision form per flag of this event that waits for a clinician's decision."""
    if row.status not in ("planned", "confirmed"):
        return []
    return [FlagDecisionForm(flag=flag) for flag in row.flags if flag in DECISION_FLAGS]


@bp.post("/<study_id>/events/<key>/decision")
@requires("patients.write")
def decide_flag(study_id: str, key: str) -> Any:
    """Record a clinician's decision about a flag of the event (audited; leaves the list)."""
    patient = _patient_or_404(study_id)
    _event_or_404(patient, key)
    form = FlagDecisionForm()
    target = url_for("patients.event", study_id=patient.study_id, key=key)
    if not form.validate_on_submit():
        flash(_("The decision was not saved: choose a decision and say why."), "error")
        return redirect(target)
    try:
        calendar_service.decide_flag(
            patient.id,
            key,
            form.flag.data,
            form.decision.data,
            form.note.data,
            actor=current_actor(),
            today=clinic_today(),
        )
    except CalendarError as exc:
        flash(calendar_error(str(exc)), "error")
    else:
        flash(_("Decision recorded."), "success")
    return redirect(target)


def _can_mark(row: CalendarEvent, today: date) -> bool:
    """Done or missed can be recorded once the event's window has opened."""
    return row.status in ("planned", "confirmed") and min(row.window_start, row.date) <= today


@bp.post("/<study_id>/events/<key>/status")
@requires("patients.write")
def mark(study_id: str, key: str) -> Any:
    """Record an event as done, missed, confirmed or planned again."""
    patient = _patient_or_404(study_id)
    row = _event_or_404(patient, key)
    form = EventStatusForm()
    back = request.form.get("back") == "patient"
    target = (
        url_for("patients.detail", study_id=patient.study_id, _anchor=f"ev-{row.id}")
        if back
        else url_for("patients.event", study_id=patient.study_id, key=key)
    )
    if not form.validate_on_submit() or form.status.data not in MARK_STATUSES:
        flash(_("The change was not saved: choose an action again."), "error")
        return redirect(target)
    if form.status.data in ("done", "missed") and not _can_mark(row, clinic_today()):
        flash(_("An event can only be recorded once its window has opened."), "error")
        return redirect(target)
    try:
        calendar_service.set_event_status(
            patient.id,
            key,
            form.status.data,
            actor=current_actor(),
            note=form.note.data or None,
            today=clinic_today(),
        )
    except (CalendarError, calendar_service.CalendarActionError) as exc:
        flash(calendar_error(str(exc)), "error")
    else:
        flash(
            _(
                "Saved: %(event)s is now %(status)s.",
                event=_short_title(row),
                status=_status_word(form.status.data),
            ),
            "success",
        )
    return redirect(target)


def _short_title(row: CalendarEvent) -> str:
    return localised(row)


def _status_word(status: str) -> str:
    return event_status_label(status).lower() if not is_zh() else event_status_label(status)


@bp.post("/<study_id>/events/<key>/preview")
@requires("patients.write")
def preview(study_id: str, key: str) -> Any:
    """Show what a reschedule would move, before anything is saved (?fragment=1: the part only)."""
    patient = _patient_or_404(study_id)
    row = _event_or_404(patient, key)
    form = RescheduleForm()
    form.validate_on_submit()
    summary, error, status = None, None, 200
    if form.new_date.errors or form.new_date.data is None:
        status = 400
    else:
        reason = None if form.reason.errors else form.reason.data
        try:
            change = calendar_service.preview_reschedule(
                patient.id, key, form.new_date.data, reason, today=clinic_today()
            )
        except (CalendarError, calendar_service.CalendarActionError) as exc:
            error, status = calendar_error(str(exc)), 422
        else:
            form.fingerprint.data = calendar_fingerprint(patient)
            summary = _reschedule_summary(patient, change, row)
    if request.args.get("fragment") == "1":
        html = render_template(
            "patients/_preview.html",
            form=form,
            summary=summary,
            error=error,
            patient=patient,
            event=row,
        )
        return html, status
    return _render_event(patient, row, form, summary=summary, error=error, status_code=status)


@bp.post("/<study_id>/events/<key>/reschedule")
@requires("patients.write")
def reschedule(study_id: str, key: str) -> Any:
    """Apply a reschedule the nurse has previewed (refused if the calendar changed since)."""
    patient = _patient_or_404(study_id)
    row = _event_or_404(patient, key)
    form = RescheduleForm()
    if not form.validate_on_submit():
        return _render_event(patient, row, form, status_code=400)
    today = clinic_today()
    if form.fingerprint.data != calendar_fingerprint(patient):
        try:
            change = calendar_service.preview_reschedule(
                patient.id, key, form.new_date.data, form.reason.data, today=today
            )
        except (CalendarError, calendar_service.CalendarActionError) as exc:
            return _render_event(
                patient, row, form, error=calendar_error(str(exc)), status_code=409
            )
        form.fingerprint.data = calendar_fingerprint(patient)
        error = _(
            "The calendar changed since the preview. Check the new preview and confirm again."
        )
        return _render_event(
            patient,
            row,
            form,
            summary=_reschedule_summary(patient, change, row),
            error=error,
            status_code=409,
        )
    try:
        change = calendar_service.reschedule_event(
            patient.id,
            key,
            form.new_date.data,
            form.reason.data,
            actor=current_actor(),
            today=today,
        )
    except (CalendarError, calendar_service.CalendarActionError) as exc:
        return _render_event(patient, row, form, error=calendar_error(str(exc)), status_code=422)
    summary = _reschedule_summary(patient, change, row)
    flash(_("Rescheduled. %(summary)s", summary=" ".join(summary.lines)), "success")
    return redirect(url_for("patients.detail", study_id=patient.study_id, _anchor=f"ev-{row.id}"))


def _reschedule_summary(patient: Patient, change: CalendarChange, row: CalendarEvent) -> Any:
    """The cascade in words, with how many moves the patient's SMS will announce."""
    announced = reminders.announced_moves(patient, change, now=utcnow())
    return reschedule_summary(change, row, announced)


# --------------------------------------------------------------------------- decisions


@bp.route("/<study_id>/decisions/<decision>", methods=["GET", "POST"])
@requires("patients.write")
def decide(study_id: str, decision: str) -> Any:
    """Record progression, start salvage, stop treatment or withdraw: preview, then confirm."""
    patient = _patient_or_404(study_id)
    if decision not in DECISION_TITLES:
        abort(404)
    if decision not in available_decisions(patient):
        flash(_("This decision is not available for this patient now."), "error")
        return redirect(url_for("patients.detail", study_id=patient.study_id))
    form = DecisionForm()
    form.on.label.text = str(DECISION_DATE_LABELS[decision])
    today = clinic_today()
    summary, error, status = None, None, 200
    if request.method == "GET":
        form.on.data = today
    elif request.form.get("step") == "preview":
        summary, error = _decision_preview(decision, patient, form, today, keep_errors=False)
        status = 200 if summary is not None else 400
    elif form.validate_on_submit():
        try:
            change = _apply_decision(decision, patient, form.on.data, form.reason.data, today)
        except (CalendarError, calendar_service.CalendarActionError) as exc:
            error, status = calendar_error(str(exc)), 422
        else:
            lines = " ".join(decision_summary(change).lines)
            flash(
                _(
                    "%(decision)s: saved. %(summary)s",
                    decision=DECISION_TITLES[decision],
                    summary=lines,
                ),
                "success",
            )
            return redirect(url_for("patients.detail", study_id=patient.study_id))
    else:
        summary, error = _decision_preview(decision, patient, form, today, keep_errors=True)
        status = 400
    return (
        render_template(
            "patients/decision.html",
            patient=patient,
            decision=decision,
            title=DECISION_TITLES[decision],
            form=form,
            summary=summary,
            error=error,
        ),
        status,
    )


def _decision_preview(
    decision: str, patient: Patient, form: DecisionForm, today: date, *, keep_errors: bool
) -> tuple[Any, str | None]:
    """Validate the form (only the date matters for a preview) and ask for the preview."""
    if not keep_errors:
        form.validate_on_submit()
        form.confirm.errors = []
        form.reason.errors = []
    if form.on.errors or form.on.data is None:
        return None, None
    try:
        change = preview_decision(decision, patient.id, form.on.data, today=today)
    except (CalendarError, calendar_service.CalendarActionError, ValueError) as exc:
        return None, calendar_error(str(exc))
    return decision_summary(change), None


def _apply_decision(decision: str, patient: Patient, on: date, reason: str, today: date) -> Any:
    actor = current_actor()
    if decision == "progression":
        return calendar_service.record_progression(
            patient.id, on, actor=actor, reason=reason, today=today
        )
    if decision == "salvage":
        return calendar_service.start_salvage(
            patient.id, on, actor=actor, reason=reason, today=today
        )
    if decision == "stop":
        return calendar_service.stop_treatment(
            patient.id, on, actor=actor, reason=reason, today=today
        )
    return calendar_service.withdraw(patient.id, on, actor=actor, reason=reason)
