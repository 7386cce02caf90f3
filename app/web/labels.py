"""Translated names for the codes stored in the database (kinds, statuses, flags, actions)."""

from __future__ import annotations

import re
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import get_timezone, get_timezone_location
from flask import g, has_app_context
from flask_babel import get_locale, gettext
from flask_babel import lazy_gettext as _l

from app.services.shared.protocols import current_protocol
from app.services.shared.users import MIN_PASSWORD_LENGTH

ROLE_LABELS = {
    "nurse": _l("Nurse"),
    "investigator": _l("Investigator"),
    "admin": _l("Administrator"),
    "clinician": _l("On-call clinician"),
}

EVENT_KIND_LABELS = {
    "infusion": _l("Infusion"),
    "labs": _l("Blood tests"),
    "premedication": _l("Premedication"),
    "imaging": _l("Imaging"),
    "endoscopy": _l("Endoscopy"),
    "checkin": _l("Symptom check-in"),
    "followup": _l("Follow-up contact"),
    "radiotherapy": _l("Radiotherapy"),
    "review": _l("Investigator review"),
}

# Kinds that bring the patient to the hospital (the others are reminders or phone contacts).
ATTENDANCE_KINDS = ("infusion", "labs", "imaging", "endoscopy", "radiotherapy")

PHASE_LABELS = {
    "induction": _l("Induction"),
    "maintenance": _l("Maintenance"),
    "salvage": _l("Salvage chemoradiation"),
    "follow_up": _l("Follow-up"),
}

EVENT_STATUS_LABELS = {
    "planned": _l("Planned"),
    "confirmed": _l("Confirmed"),
    "done": _l("Done"),
    "missed": _l("Missed"),
    "cancelled": _l("Cancelled"),
    "not_tracked": _l("Not tracked"),
}

PATIENT_STATUS_LABELS = {
    "active": _l("On treatment"),
    "salvage": _l("Salvage"),
    "follow_up": _l("Follow-up"),
    "withdrawn": _l("Withdrawn"),
    "off_study": _l("Off study"),
}

FLAG_LABELS = {
    "moved_non_working_day": _l("Moved off a non-working day"),
    "no_working_day_in_window": _l("No working day in its window"),
    "outside_window": _l("Outside its window"),
    "min_interval_enforced": _l("Kept the minimum gap between infusions"),
    "on_non_working_day": _l("On a non-working day"),
    "overdue": _l("Overdue"),
    "rescheduled": _l("Rescheduled"),
    "shifted": _l("Moved with its cycle"),
    "paused_for_salvage": _l("Paused for salvage"),
    "stopped_for_salvage": _l("Stopped for salvage"),
    "progression_recorded": _l("After recorded progression"),
    "treatment_stopped": _l("Treatment stopped"),
    "off_study": _l("Off study"),
    "superseded": _l("Superseded"),
    "before_cadence": _l("Before Cadence was used"),
    "imaging_early": _l("Imaging earlier than planned"),
    "suspended_for_radiotherapy": _l("Suspended for radiotherapy"),
    "rt_prolonged": _l("Radiotherapy prolonged"),
    "closure_in_nadir": _l("Clinic closed during the blood-count low point"),
}

ACTION_LABELS = {
    "patient.enrol": _l("Enrolled"),
    "patient.progression": _l("Progression recorded"),
    "patient.salvage": _l("Salvage started"),
    "patient.stop_treatment": _l("Treatment stopped"),
    "patient.withdraw": _l("Withdrawn from study"),
    "calendar.reschedule": _l("Rescheduled"),
    "event.status": _l("Event status changed"),
    "user.create": _l("Account created"),
    "user.update": _l("Account changed"),
    "user.password_reset": _l("Password reset"),
    "user.password_change": _l("Password changed"),
    "user.sign_in": _l("Signed in"),
    "user.sign_in_failed": _l("Failed sign-in"),
    "user.sign_out": _l("Signed out"),
    "user.sign_out_everywhere": _l("Signed out everywhere"),
    "calendar.decision": _l("Decision recorded"),
    "contact.add": _l("Contact added"),
    "contact.update": _l("Contact changed"),
    "contact.consent_recorded": _l("Contact consent recorded"),
    "contact.consent_confirmed": _l("Contact consent confirmed"),
    "contact.consent_withdrawn": _l("Contact consent withdrawn"),
    "contact.deactivated": _l("Contact deactivated"),
    "contact.reactivated": _l("Contact active again"),
    "contact.sms_opted_out": _l("Contact opted out of SMS"),
    "contact.sms_opted_in": _l("Contact opted in to SMS again"),
    "message.queue_malformed": _l("Unreadable provider queue message set aside"),
}

