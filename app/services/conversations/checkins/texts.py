"""The words of check-in SMS messages and of the patient's web page (gettext, zh + en).

Question texts, answer labels, the introduction and the per-item advice come from the protocol's
``checkins:`` section (already in both languages); the framing sentences are gettext strings.
Every text is rendered inside ``force_locale(locale)``. None names a diagnosis or a drug: the
protocol's texts are written that way too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from flask import current_app
from flask_babel import force_locale, gettext

from app.domain.checkins import AnswerProblem, CheckinItem, Question, Questionnaire
from app.services.shared import reply_texts
from app.sms.segments import with_signature

_ENDS_WITH_LINK = re.compile(r"https?://\S+$")
# Tencent Cloud and Alibaba Cloud refuse an SMS over 500 characters, signature included.
MAX_SMS_CHARS = 500
# The {question} variable of the approved check-in start template (app/protocols/sms_templates.yaml,
# checkin_start: introduction + first question); leaves room for a 50-character PUBLIC_BASE_URL.
START_QUESTION_MAX = 330


def joined(parts: Sequence[str], locale: str) -> str:
    """Sentences joined as the language writes them (a space in English, nothing in Chinese);
    a link is always followed by a space, so phones do not take the next words into it."""
    text = ""
    for part in (p.strip() for p in parts if p and p.strip()):
        if text and (locale == "en" or _ENDS_WITH_LINK.search(text)):
            text += " "
        text += part
    return text


def signed(body: str) -> str:
    """The body with the carrier signature (SMS_SIGNATURE) where the settings put it."""
    signature = current_app.config.get("SMS_SIGNATURE") or ""
    position = current_app.config.get("SMS_SIGNATURE_POSITION", "prefix")
    return with_signature(body, signature, position) if signature else body


def link_line(url: str, locale: str) -> str:
    """'Or answer on your phone: <url>'."""
    with force_locale(locale):
        return gettext("Or answer on your phone: %(url)s", url=url)


def progress(position: int, total: int, locale: str) -> str:
    """'(2/15) ': which item of how many."""
    return f"({position}/{total})" + (" " if locale == "en" else "")


def sentence(text: str, locale: str) -> str:
    """The text ending with a full stop (a question's answer list does not end with one)."""
    text = text.strip()
    if not text or text[-1] in ".?!。？！":
        return text
    return text + ("。" if locale == "zh" else ".")


def question_block(item: CheckinItem, question: Question, locale: str) -> str:
    """The item's advice (first question only) and the question with its numbered answers."""
    parts = [g.text(locale) for g in item.guidance] if question.position == 0 else []
    parts.append(sentence(question.sms_text(locale), locale))
    return joined(parts, locale)


def start_message(
    questionnaire: Questionnaire,
    item: CheckinItem,
    question: Question,
    position: int,
    total: int,
    url: str,
    locale: str,
) -> str:
    """First message of a check-in: introduction, first question, link, opt-out hint.

    The introduction is left out when the message would pass MAX_SMS_CHARS (mainland providers
    refuse longer texts) or the approved template's limit for its {question} part
    (START_QUESTION_MAX): the question, the link and the hint always stay.
    """
    parts = [
        questionnaire.intro(locale),
        progress(position, total, locale) + question_block(item, question, locale),
        link_line(url, locale),
    ]
    if current_app.config.get("SMS_OPT_OUT_HINT", True):
        with force_locale(locale):
            parts.append(gettext("Reply STOP to opt out."))
    text = signed(joined(parts, locale))
    fits = len(joined(parts[:2], locale)) <= START_QUESTION_MAX and len(text) <= MAX_SMS_CHARS
    return text if fits else signed(joined(parts[1:], locale))


def question_message(
    item: CheckinItem, question: Question, position: int, total: int, url: str, locale: str
) -> str:
    """One further question of a check-in, with the link."""
    parts = [progress(position, total, locale) + question_block(item, question, locale)]
    parts.append(link_line(url, locale))
    return signed(joined(parts, locale))


def again_message(
    item: CheckinItem | None,
    question: Question | None,
    position: int,
    total: int,
    problems: Sequence[AnswerProblem],
    url: str,
    locale: str,
) -> str:
    """An answer could not be read: say what, and ask the current question again."""
    with force_locale(locale):
        unread = [_shown(p) for p in problems if p.value or p.code][:3]
        if question is not None and question.is_temperature:
            head = gettext(
                "Sorry, we could not read that. Reply with the number of your answer, or your "
                "temperature such as 37.2."
            )
        elif question is not None:
            head = gettext(
                "Sorry, we could not read that. Reply with one number from 0 to %(max)d.",
                max=question.max_score,
            )
        else:
            head = gettext("Sorry, we could not read that.")
        if unread:
            head = joined(
                [head, gettext("Not understood: %(items)s.", items=", ".join(unread))], locale
            )
    parts = [head]
    if item is not None and question is not None:
        parts.append(progress(position, total, locale) + question_block(item, question, locale))
    parts.append(link_line(url, locale))
    return signed(joined(parts, locale))


def _shown(problem: AnswerProblem) -> str:
    """What the patient sent that was not understood, e.g. 'X3' or 'hello'."""
    if problem.kind in ("unknown_code", "out_of_range", "conflicting", "not_applicable"):
        return f"{problem.code}{problem.value}" if problem.code else problem.value
    return problem.value or problem.code


def reminder_message(
    item: CheckinItem | None,
    question: Question | None,
    position: int,
    total: int,
    url: str,
    locale: str,
) -> str:
    """Reminder of an unanswered check-in: the current question again and the link."""
    with force_locale(locale):
        head = gettext("Reminder: your symptom check-in is waiting for your answers.")
    parts = [head]
    if item is not None and question is not None:
        parts.append(progress(position, total, locale) + question_block(item, question, locale))
    parts.append(link_line(url, locale))
    return signed(joined(parts, locale))


def caregiver_offer_message(
    initials: str,
    item: CheckinItem | None,
    question: Question | None,
    position: int,
    total: int,
    url: str,
    locale: str,
) -> str:
    """A check-in the patient left unanswered, offered to a caregiver allowed to get check-ins:
    they may answer for the patient (by SMS or the link); no diagnosis or drug is named."""
    with force_locale(locale):
        head = gettext(
            "%(initials)s has not answered the symptom check-in yet. If you are with them, "
            "you can answer for them.",
            initials=initials,
        )
    parts = [head]
    if item is not None and question is not None:
        parts.append(progress(position, total, locale) + question_block(item, question, locale))
    parts.append(link_line(url, locale))
    return signed(joined(parts, locale))


def done_text(priority: str | None, locale: str, when: str, amber: str | None = None) -> str:
    """What the patient is told when the check-in is complete (no signature); ``amber`` is the
    acknowledgement the rota can keep (reply_texts.amber_answer), used for amber check-ins."""
    if priority == "red":
        return reply_texts.red_reply(locale)
    if priority == "amber":
        return amber or reply_texts.amber_reply(locale, when)
    if priority == "green":
        return reply_texts.green_reply(locale, when)
    with force_locale(locale):
        return gettext(
            "Thank you, your symptom check-in is complete. If you feel worse before the next "
            "one, call the clinic at %(phone)s; in an emergency call 120.",
            phone=reply_texts.clinic_phone(),
        )


def done_message(priority: str | None, locale: str, when: str, amber: str | None = None) -> str:
    """The completion text as an SMS (signed)."""
    return signed(done_text(priority, locale, when, amber))
