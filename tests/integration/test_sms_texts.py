"""Every kind of SMS, rendered by the real renderer in zh and en, against text written by hand.

Reminders and moved notices go through app/services/messaging/reminders.render_message (the
signature and the opt-out hint included, as sent); answers and staff pages through
app/services/shared/reply_texts. The expected strings are the wording the study team approved
(translations/zh), typed out here: a changed template or a lost translation fails a test.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from app.domain.protocol import Fasting
from app.domain.reminders import PlannedMessage, ReminderItem
from app.services.messaging.reminders import RenderContext, render_message
from app.services.shared import reply_texts as rt

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 10)  # a Tuesday
BEFORE = date(2026, 3, 3)  # the Tuesday before
SIGN = "【江苏省肿瘤医院】"


def item(kind: str, template: str, days_before: int, **extra: object) -> ReminderItem:
    """One reminder of a ``kind`` event on DAY, sent ``days_before`` at 08:00."""
    send_at = datetime(2026, 3, DAY.day - days_before, 8, tzinfo=SHANGHAI)
    return ReminderItem(
        event_key=f"x.{kind}",
        kind=kind,
        event_date=DAY,
        template=template,
        rule_id=f"{kind}.{days_before}",
        days_before=days_before,
        send_at=send_at,
        **extra,
    )


def render(locale: str, *items: ReminderItem, kind: str = "reminder") -> str:
    """The body the service would store and send for these items."""
    message = PlannedMessage(kind=kind, send_at=items[0].send_at, items=tuple(items))
    return render_message(message, 0, RenderContext(locale=locale, tz=SHANGHAI))


REMINDERS = [
    # (kind, template, days before, zh body, en body)
    ("labs", "labs", 0,
     "提醒：今天（3月10日周二）请到院抽血化验。",
     "Reminder: Blood test at the hospital today, Tue, Mar 10."),
    ("labs", "labs", 1,
     "提醒：您3月10日周二需到院抽血化验。",
     "Reminder: Blood test at the hospital on Tue, Mar 10."),
    ("imaging", "imaging", 0,
     "提醒：今天（3月10日周二）有您的影像检查。",
     "Reminder: Your scan is today, Tue, Mar 10."),
    ("imaging", "imaging", 2,
     "提醒：您3月10日周二有影像检查。",
     "Reminder: You have a scan on Tue, Mar 10."),
    ("endoscopy", "endoscopy", 0,
     "提醒：今天（3月10日周二）有您的内镜检查。",
     "Reminder: Your endoscopy is today, Tue, Mar 10."),
    ("endoscopy", "endoscopy", 2,
     "提醒：您3月10日周二有内镜检查。",
     "Reminder: You have an endoscopy on Tue, Mar 10."),
    ("visit", "visit", 0,
     "提醒：今天（3月10日周二）请到院就诊。",
     "Reminder: Your hospital visit is today, Tue, Mar 10."),
    ("visit", "visit", 2,
     "提醒：您3月10日周二需到院就诊。",
     "Reminder: You have a hospital visit on Tue, Mar 10."),
    ("followup", "followup", 3,
     "提醒：研究团队将于3月10日周二前后与您联系。",
     "Reminder: The study team will contact you around Tue, Mar 10."),
    ("infusion", "treatment", 0,
     "提醒：今天（3月10日周二）是您的治疗日，请按时到院。",
     "Reminder: Your treatment is today, Tue, Mar 10. Please come on time."),
    ("infusion", "treatment", 2,
     "提醒：您3月10日周二有治疗安排，请按时到院。",
     "Reminder: Your treatment is on Tue, Mar 10. Please come on time."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "template", "days_before", "zh", "en"),
    REMINDERS,
    ids=[f"{r[1]}-{'today' if r[2] == 0 else f'{r[2]}d-before'}" for r in REMINDERS],
)
def test_each_reminder_kind_reads_exactly(
    app_ctx: Flask, kind: str, template: str, days_before: int, zh: str, en: str
) -> None:
    reminder = item(kind, template, days_before)

    assert render("zh", reminder) == SIGN + zh + "回复TD退订"
    assert render("en", reminder) == SIGN + en + " Reply STOP to opt out."


def test_a_timed_premedication_dose_names_its_day_and_clock_time(app_ctx: Flask) -> None:
    dose = item(
        "premedication",
        "premedication",
        0,
        dose_at=datetime(2026, 3, 10, 20, 0, tzinfo=SHANGHAI),
    )

    assert (
        render("zh", dose) == SIGN + "提醒：请按医嘱服用治疗前用药（3月10日周二 20:00）。回复TD退订"
    )
    assert render("en", dose) == (
        SIGN + "Reminder: Please take the medicine prescribed for before your treatment "
        "(Tue, Mar 10, 8:00\u202fPM dose). Reply STOP to opt out."
    )


@pytest.mark.parametrize(
    ("fasting", "labs", "zh", "en"),
    [
        (Fasting(8, 0), True, "请提前8小时禁食，可饮水。", "Do not eat for 8 hours before; water is fine."),
        (Fasting(6, 6), False, "请提前6小时禁食禁水。", "Do not eat or drink for 6 hours before."),
        (Fasting(6, 2), False, "请提前6小时禁食、2小时禁水。",
         "Do not eat for 6 hours or drink for 2 hours before."),
    ],
)  # fmt: skip
def test_fasting_and_arrival_are_stated_once(
    app_ctx: Flask, fasting: Fasting, labs: bool, zh: str, en: str
) -> None:
    template = "labs" if labs else "imaging"
    reminder = item(template, template, 1, fasting=fasting, arrive_at=time(7, 30))
    visit = (
        (
            "提醒：您3月10日周二需到院抽血化验。",
            "Reminder: Blood test at the hospital on Tue, Mar 10.",
        )
        if labs
        else ("提醒：您3月10日周二有影像检查。", "Reminder: You have a scan on Tue, Mar 10.")
    )

    assert render("zh", reminder) == SIGN + visit[0] + "请于07:30前到达。" + zh + "回复TD退订"
    assert render("en", reminder) == (
        SIGN + visit[1] + " Please arrive by 7:30\u202fAM. " + en + " Reply STOP to opt out."
    )


MOVES = [
    ("infusion", "您的治疗", "Your treatment"),
    ("radiotherapy", "您的治疗", "Your treatment"),
    ("labs", "您的抽血化验", "Your blood test"),
    ("imaging", "您的影像检查", "Your scan"),
    ("endoscopy", "您的内镜检查", "Your endoscopy"),
    ("followup", "您的随访联系", "Your follow-up call"),
    ("visit", "您的就诊", "Your visit"),
]


@pytest.mark.parametrize(("kind", "zh", "en"), MOVES, ids=[m[0] for m in MOVES])
def test_each_moved_notice_reads_exactly(app_ctx: Flask, kind: str, zh: str, en: str) -> None:
    moved = item(kind, "notice", 1, moved_from=BEFORE)

    assert render("zh", moved, kind="moved") == (
        SIGN + f"日程变更：{zh}已由3月3日周二改到3月10日周二。回复TD退订"
    )
    assert render("en", moved, kind="moved") == (
        SIGN + f"Schedule change: {en} has moved from Tue, Mar 3 to Tue, Mar 10. "
        "Reply STOP to opt out."
    )


@pytest.mark.parametrize(
    ("later", "zh", "en"),
    [
        (1, "其后另有1项日程相应顺延，届时会再提醒您。",
         "1 later appointment has moved too; you will be reminded before it."),
        (3, "其后另有3项日程相应顺延，届时会再提醒您。",
         "3 later appointments have moved too; you will be reminded before each."),
    ],
)  # fmt: skip
def test_a_long_cascade_names_two_moves_and_counts_the_rest(
    app_ctx: Flask, later: int, zh: str, en: str
) -> None:
    moves = [
        item("infusion", "notice", 1, moved_from=BEFORE),
        item("labs", "notice", 1, moved_from=BEFORE),
    ]
    moves += [item("visit", "notice", 1, moved_from=BEFORE) for _ in range(later)]

    assert render("zh", *moves, kind="moved") == (
        SIGN + "日程变更：您的治疗已由3月3日周二改到3月10日周二。"
        "您的抽血化验已由3月3日周二改到3月10日周二。" + zh + "回复TD退订"
    )
    assert render("en", *moves, kind="moved") == (
        SIGN + "Schedule change: Your treatment has moved from Tue, Mar 3 to Tue, Mar 10. "
        "Your blood test has moved from Tue, Mar 3 to Tue, Mar 10. "
        + en
        + " Reply STOP to opt out."
    )


CLINIC = "+86 25 8328 3400"  # config.py CLINIC_PHONE default (the hospital's switchboard)

ANSWERS = [
    ("red", lambda loc: rt.red_reply(loc),
     "您的情况可能很严重，请立即拨打120或去最近的医院急诊。我们已通知您的医疗团队。",
     "This may be serious. Call 120 or go to the nearest emergency department now. "
     "We have told your care team."),
    ("amber", lambda loc: rt.amber_reply(loc, "16:00"),
     "谢谢。研究护士将在16:00前给您打电话。如病情加重，请拨打120或去最近的医院急诊。",
     "Thank you. A study nurse will call you by 16:00. If you feel worse, call 120 or go to "
     "the nearest emergency department."),
    ("green", lambda loc: rt.green_reply(loc, "16:00"),
     f"谢谢，已记录。研究护士将在16:00前查看，如有需要会给您打电话。门诊电话：{CLINIC}。",
     "Thank you, we have recorded it. Your study nurse will review it by 16:00 and call you "
     f"if needed. Clinic: {CLINIC}."),
    ("confirmed", lambda loc: rt.confirm_reply(loc, True),
     "谢谢，您的预约已确认。", "Thank you, your appointment is confirmed."),
    ("nothing-to-confirm", lambda loc: rt.confirm_reply(loc, False),
     "谢谢，已收到您的回复。", "Thank you, we have received your reply."),
    ("reschedule", lambda loc: rt.reschedule_reply(loc, "16:00"),
     "已收到您的改期请求。研究护士将在16:00前给您打电话。",
     "We have received your request to change the date. A study nurse will call you by 16:00."),
    ("opt-out", lambda loc: rt.opt_out_reply(loc),
     f"您已退订，将不再收到我们的短信。回复START可恢复。门诊电话：{CLINIC}。",
     f"You will receive no more messages from us. Reply START to receive them again. "
     f"Clinic: {CLINIC}."),
    ("opt-in", lambda loc: rt.opt_in_reply(loc),
     f"短信已恢复。随时回复TD可退订。门诊电话：{CLINIC}。",
     f"Messages are on again. Reply STOP at any time to stop them. Clinic: {CLINIC}."),
    ("help", lambda loc: rt.help_reply(loc),
     f"回复1确认，回复2改期，也可直接告诉我们您的感受。回复TD退订。门诊电话：{CLINIC}。紧急情况请拨打120。",
     "Reply 1 to confirm, 2 to change the date, or tell us how you feel. Reply STOP to stop "
     f"messages. Clinic: {CLINIC}. Emergency: call 120."),
    ("unknown", lambda loc: rt.unknown_reply(loc),
     "谢谢，研究护士会查看您的短信。回复“帮助”查看回复方式。如感到非常不适，请拨打120。",
     "Thank you, a study nurse will read your message. Reply HELP for the reply codes. "
     "If you feel very unwell, call 120."),
    ("failure", lambda loc: rt.failure_reply(loc),
     "已收到您的短信，研究护士会查看。如感到非常不适，请立即拨打120或去最近的医院急诊。",
     "We have received your message and a study nurse will read it. If you feel very unwell, "
     "call 120 or go to the nearest emergency department now."),
    ("unknown-sender-emergency", lambda loc: rt.unknown_sender_reply(loc, True),
     "如遇紧急情况，请立即拨打120或去最近的医院急诊。",
     "If this is an emergency, call 120 or go to the nearest emergency department now."),
    ("unknown-sender", lambda loc: rt.unknown_sender_reply(loc, False),
     "本号码无法回复短信。紧急情况请拨打120。",
     "This number cannot answer messages. In an emergency, call 120."),
    ("red-page", lambda loc: rt.red_page(loc, 7, "JSCH-001", "39.2 °C"),
     "Cadence红色警报#7：JSCH-001报告39.2 °C。已告知患者拨打120。请立即处理并在Cadence中确认。",
     "Cadence RED #7: JSCH-001 reports 39.2 °C. Patient told to call 120. Please act and "
     "acknowledge in Cadence."),
    ("red-escalation", lambda loc: rt.red_escalation_page(loc, 7, "JSCH-001", "39.2 °C", 15),
     "Cadence升级#7：JSCH-001的红色警报（39.2 °C）15分钟未确认。请立即处理并在Cadence中确认。",
     "Cadence ESCALATION #7: red alert for JSCH-001 (39.2 °C) not acknowledged after 15 min. "
     "Please act now and acknowledge in Cadence."),
    ("amber-page", lambda loc: rt.amber_reminder_page(loc, 7, "JSCH-001", "38.1 °C"),
     "Cadence提醒#7：JSCH-001的橙色警报（38.1 °C）尚未确认。请今天在Cadence中处理。",
     "Cadence reminder #7: amber alert for JSCH-001 (38.1 °C) is not acknowledged. Please "
     "review it in Cadence today."),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "zh", "en"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_each_answer_and_page_reads_exactly(
    app_ctx: Flask, name: str, make, zh: str, en: str
) -> None:
    assert make("zh") == zh
    assert make("en") == en


def test_when_text_says_today_tomorrow_or_the_date() -> None:
    now = datetime(2026, 3, 10, 9, tzinfo=SHANGHAI)
    today = datetime(2026, 3, 10, 16, tzinfo=SHANGHAI)
    tomorrow = datetime(2026, 3, 11, 9, 30, tzinfo=SHANGHAI)
    later = datetime(2026, 3, 13, 10, tzinfo=SHANGHAI)

    assert rt.when_text(today, now, SHANGHAI, "en") == "today at 16:00"
    assert rt.when_text(tomorrow, now, SHANGHAI, "en") == "tomorrow at 09:30"
    assert rt.when_text(later, now, SHANGHAI, "en") == "Fri, Mar 13 at 10:00"
