"""The words of our SMS answers to patients and of the pages to staff (gettext, zh + en).

Every text is rendered inside ``force_locale(locale)``. None of them names a diagnosis, a drug or
the patient: pages identify the patient by study id only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton, format_time
from flask import current_app
from flask_babel import force_locale, get_locale, gettext
from flask_babel import lazy_gettext as _l

from app.domain.escalation import AmberPromise
from app.sms.segments import with_signature

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
    "pruritus": _l("itch"),
    "mucositis": _l("mouth sores"),
    "numbness": _l("numbness"),
    "fatigue": _l("fatigue"),
    "anorexia": _l("poor appetite"),
    "abdominal_pain": _l("abdominal pain"),
    "skin_nodules": _l("skin nodules"),
    "syncope": _l("fainting or confusion"),
}
LOCALES = ("zh", "en")


def locale_or_default(locale: str | None) -> str:
    """A supported locale: the given one, else the app's default (zh)."""
    if locale in LOCALES:
        return str(locale)
    default = current_app.config.get("BABEL_DEFAULT_LOCALE", "zh")
    return default if default in LOCALES else "zh"


def signed(text: str) -> str:
    """The text with the carrier signature (SMS_SIGNATURE, e.g. 【江苏省肿瘤医院】)."""
    signature = current_app.config.get("SMS_SIGNATURE") or ""
    position = current_app.config.get("SMS_SIGNATURE_POSITION", "prefix")
    return with_signature(text, signature, position) if signature and text else text


def clinic_phone() -> str:
    """The clinic's phone number as patients should dial it."""
    return str(current_app.config.get("CLINIC_PHONE") or "")


def symptom_label(code: str) -> str:
    """A symptom code in words (current locale); unknown codes as they are."""
    label = SYMPTOM_LABELS.get(code)
    return str(label) if label is not None else code.replace("_", " ")


def symptom_summary(symptoms: Iterable[Mapping[str, Any]], temperature: float | None) -> str:
    """'chest pain, fever 38.5 °C' in the current locale (codes without duplicates)."""
    seen: list[str] = []
    for item in symptoms:
        code = str(item.get("code", ""))
        if code and code not in seen:
            seen.append(code)
    parts = [symptom_label(code) for code in seen]
    if temperature is not None:
        reading = gettext("temperature %(value)s °C", value=f"{temperature:.1f}")
        parts.append(reading)
    separator = "，" if _is_zh() else ", "
    return separator.join(parts) or gettext("a message that needs reading")


def _is_zh() -> bool:
    locale = get_locale()
    return locale is not None and locale.language == "zh"


def when_text(moment: datetime, now: datetime, tz: ZoneInfo, locale: str) -> str:
    """'today at 15:30' / 'tomorrow at 09:00' / 'Mon, 2 Mar at 10:00' in the patient's zone."""
    local = moment.astimezone(tz)
    today = now.astimezone(tz).date()
    clock = format_time(local, "HH:mm", tzinfo=tz, locale=locale)
    if local.date() == today:
        return gettext("today at %(time)s", time=clock)
    if local.date() == today + timedelta(days=1):
        return gettext("tomorrow at %(time)s", time=clock)
    day = format_skeleton("MMMEd", local, locale=locale)
    return gettext("%(date)s at %(time)s", date=day, time=clock)


# -- answers to patients -------------------------------------------------------------------------


def red_reply(locale: str) -> str:
    """Emergency advice: call 120 or go to the emergency department now; the team knows."""
    with force_locale(locale):
        return gettext(
            "This may be serious. Call 120 or go to the nearest emergency department now. "
            "We have told your care team."
        )


def amber_reply(locale: str, when: str) -> str:
    """Acknowledgement of an amber report: a study nurse will call by ``when``."""
    with force_locale(locale):
        return gettext(
            "Thank you. A study nurse will call you by %(when)s. If you feel worse, call 120 or "
            "go to the nearest emergency department.",
            when=when,
        )


def amber_reply_later(locale: str, when: str) -> str:
    """Acknowledgement of an amber report while no nurse is on call: when the call will come."""
    with force_locale(locale):
        return gettext(
            "Thank you. No study nurse is on duty now; a nurse will call you by %(when)s. If you "
            "feel worse before then, call the clinic on %(phone)s or call 120 or go to the "
            "nearest emergency department.",
            when=when,
            phone=clinic_phone(),
        )


def amber_reply_no_cover(locale: str) -> str:
    """Acknowledgement of an amber report when the rota has no nurse within 24 h: no promise."""
    with force_locale(locale):
        return gettext(
            "Thank you, we have recorded your message. No study nurse can call you in the next "
            "24 hours. If you feel worse or are worried, call the clinic on %(phone)s or call "
            "120 or go to the nearest emergency department.",
            phone=clinic_phone(),
        )


def amber_answer(locale: str, promise: AmberPromise, now: datetime, tz: ZoneInfo) -> str:
    """The amber acknowledgement the rota can keep: a call by a time, later, or no promise."""
    if promise.kind == "none" or promise.call_by is None:
        return amber_reply_no_cover(locale)
    with force_locale(locale):
        when = when_text(promise.call_by, now, tz, locale)
    if promise.kind == "now":
        return amber_reply(locale, when)
    return amber_reply_later(locale, when)


