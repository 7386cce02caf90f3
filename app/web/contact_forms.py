"""Forms of the contacts pages: a contact, a consent, a withdrawal, a reasoned action."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.models import CONSENT_SCOPES, CONTACT_MESSAGES, RELATIONS
from app.services.schedule.contacts import RECORDABLE_METHODS
from app.web.forms import REASON_MAX, PlausibleDate, language_choices
from app.web.labels import CONTACT_CODE_LABELS


class MultiCheckboxField(SelectMultipleField):
    """Several choices as a list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _coded(codes: tuple[str, ...]) -> list[SelectChoice]:
    return [SelectChoice(code, CONTACT_CODE_LABELS[code]) for code in codes]


class ContactForm(FlaskForm):
    """A contact: relation, name or initials, number, language, messages, fallback order."""

    relation = SelectField(
        _l("Relation to the patient"),
        choices=_coded(RELATIONS),
        validators=[DataRequired(message=_l("Choose the relation."))],
    )
    name = StringField(
        _l("Name or initials"),
        validators=[Optional(), Length(max=40, message=_l("At most 40 characters."))],
        render_kw={"placeholder": "王芳"},
    )
    phone = StringField(
        _l("Mobile number"),
        validators=[DataRequired(message=_l("Enter the mobile number.")), Length(max=32)],
        render_kw={"inputmode": "tel", "autocomplete": "off", "placeholder": "139 0013 9001"},
    )
    locale = RadioField(_l("Language of the SMS"), choices=language_choices(), default="zh")
    messages = MultiCheckboxField(
        _l("Which messages this contact gets"),
        choices=_coded(CONTACT_MESSAGES),
        default=list(CONTACT_MESSAGES),
    )
    position = IntegerField(
        _l("Fallback order (0 first)"),
        validators=[
            Optional(),
            NumberRange(min=0, max=99, message=_l("Use a number from 0 to 99.")),
        ],
    )
    reason = TextAreaField(
        _l("Why (kept in the audit log)"),
        validators=[Optional(), Length(max=REASON_MAX)],
    )


class ConsentForm(FlaskForm):
    """A consent the contact gave: date, method, what it covers, witness, note."""

    recorded_on = DateField(
        _l("Date of consent"),
        validators=[InputRequired(message=_l("Enter the date of consent.")), PlausibleDate()],
    )
    method = SelectField(
        _l("How consent was given"),
        choices=[SelectChoice("", _l("Choose…")), *_coded(RECORDABLE_METHODS)],
        validators=[DataRequired(message=_l("Choose how consent was given."))],
    )
    scopes = MultiCheckboxField(_l("What the contact consented to"), choices=_coded(CONSENT_SCOPES))
    witness = StringField(_l("Witness (verbal consent)"), validators=[Optional(), Length(max=80)])
    note = TextAreaField(_l("Note (optional)"), validators=[Optional(), Length(max=REASON_MAX)])


class WithdrawConsentForm(FlaskForm):
    """A withdrawal: how it was said and why."""

    method = SelectField(
        _l("How the withdrawal was given"),
        choices=[SelectChoice("", _l("Choose…")), *_coded(RECORDABLE_METHODS)],
        validators=[DataRequired(message=_l("Choose how the withdrawal was given."))],
    )
    reason = TextAreaField(
        _l("Why"),
        validators=[DataRequired(message=_l("Say why.")), Length(max=REASON_MAX)],
    )


class ReasonForm(FlaskForm):
    """An action that needs a reason (deactivate, reactivate, confirm a migrated consent)."""

    reason = TextAreaField(
        _l("Why"),
        validators=[DataRequired(message=_l("Say why.")), Length(max=REASON_MAX)],
    )