# Contacts and their consents (app/models/contacts.py), as staff read them.
CONTACT_CODE_LABELS = {
    "self": _l("Patient"),
    "spouse": _l("Spouse"),
    "son": _l("Son"),
    "daughter": _l("Daughter"),
    "other": _l("Other"),
    "reminders": _l("Appointment reminders"),
    "checkins": _l("Symptom check-ins"),
    "replies": _l("Replies to their messages"),
    "sms_reminders": _l("SMS reminders"),
    "sensitive_health": _l("Sensitive health information"),
    "paper": _l("Paper form"),
    "verbal_witness": _l("Verbal, with a witness"),
    "electronic": _l("Electronic"),
    "before_contacts": _l("Recorded before contacts existed"),
}

# One vocabulary for alert levels everywhere (Today, inbox, metrics, history, SMS to staff).
LEVEL_LABELS = {
    "red": _l("Urgent"),
    "amber": _l("Same day"),
    "green": _l("Routine"),
    "none": _l("No triage needed"),
}

SYMPTOM_LABELS = {
    "diarrhea": _l("diarrhoea"),
    "dysphagia": _l("difficulty swallowing"),
    "fever": _l("fever"),
    "nausea": _l("nausea"),
    "vomiting": _l("vomiting"),
    "hematemesis": _l("vomiting blood"),
    "melena": _l("black or bloody stools"),
    "dyspnea": _l("shortness of breath"),
    "cough": _l("cough"),
    "chest_pain": _l("chest pain"),
    "rash": _l("rash"),
    "pruritus": _l("itching"),
    "mucositis": _l("mouth sores"),
    "numbness": _l("numbness or tingling"),
    "fatigue": _l("fatigue"),
    "anorexia": _l("loss of appetite"),
    "abdominal_pain": _l("abdominal pain"),
    "skin_nodules": _l("skin nodules"),
    "syncope": _l("fainting"),
}

SYMPTOM_LEVEL_LABELS = {
    "solids_difficult": _l("solid food is hard to swallow"),
    "soft_food_only": _l("only soft food"),
    "liquids_only": _l("only liquids"),
    "cannot_swallow_liquids": _l("cannot swallow liquids or saliva"),
    "cannot_keep_fluids": _l("cannot keep fluids down"),
    "on_exertion": _l("on exertion"),
    "minimal_exertion": _l("on minimal exertion"),
    "at_rest": _l("at rest"),
    "widespread": _l("widespread"),
    "blistering": _l("blistering"),
}

INTENT_LABELS = {
    "confirm": _l("Confirmed the appointment"),
    "reschedule_request": _l("Asked to change a date"),
    "symptom_report": _l("Symptom report"),
    "checkin_answer": _l("Check-in answer"),
    "opt_out": _l("Opted out of SMS"),
    "opt_in": _l("Opted back in to SMS"),
    "help": _l("Asked for help"),
    "unknown": _l("Not understood"),
}

ACTOR_LABELS = {
    "system": _l("System"),
    "jobs": _l("Scheduled job"),
    "demo": _l("Demo data"),
    "test": _l("Test"),
    "cli": _l("Command line"),
    "webhook": _l("SMS gateway"),
}

ALERT_KIND_LABELS = {
    "symptom": _l("Symptom report"),
    "reschedule": _l("Reschedule request"),
    "review": _l("Message to read"),
    "call_task": _l("Unanswered check-in: call the patient"),
    "opt_out": _l("Opted out of SMS"),
}

RESOLUTION_ACTION_LABELS = {
    "called_patient": _l("Called the patient"),
    "advised_emergency": _l("Advised the emergency department"),
    "earlier_visit": _l("Arranged an earlier visit"),
    "dose_hold_suggested": _l("Dose hold suggested to the investigator"),
    "no_action_needed": _l("No action needed"),
}