def green_reply(locale: str, when: str) -> str:
    """Acknowledgement of a routine report: the nurse reviews it by ``when``."""
    with force_locale(locale):
        return gettext(
            "Thank you, we have recorded it. Your study nurse will review it by %(when)s and call "
            "you if needed. Clinic: %(phone)s.",
            when=when,
            phone=clinic_phone(),
        )


def confirm_reply(locale: str, confirmed: bool) -> str:
    """Answer to a confirmation (of a visit, when one was found)."""
    with force_locale(locale):
        if confirmed:
            return gettext("Thank you, your appointment is confirmed.")
        return gettext("Thank you, we have received your reply.")


def reschedule_reply(locale: str, when: str) -> str:
    """Answer to a request to change a date: a nurse will call by ``when``."""
    with force_locale(locale):
        return gettext(
            "We have received your request to change the date. A study nurse will call you by "
            "%(when)s.",
            when=when,
        )


def opt_out_reply(locale: str) -> str:
    """Confirmation that no more messages will be sent."""
    with force_locale(locale):
        return gettext(
            "You will receive no more messages from us. Reply START to receive them again. "
            "Clinic: %(phone)s.",
            phone=clinic_phone(),
        )


def opt_in_reply(locale: str) -> str:
    """Confirmation that messages start again."""
    with force_locale(locale):
        return gettext(
            "Messages are on again. Reply STOP at any time to stop them. Clinic: %(phone)s.",
            phone=clinic_phone(),
        )


def help_reply(locale: str) -> str:
    """The reply codes and the clinic's phone number."""
    with force_locale(locale):
        return gettext(
            "Reply 1 to confirm, 2 to change the date, or tell us how you feel. Reply STOP to "
            "stop messages. Clinic: %(phone)s. Emergency: call 120.",
            phone=clinic_phone(),
        )


def unknown_reply(locale: str) -> str:
    """Answer to a message we did not understand: a nurse will read it."""
    with force_locale(locale):
        return gettext(
            "Thank you, a study nurse will read your message. Reply HELP for the reply codes. "
            "If you feel very unwell, call 120."
        )


def ask_back_reply(locale: str, text: str, visit: date, code: str) -> str:
    """A bare code that fits two open messages: which one did the patient mean?"""
    with force_locale(locale):
        return gettext(
            'Your reply "%(text)s" could answer two of our messages. To confirm your appointment '
            "on %(date)s, reply CONFIRM. To answer the symptom question, reply %(code)s. If you "
            "feel very unwell, call 120.",
            text=text[:12],
            date=format_skeleton("MMMd", visit, locale=locale),
            code=code,
        )


def red_check_reply(locale: str, answer: str, question: str) -> str:
    """A one-character answer that means an emergency: is it right? (a nurse already knows)."""
    with force_locale(locale):
        return gettext(
            'You replied "%(answer)s" to: %(question)s Is that right? Reply YES if it is, or NO if '
            "not. A study nurse has been told. If you feel very unwell, call 120 now.",
            answer=answer[:12],
            question=question,
        )


def nothing_open_reply(locale: str, text: str) -> str:
    """A bare code when no message of ours awaits a reply: nothing was recorded as an answer."""
    with force_locale(locale):
        return gettext(
            'We are not sure what your reply "%(text)s" answers: no question of ours is open. '
            "Tell us in words how you feel, or call %(phone)s. If you feel very unwell, call 120.",
            text=text[:12],
            phone=clinic_phone(),
        )


def failure_reply(locale: str) -> str:
    """Safe answer when interpretation failed: a person will read it; emergencies call 120."""
    with force_locale(locale):
        return gettext(
            "We have received your message and a study nurse will read it. If you feel very "
            "unwell, call 120 or go to the nearest emergency department now."
        )


def unknown_sender_reply(locale: str, emergency: bool) -> str:
    """Answer to a number we do not know: nothing about any patient."""
    with force_locale(locale):
        if emergency:
            return gettext(
                "If this is an emergency, call 120 or go to the nearest emergency department now."
            )
        return gettext("This number cannot answer messages. In an emergency, call 120.")


# -- pages to staff ------------------------------------------------------------------------------


def red_page(locale: str, alert_id: int, who: str, what: str) -> str:
    """First page of a red alert to the on-call clinician."""
    with force_locale(locale):
        return gettext(
            "Cadence RED #%(id)d: %(who)s reports %(what)s. Patient told to call 120. Please act "
            "and acknowledge in Cadence.",
            id=alert_id,
            who=who,
            what=what,
        )


def red_escalation_page(locale: str, alert_id: int, who: str, what: str, minutes: int) -> str:
    """Page to the investigator: a red alert is still unacknowledged."""
    with force_locale(locale):
        return gettext(
            "Cadence ESCALATION #%(id)d: red alert for %(who)s (%(what)s) not acknowledged after "
            "%(minutes)d min. Please act now and acknowledge in Cadence.",
            id=alert_id,
            who=who,
            what=what,
            minutes=minutes,
        )


def amber_reminder_page(locale: str, alert_id: int, who: str, what: str) -> str:
    """Reminder to the nurses: an amber alert waits for acknowledgement."""
    with force_locale(locale):
        return gettext(
            "Cadence reminder #%(id)d: amber alert for %(who)s (%(what)s) is not acknowledged. "
            "Please review it in Cadence today.",
            id=alert_id,
            who=who,
            what=what,
        )


def unregistered_sender(locale: str, number: str) -> str:
    """How pages name a sender we do not know (last four digits only)."""
    with force_locale(locale):
        return gettext("unregistered number ending %(digits)s", digits=number[-4:] or "?")
