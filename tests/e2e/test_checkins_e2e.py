"""Check-ins in a real browser: a patient answers on a phone-sized page without JavaScript, the
red answer tops the nurse's inbox, who acknowledges and resolves it; the trend chart renders.
Screenshots go to test-output/screenshots/checkin-*.png."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from app.clock import today_in
from app.extensions import db
from app.models import Alert, CalendarEvent, CheckinSession, OnCallShift, utcnow
from app.services.conversations.checkins.links import make_token
from app.services.conversations.checkins.schedule import start_checkin
from app.services.conversations.checkins.sessions import record_answers, session_items
from tests.checkins.conftest import SHANGHAI, enrol, full_answers

pytestmark = pytest.mark.e2e
PHONE = {"width": 390, "height": 844}


def _open_checkin(study_id: str, locale: str = "zh"):
    patient = enrol(study_id, locale=locale, pd1="camrelizumab", chemo="irinotecan")
    event = db.session.scalars(
        select(CalendarEvent)
        .where(CalendarEvent.patient_id == patient.id, CalendarEvent.kind == "checkin")
        .order_by(CalendarEvent.date)
    ).first()
    session = start_checkin(event, now=utcnow(), actor="test")
    assert session is not None
    db.session.commit()
    return patient, session


def _rota() -> None:
    db.session.add(OnCallShift(role="clinician", name="Dr Zhang", phone_e164="+8613900000001",
                               weekdays="mon,tue,wed,thu,fri,sat,sun", start_time=time(8),
                               end_time=time(8), priority=0, locale="zh", active=True))  # fmt: skip
    db.session.commit()


def _answer_all_zero_except(phone: Page, session: CheckinSession, chosen: dict[str, int]) -> None:
    """Click the answers of every question on the page: the chosen ones, else 0."""
    for item in session_items(session):
        first = item.questions[0]
        value = chosen.get(first.code, 0)
        phone.click(f"label[for=a-{first.code}-{value}]")
        for follow in item.questions[1:]:
            if value == 0:
                expect(phone.locator(f"#q-{follow.code}")).to_be_hidden()
                break
            expect(phone.locator(f"#q-{follow.code}")).to_be_visible()  # CSS branching, no JS
            value = chosen.get(follow.code, 0)
            phone.click(f"label[for=a-{follow.code}-{value}]")


def test_patient_answers_on_a_phone_and_the_nurse_works_the_red_alert(
    app_ctx: Flask, browser: Browser, server: str, page: Page, screenshots: Path
) -> None:
    _rota()
    patient, session = _open_checkin("JSCH-201")
    phone_context = browser.new_context(viewport=PHONE, java_script_enabled=False,
                                        base_url=server, locale="zh-CN")  # fmt: skip
    phone = phone_context.new_page()
    phone.goto("/c/" + make_token(session.id, patient.id))
    expect(phone.locator("h1")).to_contain_text("症状随访")
    assert phone.locator("body").bounding_box()["width"] <= PHONE["width"]  # no sideways scroll
    phone.screenshot(path=str(screenshots / "checkin-phone-form-zh.png"))

    _answer_all_zero_except(phone, session, {"N": 2, "NS": 1, "S": 4})
    phone.locator("#item-N").screenshot(path=str(screenshots / "checkin-phone-branching.png"))
    phone.click("button.send")
    banner = phone.locator("#emergency")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("120")
    assert banner.bounding_box()["y"] < 120  # the first thing on the screen
    expect(phone.locator("#done")).to_be_visible()
    phone.screenshot(path=str(screenshots / "checkin-phone-red-zh.png"))
    phone_context.close()

    row = db.session.get(CheckinSession, session.id, populate_existing=True)
    assert (row.status, row.priority, row.channel) == ("answered", "red", "web")

    page.goto("/inbox/")
    first = page.locator(".inbox-item").first
    expect(first).to_have_attribute("data-category", "red")
    expect(first).to_contain_text("JSCH-201")
    expect(first).to_contain_text("Difficulty swallowing")
    page.screenshot(path=str(screenshots / "checkin-inbox-red.png"), full_page=True)
    first.locator("button", has_text="Acknowledge").click()
    expect(page.locator(".flash.success")).to_contain_text("acknowledged")
    first = page.locator(".inbox-item").first
    expect(first).to_contain_text("acknowledged by nurse.e2e")
    first.locator("summary", has_text="Resolve").click()
    first.locator("select[name=action]").select_option("advised_emergency")
    first.locator("textarea[name=note]").fill("Called: patient on the way to the ED with family.")
    first.locator("form button", has_text="Resolve").click()
    expect(page.locator(".flash.success")).to_contain_text("resolved")
    alert = db.session.scalars(select(Alert).where(Alert.level == "red")).one()
    db.session.refresh(alert)
    assert (alert.status, alert.resolution_action) == ("resolved", "advised_emergency")
    expect(page.locator(f"#item-{alert.id}")).to_have_count(0)
    page.screenshot(path=str(screenshots / "checkin-inbox-after.png"), full_page=True)


def test_an_english_patient_sees_english_and_a_partial_answer_is_kept(
    app_ctx: Flask, browser: Browser, server: str, screenshots: Path
) -> None:
    patient, session = _open_checkin("JSCH-202", locale="en")
    context = browser.new_context(viewport=PHONE, java_script_enabled=False, base_url=server)
    phone = context.new_page()
    phone.goto("/c/" + make_token(session.id, patient.id))
    expect(phone.locator("h1")).to_contain_text("Symptom check-in")
    phone.click("label[for=a-F-0]")
    phone.click("label[for=a-HB-0]")
    phone.click("button.send")
    expect(phone.locator("#missing-note")).to_be_visible()
    expect(phone.locator("#q-F")).to_contain_text("Your answer:")
    phone.screenshot(path=str(screenshots / "checkin-phone-partial-en.png"), full_page=False)
    context.close()
    row = db.session.get(CheckinSession, session.id, populate_existing=True)
    assert row.answers == {"F": 0, "HB": 0} and row.status == "partial"


def test_the_trend_chart_renders_on_the_patient_page(
    app_ctx: Flask, page: Page, screenshots: Path
) -> None:
    today = today_in(SHANGHAI)
    patient = enrol("JSCH-203", locale="en", start=today - timedelta(days=40),
                    today=today - timedelta(days=42))  # fmt: skip
    events = db.session.scalars(
        select(CalendarEvent)
        .where(CalendarEvent.patient_id == patient.id, CalendarEvent.kind == "checkin")
        .order_by(CalendarEvent.date)
    ).all()
    for index, (swallow, fatigue) in enumerate(((0, 1), (1, 2), (2, 2), (3, 1))):
        sent = datetime.combine(events[index].date, time(10), tzinfo=SHANGHAI)
        session = start_checkin(events[index], now=sent, actor="test")
        assert session is not None
        answers = full_answers(session_items(session), {"S": swallow, "E": fatigue, "EI": 1})
        record_answers(session.id, answers, channel="web", now=session.sent_at, actor="test")
        db.session.commit()
    page.goto(f"/patients/{patient.study_id}#symptoms")
    chart = page.locator("#trend-chart svg")
    expect(chart).to_be_visible()
    expect(page.locator("#trend-chart")).to_contain_text("Difficulty swallowing")
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150
    page.locator("#symptoms").screenshot(path=str(screenshots / "checkin-trend-chart.png"))


def test_the_demo_tells_the_story(app_ctx: Flask, page: Page, screenshots: Path) -> None:
    from app.services.demo import load_demo_checkins, load_demo_data

    today = today_in(SHANGHAI)
    load_demo_data(today=today)
    load_demo_checkins(today=today)
    page.goto("/")
    expect(page.locator("#today-inbox-red .n")).to_have_text("1")
    page.goto("/inbox/")
    first = page.locator(".inbox-item").first
    expect(first).to_have_attribute("data-category", "red")
    expect(first).to_contain_text("JSCH-004")
    page.screenshot(path=str(screenshots / "checkin-demo-inbox.png"), full_page=True)
    page.goto("/patients/JSCH-004#symptoms")
    expect(page.locator("#trend-chart")).to_contain_text("Radiotherapy")
    page.locator("#symptoms").screenshot(path=str(screenshots / "checkin-demo-trend-salvage.png"))
    page.goto("/patients/JSCH-004/conversation")
    expect(page.locator("h1")).to_contain_text("Conversation")
    expect(page.locator("#conversation")).to_contain_text("S4")  # the patient's SMS answers
    expect(page.locator("#conversation")).to_contain_text("120")  # the emergency reply
    page.screenshot(path=str(screenshots / "checkin-demo-conversation.png"), full_page=True)
    page.goto("/metrics/?days=all")
    expect(page.locator("#alerts-chart svg")).to_be_visible()
    page.screenshot(path=str(screenshots / "checkin-demo-metrics.png"), full_page=True)
