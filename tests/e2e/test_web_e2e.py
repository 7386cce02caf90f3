"""The nurses' web UI in a real browser: sign in, enrol, calendar, reschedule with cascade and
audit, language switch, stored XSS kept inert; screenshots of the main pages in both languages."""

from __future__ import annotations

import re
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, CalendarEvent, Patient
from app.services.demo import load_demo_data
from app.web.helpers import clinic_today

pytestmark = pytest.mark.e2e


def _enrol_through_the_form(
    page: Page, study_id: str, initials: str = "ZS", locale: str = "zh"
) -> None:
    today = clinic_today()
    page.click("text=Enrol a patient")
    page.fill("#study_id", study_id)
    page.fill("#initials", initials)
    page.fill("#phone", f"139 1234 {zlib.crc32(study_id.encode()) % 10000:04d}")  # one per patient
    page.select_option("#choice_pd1", "camrelizumab")
    page.select_option("#choice_chemo", "docetaxel")
    page.fill("#start_date", (today + timedelta(days=7)).isoformat())
    page.fill("#recurrence_date", (today - timedelta(days=60)).isoformat())
    page.check("#sms_consent")
    page.check("#health_consent")
    page.fill("#sms_consent_date", today.isoformat())
    page.check(f"input[name=locale][value={locale}]")
    page.click("text=Enrol and create the calendar")
    page.wait_for_url(f"**/patients/{study_id}")


def test_sign_in_enrol_and_open_the_calendar(page: Page, screenshots: Path) -> None:
    expect(page.locator("h1")).to_have_text("Today")
    page.click("nav.mainnav >> text=Patients")
    _enrol_through_the_form(page, "JSCH-090")
    expect(page.locator(".flash.success")).to_contain_text("JSCH-090 enrolled")
    expect(page.locator("#phase-induction")).to_be_visible()
    page.screenshot(path=str(screenshots / "en-patient.png"), full_page=False)
    infusion = db.session.scalar(
        select(CalendarEvent.date).where(CalendarEvent.key == "induction.c1.infusion")
    )
    page.click("nav.mainnav >> text=Calendar")
    page.goto(f"/calendar/month?month={infusion:%Y-%m}")
    cell = page.locator(f'td[data-day="{infusion.isoformat()}"]')
    expect(cell.locator(".tot")).to_have_text(re.compile(r"\d+"))
    page.screenshot(path=str(screenshots / "en-calendar-month.png"), full_page=True)
    cell.locator("a").click()
    expect(page.locator("#day-events")).to_contain_text("JSCH-090")
    page.click(".segmented >> text=Week")
    expect(page.locator("#week-grid")).to_contain_text("JSCH-090")
    page.screenshot(path=str(screenshots / "en-calendar-week.png"), full_page=True)


def test_enrolment_errors_are_shown_and_nothing_is_saved(page: Page) -> None:
    page.goto("/patients/new")
    page.fill("#study_id", "JSCH-091")
    page.fill("#initials", "AB")
    page.fill("#phone", "12345")
    page.click("text=Enrol and create the calendar")
    expect(page.locator("#phone-err")).to_contain_text("This number is not valid")
    expect(page.locator("#sms_consent-err, .field.has-error").first).to_be_visible()
    assert db.session.scalar(select(Patient.id)) is None


def test_reschedule_a_cycle_shows_the_cascade_then_audits(page: Page, screenshots: Path) -> None:
    _enrol_through_the_form_via(page, "JSCH-092")
    event = db.session.scalars(
        select(CalendarEvent).where(CalendarEvent.key == "induction.c2.infusion")
    ).one()
    old_date, c3_before = event.date, _date_of("induction.c3.infusion")
    page.goto("/patients/JSCH-092/events/induction.c2.infusion")
    page.fill("#reason", "Patient has a fever; delay one week")
    page.fill("#new_date", (old_date + timedelta(days=7)).isoformat())
    page.locator("#new_date").dispatch_event("change")
    preview = page.locator("#cascade-preview")
    expect(preview).to_contain_text("Cycle 2")
    expect(preview).to_contain_text("later events move")
    expect(preview).to_contain_text("+7 days")
    page.screenshot(path=str(screenshots / "en-reschedule-preview.png"), full_page=True)
    assert _date_of("induction.c2.infusion") == old_date  # nothing saved by the preview
    page.click("#confirm-reschedule")
    page.wait_for_url(re.compile(r".*/patients/JSCH-092#ev-\d+"))
    expect(page.locator(".flash.success")).to_contain_text("Rescheduled.")
    assert _date_of("induction.c2.infusion") == old_date + timedelta(days=7)
    assert _date_of("induction.c3.infusion") > c3_before
    page.goto("/audit/?patient=JSCH-092")
    row = page.locator("#audit tbody tr").first
    expect(row).to_contain_text("Rescheduled")
    expect(row).to_contain_text("Patient has a fever; delay one week")
    expect(row).to_contain_text("nurse.e2e")  # the actor by name, not as a code
    page.screenshot(path=str(screenshots / "en-audit.png"), full_page=False)
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "calendar.reschedule")
    ).one()
    assert entry.reason == "Patient has a fever; delay one week"