ALERT_STATUS_LABELS = {
    "open": _l("Open"),
    "acknowledged": _l("Acknowledged"),
    "resolved": _l("Resolved"),
}

CHECKIN_STATUS_LABELS = {
    "sent": _l("Sent, not answered yet"),
    "partial": _l("Partly answered"),
    "answered": _l("Answered"),
    "call_task": _l("Nurse to call"),
    "expired": _l("Expired unanswered"),
    "closed": _l("Closed"),
}

CHANNEL_LABELS = {"sms": _l("SMS"), "web": _l("Web link"), "mixed": _l("SMS and web link")}

ENCODING_LABELS = {
    "GSM-7": _l("Latin characters (160 per SMS)"),
    "UCS-2": _l("Chinese characters (70 per SMS)"),
}

# Flags that need a nurse's attention (shown in red and listed on the Today page).
WARNING_FLAGS = (
    "outside_window",
    "no_working_day_in_window",
    "on_non_working_day",
    "min_interval_enforced",
    "overdue",
)


def is_zh() -> bool:
    """True when the current locale is Chinese."""
    locale = get_locale()
    return locale is not None and locale.language == "zh"


def humanise(code: str) -> str:
    """A readable fallback for a code that has no label: 'safety_contact' -> 'Safety contact'."""
    text = str(code or "").replace("_", " ").replace(".", " ").strip()
    return text[:1].upper() + text[1:]


def _lookup(table: dict[str, Any], code: str | None) -> str:
    if code is None:
        return ""
    label = table.get(code)
    return _translated(label) if label is not None else humanise(code)


def _translated(label: Any) -> str:
    """A label in the current language, remembered per app context and language.

    A page of 250 events asks for the same few labels about 1,000 times, and each str() of a
    lazy label costs Flask-Babel several context lookups; the language is part of the key, so
    a force_locale block inside the same context gets its own.
    """
    if not has_app_context():
        return str(label)
    cache = g.setdefault("_cadence_labels", {})
    key = (str(get_locale()), id(label))
    text = cache.get(key)
    if text is None:
        text = cache[key] = str(label)
    return text


def contact_code_label(code: str | None) -> str:
    """Translated relation, message kind, consent scope or consent method of a contact."""
    return _lookup(CONTACT_CODE_LABELS, code)


def role_label(code: str | None) -> str:
    """Translated role name."""
    return _lookup(ROLE_LABELS, code)


def kind_label(code: str | None) -> str:
    """Translated event kind."""
    return _lookup(EVENT_KIND_LABELS, code)


def event_status_label(code: str | None) -> str:
    """Translated event status."""
    return _lookup(EVENT_STATUS_LABELS, code)


def phase_label(code: str | None) -> str:
    """Translated phase name."""
    return _lookup(PHASE_LABELS, code)


def patient_status_label(code: str | None) -> str:
    """Translated patient status."""
    return _lookup(PATIENT_STATUS_LABELS, code)


def flag_label(code: str | None) -> str:
    """Translated calendar flag (codes may carry a detail after ':')."""
    if not code:
        return ""
    base, _, detail = str(code).partition(":")
    label = _lookup(FLAG_LABELS, base)
    return f"{label} ({detail})" if detail else label


def flag_is_warning(code: str | None) -> bool:
    """True when a flag needs attention."""
    return str(code or "").partition(":")[0] in WARNING_FLAGS


def action_label(code: str | None) -> str:
    """Translated audit action."""
    return _lookup(ACTION_LABELS, code)


def level_label(code: str | None) -> str:
    """Translated alert level (紧急 / 当日处理 / 常规)."""
    return _lookup(LEVEL_LABELS, code)


def symptom_label(code: str | None) -> str:
    """Translated symptom code of the reply parser."""
    return _lookup(SYMPTOM_LABELS, code)


def symptom_level_label(code: str | None) -> str:
    """Translated named symptom level ('at_rest' ...)."""
    return _lookup(SYMPTOM_LEVEL_LABELS, code)


def intent_label(code: str | None) -> str:
    """Translated reply intent ('checkin_answer' ...)."""
    return _lookup(INTENT_LABELS, code)


