"""Flask-WTF forms of the web UI (every one carries a CSRF token)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from app.models import ROLES
from app.services.shared.date_inputs import any_date_range, enrolment_start_range
from app.web.labels import role_label

LANGUAGE_CHOICES = (("zh", "中文"), ("en", "English"))


class PlausibleDate:
    """A date inside the plausible range (enrolment start: its own, narrower range)."""

    def __init__(self, *, enrolment_start: bool = False) -> None:
        self.enrolment_start = enrolment_start

    def __call__(self, form: FlaskForm, field: DateField) -> None:
        """Refuse a date outside the range, saying which dates are accepted."""
        if field.data is None:
            return
        allowed = enrolment_start_range() if self.enrolment_start else any_date_range()
        if field.data not in allowed:
            raise ValidationError(
                _l(
                    "Use a date between %(earliest)s and %(latest)s.",
                    earliest=allowed.earliest.isoformat(),
                    latest=allowed.latest.isoformat(),
                )
            )


def language_choices() -> list[SelectChoice]:
    """The interface and patient languages (each named in its own language)."""
    return [
        SelectChoice(code, label, render_kw={"lang": "zh-CN" if code == "zh" else code})
        for code, label in LANGUAGE_CHOICES
    ]


REASON_MAX = 500


def role_choices() -> list[SelectChoice]:
    """Roles with their translated names."""
    return [SelectChoice(role, role_label(role)) for role in ROLES]


class SignInForm(FlaskForm):
    """Username and password."""

    username = StringField(
        _l("Username"),
        validators=[DataRequired(message=_l("Enter your username.")), Length(max=64)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(message=_l("Enter your password.")), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )
    next = HiddenField()


class LanguageForm(FlaskForm):
    """The language switch in the header."""

    locale = SelectField(_l("Language"), choices=language_choices())
    next = HiddenField()


class ChangePasswordForm(FlaskForm):
    """A user changes their own password."""

    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(message=_l("Enter your current password."))],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[
            DataRequired(message=_l("Enter a new password.")),
            Length(min=10, max=256, message=_l("Use 10 to 256 characters.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    confirm_password = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(message=_l("Repeat the new password."))],
        render_kw={"autocomplete": "new-password"},
    )

    def validate_confirm_password(self, field: PasswordField) -> None:
        """Both new passwords must match."""
        if field.data != self.new_password.data:
            raise ValidationError(_l("The two new passwords are different."))


class UserCreateForm(FlaskForm):
    """An admin creates a staff account."""

    username = StringField(
        _l("Username"),
        validators=[DataRequired(message=_l("Enter a username.")), Length(min=2, max=64)],
        render_kw={"autocapitalize": "none", "spellcheck": "false"},
    )
    display_name = StringField(
        _l("Full name"),
        validators=[DataRequired(message=_l("Enter the person's name.")), Length(max=120)],
    )
    role = SelectField(_l("Role"), choices=[])
    locale = SelectField(_l("Language"), choices=language_choices())

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.role.choices = role_choices()


class UserEditForm(FlaskForm):
    """An admin changes an account's name, role, language or active flag."""

    display_name = StringField(
        _l("Full name"),
        validators=[DataRequired(message=_l("Enter the person's name.")), Length(max=120)],
    )
    role = SelectField(_l("Role"), choices=[])
    locale = SelectField(_l("Language"), choices=language_choices())
    active = BooleanField(_l("Account active (can sign in)"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.role.choices = role_choices()


class ConfirmForm(FlaskForm):
    """A bare form: a button whose only field is the CSRF token."""


class EnrolmentForm(FlaskForm):
    """Enrol a patient; the protocol's choices are added as fields by the view."""

    study_id = StringField(
        _l("Study ID"),
        validators=[DataRequired(message=_l("Enter the study ID.")), Length(max=32)],
        render_kw={
            "placeholder": "JSCH-080",
            "autocapitalize": "characters",
            "spellcheck": "false",
        },
    )
    initials = StringField(
        _l("Initials"),
        validators=[DataRequired(message=_l("Enter the patient's initials.")), Length(max=8)],
        render_kw={"placeholder": "WL", "autocapitalize": "characters"},
    )
    phone = StringField(
        _l("Mobile number"),
        validators=[DataRequired(message=_l("Enter the patient's mobile number.")), Length(max=32)],
        render_kw={"inputmode": "tel", "autocomplete": "off", "placeholder": "138 0013 8000"},
    )
    start_date = DateField(
        _l("First infusion"),
        validators=[
            InputRequired(message=_l("Enter the date of the first infusion.")),
            PlausibleDate(enrolment_start=True),
        ],
    )
    recurrence_date = DateField(
        _l("Date of recurrence"),
        validators=[
            InputRequired(message=_l("Enter the date of the recurrence.")),
            PlausibleDate(),
        ],
    )
    started_before_cadence = BooleanField(
        _l("This patient started treatment before enrolment in Cadence")
    )
    shared_phone_reason = StringField(
        _l("Reason for sharing this mobile number"), validators=[Optional(), Length(max=200)]
    )
    sms_consent = BooleanField(_l("The patient agreed to receive SMS reminders"))
    health_consent = BooleanField(
        _l(
            "Separately, the patient agreed to the processing of sensitive health information "
            "(symptom check-ins and answers about symptoms by SMS or link)"
        )
    )
    sms_consent_date = DateField(
        _l("Date of SMS consent"), validators=[Optional(), PlausibleDate()]
    )
    locale = RadioField(_l("Patient's language"), choices=language_choices(), default="zh")
    timezone = SelectField(_l("Patient's time zone"), choices=[])


class EventStatusForm(FlaskForm):
    """Mark one event done or missed (with an optional note)."""

    status = HiddenField(validators=[DataRequired()])
    note = TextAreaField(_l("Note (optional)"), validators=[Optional(), Length(max=REASON_MAX)])


class FlagDecisionForm(FlaskForm):
    """A clinician's decision about a flagged event (closure in the nadir, prolonged RT ...)."""

    flag = HiddenField(validators=[DataRequired()])
    decision = SelectField(
        _l("Decision"),
        choices=[
            SelectChoice("proceed", _l("Proceed as planned")),
            SelectChoice("cover_confirmed", _l("Holiday cover confirmed")),
        ],
        validators=[DataRequired()],
    )
    note = TextAreaField(
        _l("Why"),
        validators=[InputRequired(message=_l("Say why.")), Length(max=REASON_MAX)],
    )


class RescheduleForm(FlaskForm):
    """Move an event; the reason is required and a preview is shown before confirming."""

    new_date = DateField(
        _l("New date"),
        validators=[InputRequired(message=_l("Choose the new date.")), PlausibleDate()],
    )
    reason = TextAreaField(
        _l("Reason"),
        validators=[
            DataRequired(message=_l("Give the reason for the change.")),
            Length(max=REASON_MAX, message=_l("Keep the reason under 500 characters.")),
        ],
    )
    fingerprint = HiddenField()


class DecisionForm(FlaskForm):
    """A treatment decision (progression, salvage, stop, withdraw): a date, a reason, a check."""

    on = DateField(
        _l("Date"), validators=[InputRequired(message=_l("Enter the date.")), PlausibleDate()]
    )
    reason = TextAreaField(
        _l("Reason"),
        validators=[
            DataRequired(message=_l("Give the reason for the change.")),
            Length(max=REASON_MAX, message=_l("Keep the reason under 500 characters.")),
        ],
    )
    confirm = BooleanField(
        _l("I have checked this decision with the investigator"),
        validators=[DataRequired(message=_l("Tick the box to confirm."))],
    )