def test_switch_language_to_chinese_and_back(page: Page, screenshots: Path) -> None:
    page.click("button[name=locale][value=zh]")
    expect(page.locator("nav.mainnav")).to_contain_text("患者")
    expect(page.locator("h1")).to_have_text("今日")
    page.click("nav.mainnav >> text=患者")
    expect(page.locator("h1")).to_have_text("患者")
    page.click("button[name=locale][value=en]")
    expect(page.locator("h1")).to_have_text("Patients")
    expect(page.locator("nav.mainnav")).to_contain_text("Calendar")


def test_stored_xss_is_inert_in_the_browser(page: Page, app_ctx: Flask) -> None:
    _enrol_through_the_form_via(page, "JSCH-093")
    patient = db.session.scalars(select(Patient).where(Patient.study_id == "JSCH-093")).one()
    patient.initials = "<b>X</b>"  # a patient field written by another path (import, SQL)
    db.session.commit()
    payload = "<img src=x onerror=\"window.__xss='reason'\"><script>window.__xss='script'</script>"
    page.goto("/patients/JSCH-093/events/induction.c2.infusion")
    page.fill("#reason", payload)
    page.fill("#new_date", (_date_of("induction.c2.infusion") + timedelta(days=1)).isoformat())
    page.locator("#new_date").dispatch_event("change")
    page.click("#confirm-reschedule")
    page.wait_for_url(re.compile(r".*/patients/JSCH-093.*"))
    for url in ("/patients/JSCH-093", "/audit/?patient=JSCH-093", "/patients/",
                "/patients/JSCH-093/events/induction.c2.infusion"):  # fmt: skip
        page.goto(url)
        assert page.evaluate("window.__xss") is None, url
        assert page.locator("img[src=x]").count() == 0, url
        assert page.locator("b:text-is('X')").count() == 0, url
    page.goto("/patients/JSCH-093")
    expect(page.locator("#history")).to_contain_text("<script>window.__xss='script'</script>")
    expect(page.locator(".initials")).to_have_text("<b>X</b>")


def test_screenshots_of_the_main_pages(page: Page, screenshots: Path) -> None:
    today = clinic_today()
    load_demo_data(today=today)
    pages = {
        "today": "/",
        "patients": "/patients/",
        "patient": "/patients/JSCH-004",
        "enrol": "/patients/new",
        "month": "/calendar/month",
        "week": "/calendar/week",
        "audit": "/audit/",
        "print": "/patients/JSCH-004/print",
    }
    for language in ("en", "zh"):
        page.goto("/")
        page.click(f"button[name=locale][value={language}]")
        for name, url in pages.items():
            page.goto(url)
            expect(page.locator("body")).not_to_contain_text("Traceback")
            page.screenshot(path=str(screenshots / f"{language}-{name}.png"), full_page=False)
    page.context.clear_cookies()
    page.goto("/sign-in")
    page.screenshot(path=str(screenshots / "sign-in.png"), full_page=False)
    assert len(list(screenshots.glob("zh-*.png"))) >= len(pages)


@pytest.mark.parametrize(
    ("locale", "title"), [("zh", "我的治疗日历"), ("en", "My treatment calendar")]
)
def test_printable_calendar_prints_on_one_a4_page(page: Page, screenshots: Path, locale: str,
                                                  title: str) -> None:  # fmt: skip
    study_id = f"JSCH-P{locale.upper()}"
    page.goto("/")
    _enrol_through_the_form(page, study_id, locale=locale)
    page.goto(f"/patients/{study_id}/print?weeks=26")
    expect(page.locator("h1")).to_have_text(title)  # the patient's language
    page.emulate_media(media="print")
    expect(page.locator(".print-toolbar")).to_be_hidden()
    pdf = page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
    (screenshots / f"print-{locale}.pdf").write_bytes(pdf)
    page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    page.screenshot(path=str(screenshots / f"print-{locale}.png"), full_page=True)
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1
    assert page.locator(".sheet tbody tr").count() >= 15


def _enrol_through_the_form_via(page: Page, study_id: str) -> None:
    page.goto("/")
    _enrol_through_the_form(page, study_id)


def _date_of(key: str):
    db.session.expire_all()
    return db.session.scalar(select(CalendarEvent.date).where(CalendarEvent.key == key))