def alert_kind_label(code: str | None) -> str:
    """Translated alert kind."""
    return _lookup(ALERT_KIND_LABELS, code)


def resolution_action_label(code: str | None) -> str:
    """Translated 'what was done' of a resolved inbox item."""
    return _lookup(RESOLUTION_ACTION_LABELS, code)


def duration_label(seconds: int | float | None) -> str:
    """A short duration: '45 s', '12 min', '3 h 5 min', '2 d 4 h'."""
    if seconds is None:
        return "—"
    total = int(seconds)
    if total < 60:
        return gettext("%(num)d s", num=total)
    minutes = total // 60
    if minutes < 60:
        return gettext("%(num)d min", num=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return gettext("%(hours)d h %(minutes)d min", hours=hours, minutes=minutes)
    days, hours = divmod(hours, 24)
    return gettext("%(days)d d %(hours)d h", days=days, hours=hours)


def alert_status_label(code: str | None) -> str:
    """Translated alert status."""
    return _lookup(ALERT_STATUS_LABELS, code)


def checkin_status_label(code: str | None) -> str:
    """Translated check-in status."""
    return _lookup(CHECKIN_STATUS_LABELS, code)


def channel_label(code: str | None) -> str:
    """Translated check-in channel (SMS, web link)."""
    return _lookup(CHANNEL_LABELS, code)


def encoding_label(code: str | None) -> str:
    """Translated SMS encoding."""
    return _lookup(ENCODING_LABELS, code)


def actor_label(actor: str | None) -> str:
    """Who did something: a user's name, a patient's study id, or a translated system actor."""
    text = str(actor or "")
    kind, _, rest = text.partition(":")
    if kind == "user" and rest:
        return rest
    if kind == "patient" and rest:
        return str(_l("Patient %(study_id)s", study_id=rest))
    label = ACTOR_LABELS.get(text) or ACTOR_LABELS.get(kind)
    return str(label) if label is not None else text


EVENT_KEY_WORDS = {
    "assessment": _l("Assessment"),
    "ct": _l("CT"),
    "gastroscopy": _l("Gastroscopy"),
    "ultrasound": _l("Ultrasound"),
    "barium_swallow": _l("Barium swallow"),
    "safety": _l("Safety follow-up"),
    "survival": _l("Survival follow-up"),
    "rt": _l("Radiotherapy"),
    "response": _l("Response assessment"),
}
WEEK_DAY_PART = re.compile(r"[wW](?P<week>\d+)d(?P<day>\d+)")
END_DAY_PART = re.compile(r"end_d(?P<day>\d+)")
PROGRESSION_PART = re.compile(r"progression(?P<num>\d+)")
NUMBERED_KEY_PARTS = {
    "f": _l("fraction %(num)s"),
    "c": _l("cycle %(num)s"),
    "w": _l("week %(num)s"),
    "d": _l("day %(num)s"),
    "m": _l("month %(num)s"),
}


def drug_name(code: str) -> str:
    """A protocol drug's name in the reader's language ('paclitaxel' -> '紫杉醇')."""
    drug = current_protocol().drugs.get(code)
    if drug is None:
        return code
    return drug.name_zh if is_zh() else drug.name_en


def event_key_label(key: str | None) -> str:
    """An event key ('induction.c2.infusion', 'assessment.ct.w36') in words."""
    words = []
    for part in str(key or "").split("."):
        label = PHASE_LABELS.get(part) or EVENT_KIND_LABELS.get(part) or EVENT_KEY_WORDS.get(part)
        numbered = NUMBERED_KEY_PARTS.get(part[:1]) if part[1:].isdigit() else None
        week_day = WEEK_DAY_PART.fullmatch(part)
        if label is not None:
            words.append(str(label))
        elif week_day is not None:
            words.append(str(_l("week %(week)s day %(day)s", **week_day.groupdict())))
        elif END_DAY_PART.fullmatch(part):
            words.append(str(_l("day %(num)s after the end", num=part[5:])))
        elif PROGRESSION_PART.fullmatch(part):
            words.append(str(_l("after progression %(num)s", num=part[11:])))
        elif part.endswith("_premedication"):
            words.append(str(_l("premedication for %(drug)s", drug=drug_name(part[:-14]))))
        elif numbered is not None:
            words.append(str(numbered) % {"num": part[1:]})
        else:
            words.append(humanise(part))
    return " ".join(words) if words else str(key or "")


def language_name(code: str | None) -> str:
    """A language's own name in the reader's language (Babel's CLDR data): 中文, 英语 ..."""
    if not code:
        return ""
    try:
        return Locale.parse(code).get_display_name(get_locale() or "en") or code
    except (ValueError, UnknownLocaleError):
        return code


def timezone_name(zone: str | None) -> str:
    """A time zone by its place in the reader's language ('中国（上海）时间'), Babel's CLDR data."""
    if not zone:
        return ""
    try:
        return get_timezone_location(get_timezone(zone), locale=get_locale() or "en")
    except LookupError:
        return zone


def localised(obj: Any, field: str = "title") -> str:
    """obj.<field>_zh or obj.<field>_en (or dict keys) in the current locale."""
    suffix = "zh" if is_zh() else "en"
    other = "en" if suffix == "zh" else "zh"
    for key in (f"{field}_{suffix}", f"{field}_{other}"):
        value = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
        if value:
            return str(value)
    return ""


def N_(text: str) -> str:
    """Mark a string for extraction into the catalogs; it is translated later, by value."""
    return text


# zxcvbn's advice (app/domain/passwords.py), word for word, so it can be translated.
PASSWORD_ADVICE = {
    text: _l(text)
    for text in (
        N_("Use a few words, avoid common phrases."),
        N_("No need for symbols, digits, or uppercase letters."),
        N_("Add another word or two. Uncommon words are better."),
        N_("Straight rows of keys are easy to guess."),
        N_("Short keyboard patterns are easy to guess."),
        N_("Use a longer keyboard pattern with more turns."),
        N_('Repeats like "aaa" are easy to guess.'),
        N_('Repeats like "abcabcabc" are only slightly harder to guess than "abc".'),
        N_("Avoid repeated words and characters."),
        N_('Sequences like "abc" or "6543" are easy to guess.'),
        N_("Avoid sequences."),
        N_("Recent years are easy to guess."),
        N_("Avoid recent years."),
        N_("Avoid years that are associated with you."),
        N_("Dates are often easy to guess."),
        N_("Avoid dates and years that are associated with you."),
        N_("This is a top-10 common password."),
        N_("This is a top-100 common password."),
        N_("This is a very common password."),
        N_("This is similar to a commonly used password."),
        N_("A word by itself is easy to guess."),
        N_("Names and surnames by themselves are easy to guess."),
        N_("Common names and surnames are easy to guess."),
        N_("Capitalization doesn't help very much."),
        N_("All-uppercase is almost as easy to guess as all-lowercase."),
        N_("Reversed words aren't much harder to guess."),
        N_("Predictable substitutions like '@' instead of 'a' don't help very much."),
    )
}


def password_advice(advice: tuple[str, ...]) -> str:
    """zxcvbn's advice in the user's language (English for a sentence we do not know)."""
    return " ".join(str(PASSWORD_ADVICE.get(text, text)) for text in advice)


def user_error_message(error: Any) -> str:
    """A translated message for a users-service UserError (by its code)."""
    messages = {
        "password_too_short": _l("Use at least %(num)d characters.", num=MIN_PASSWORD_LENGTH),
        "password_too_long": _l("The password is too long."),
        "password_has_username": _l("The password must not contain the username."),
        "password_too_simple": _l("Use more different characters."),
        "username_invalid": _l(
            "Use 2 to 64 lower-case letters, digits, dots, hyphens or underscores."
        ),
        "username_taken": _l("This username is already taken."),
        "wrong_password": _l("The current password is not right."),
        "same_password": _l("Choose a password different from the current one."),
        "last_admin": _l(
            "This is the last active administrator: keep the role and the account active."
        ),
        "role_invalid": _l("Choose a role from the list."),
        "locale_invalid": _l("Choose a language from the list."),
    }
    code = getattr(error, "code", "")
    if code == "password_guessable":
        reason = password_advice(getattr(error, "advice", ()))
        return " ".join(filter(None, (str(_l("This password is too easy to guess.")), reason)))
    message = messages.get(code)
    return str(message) if message is not None else str(error)
