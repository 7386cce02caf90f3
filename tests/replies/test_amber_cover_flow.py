"""Amber means today, every day: escalation by the nurses' on-call cover (the Spring Festival
case), the acknowledgement the rota can keep (zh / en), the Today warning and the rota page's
day pickers and week grid with gaps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.clock import FrozenClock
from app.extensions import db
from app.models import OnCallShift, OutboxMessage, User
from app.services.alerts.escalation import escalate_due
from app.services.conversations.inbound.replies import receive
from tests.replies.conftest import CLINICIAN_PHONE, alerts, inbound_form, patient
from tests.support import csrf_token, sign_in

SH = ZoneInfo("Asia/Shanghai")
DAY_NURSE = "+8613900000010"
HOLIDAY_NURSE = "+8613900000011"


def local(m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, m, d, hh, mm, tzinfo=SH)


def shift(role: str, phone: str, weekdays: str, start: int, end: int) -> None:
    db.session.add(
        OnCallShift(
            role=role,
            name=f"{role} {phone[-2:]}",
            phone_e164=phone,
            weekdays=weekdays,
            start_time=time(start, 0),
            end_time=time(end, 0),
            priority=0,
            locale="zh",
            active=True,
        )
    )
    db.session.commit()


def working_day_rota(*, holidays: bool) -> None:
    """A clinician around the clock; a nurse on working days; a weekend (and holiday) nurse."""
    shift("clinician", CLINICIAN_PHONE, "mon,tue,wed,thu,fri,sat,sun", 8, 8)
    shift("nurse", DAY_NURSE, "mon,tue,wed,thu,fri", 8, 17)
    shift("nurse", HOLIDAY_NURSE, "sat,sun,hol" if holidays else "sat,sun", 8, 8)


def pages() -> list[OutboxMessage]:
    stmt = select(OutboxMessage).where(OutboxMessage.kind == "page").order_by(OutboxMessage.id)
    return list(db.session.scalars(stmt))


# -- escalation ----------------------------------------------------------------------------------


def test_spring_festival_amber_escalates_the_same_evening_to_the_nurse_on_call(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    working_day_rota(holidays=True)
    p = patient(locale="zh")
    saturday_18 = clock.set(local(2, 14, 18))  # the eve of the 2026 Spring Festival holiday
    result = receive(inbound_form(p.phone_e164, "今天拉了五次"), saturday_18)
    (alert,) = alerts()
    assert alert.level == "amber"
    evening = local(2, 14, 22).astimezone(UTC)  # was Tue 24 Feb 12:00 by working hours
    assert alert.next_escalation_at == evening
    assert result.reply and "研究护士将在今天22:00前给您打电话" in result.reply
    clock.set(evening - timedelta(minutes=1))
    assert escalate_due(evening - timedelta(minutes=1)).escalated == 0
    clock.set(evening)
    assert escalate_due(evening).escalated == 1
    assert [m.recipient for m in pages()] == [HOLIDAY_NURSE]
    db.session.refresh(alert)
    assert alert.next_escalation_at == local(2, 15, 2).astimezone(UTC)


def test_a_festival_day_with_only_a_working_day_nurse_falls_back_to_wall_clock(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    working_day_rota(holidays=False)
    p = patient(locale="en")
    tuesday = clock.set(local(2, 17, 10))  # Spring Festival: the working-day nurse is off
    result = receive(inbound_form(p.phone_e164, "I threw up twice"), tuesday)
    (alert,) = alerts()
    assert alert.next_escalation_at == tuesday.astimezone(UTC) + timedelta(hours=4)
    assert result.reply and "No study nurse can call you in the next 24 hours" in result.reply
    assert "will call you" not in result.reply


# -- what the patient is told --------------------------------------------------------------------


def test_with_cover_now_the_nurse_calls_today(app_ctx: Flask, clock: FrozenClock) -> None:
    working_day_rota(holidays=True)
    p = patient(locale="en")
    now = clock.set(local(3, 4, 9))
    reply = receive(inbound_form(p.phone_e164, "I threw up twice"), now).reply
    assert reply and "A study nurse will call you by today at 13:00" in reply


def test_without_cover_now_the_patient_is_told_when_and_what_to_do_meanwhile(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    working_day_rota(holidays=True)
    en = patient(locale="en")
    zh = patient("JSCH-002", locale="zh", phone="13800138002")
    now = clock.set(local(3, 4, 20))  # Wednesday 20:00: the next nurse starts at 08:00
    reply_en = receive(inbound_form(en.phone_e164, "I threw up twice"), now).reply
    reply_zh = receive(inbound_form(zh.phone_e164, "今天拉了五次"), now).reply
    assert reply_en and "No study nurse is on duty now" in reply_en
    assert "will call you by tomorrow at 12:00" in reply_en and "120" in reply_en
    assert reply_zh and "现在没有研究护士值班" in reply_zh and "明天12:00" in reply_zh


def test_no_call_is_promised_when_no_nurse_is_on_call_within_24_hours(
    app_ctx: Flask, clock: FrozenClock
) -> None:
    shift("clinician", CLINICIAN_PHONE, "mon,tue,wed,thu,fri,sat,sun", 8, 8)
    p = patient(locale="zh")
    now = clock.set(local(3, 4, 9))
    reply = receive(inbound_form(p.phone_e164, "今天拉了五次"), now).reply
    assert reply and "未来24小时内没有研究护士能给您打电话" in reply
    assert "将在" not in reply and "120" in reply


# -- the Today page ------------------------------------------------------------------------------


def test_today_warns_when_tomorrow_has_no_amber_cover(
    client: FlaskClient, staff: dict, clock: FrozenClock
) -> None:
    shift("nurse", DAY_NURSE, "mon,tue,wed,thu,fri", 8, 17)
    clock.set(local(3, 4, 9))  # Wednesday: Thursday is covered
    sign_in(client, staff["admin"])
    assert 'id="cover-warnings"' not in client.get("/").get_data(as_text=True)
    clock.set(local(3, 6, 9))  # Friday: nobody on Saturday
    sign_in(client, staff["admin"])
    html = client.get("/").get_data(as_text=True)
    assert 'id="cover-warnings"' in html and "No nurse is on call tomorrow" in html


def test_today_warns_about_public_holidays_without_amber_cover(
    client: FlaskClient, staff: dict, clock: FrozenClock
) -> None:
    working_day_rota(holidays=False)
    clock.set(local(2, 12, 9))  # Thursday before the Spring Festival
    sign_in(client, staff["nurse"])  # Chinese
    html = client.get("/").get_data(as_text=True)
    warnings = re.findall(r"法定节假日(\d+月\d+日)", html)
    # Fri 13 (tomorrow) has its nurse; Sun 15 is a weekend day; Mon 16 only has the end of
    # Sunday's night shift (until 08:00), which does not cover the day.
    assert warnings == ["2月16日", "2月17日", "2月18日", "2月19日"]
    shift("nurse", "+8613900000012", "hol", 8, 8)
    assert 'id="cover-warnings"' not in client.get("/").get_data(as_text=True)


# -- the rota page -------------------------------------------------------------------------------


def test_rota_form_has_day_pickers_in_english_and_saves_ticked_days(
    client: FlaskClient, staff: dict
) -> None:
    sign_in(client, staff["admin"])
    html = client.get("/alerts/rota").get_data(as_text=True)
    assert 'type="checkbox" name="days" value="5"' in html and "Sat" in html
    assert "Public holidays" in html
    form = {
        "csrf_token": csrf_token(client, "/alerts/rota"),
        "role": "nurse",
        "name": "Nurse Wang",
        "phone": "13900000011",
        "days": ["5", "6", "hol"],
        "hours": "08:00-08:00",
        "priority": "0",
        "locale": "zh",
    }
    assert client.post("/alerts/rota", data=form).status_code == 302
    row = db.session.scalar(select(OnCallShift))
    assert row is not None and row.weekdays == "sat,sun,hol"
    html = client.get("/alerts/rota").get_data(as_text=True)
    assert "Sat, Sun, public holidays" in html
    none_ticked = {k: v for k, v in form.items() if k != "days"}
    bad = client.post("/alerts/rota", data={**none_ticked, "days": []}, follow_redirects=True)
    assert "was not added" in bad.get_data(as_text=True)


def test_rota_page_in_chinese_shows_day_names_and_the_holiday_gaps(
    client: FlaskClient, staff: dict, clock: FrozenClock
) -> None:
    admin = db.session.scalar(select(User).where(User.username == staff["admin"]))
    assert admin is not None
    admin.locale = "zh"
    db.session.commit()
    working_day_rota(holidays=False)
    sign_in(client, staff["admin"])
    html = client.get("/alerts/rota?week=2026-02-16").get_data(as_text=True)
    assert 'name="days" value="5"> 周六' in html and "法定节假日" in html
    assert "周一、周二、周三、周四、周五" in html
    grid = html[
        html.index('id="cover-grid"') : html.index("</table>", html.index('id="cover-grid"'))
    ]
    rows = re.findall(r"<tr><th class=\"mono\">(\d\d):00</th>(.*?)</tr>", grid, re.S)
    ten = dict(rows)["10"]
    cells = re.findall(r'<td class="(gap|covered)"', ten)
    # Mon 16 - Fri 20 are public holidays: the working-day nurse is off; Sat, Sun are covered
    assert cells == ["gap"] * 5 + ["covered"] * 2
    assert grid.count("chip flag warn") == 5
