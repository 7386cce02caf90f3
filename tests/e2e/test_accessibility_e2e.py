"""Every nurse page with the demo data, in Chinese and English, at 1366x768: axe-core (injected by
Playwright from tests/e2e/node_modules, `npm ci` in tests/e2e) finds no serious or critical
WCAG 2.1 A/AA violation, and a screenshot of each goes to test-output/screenshots/ (issue 13 §3).
The patient's check-in page is checked at 390x844 (a phone)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from app.extensions import db
from app.models import CalendarEvent, CheckinSession, Contact, Patient, utcnow
from app.services.conversations.checkins.links import make_token
from app.services.conversations.checkins.schedule import start_checkin
from app.services.demo import ensure_demo_rota, load_demo_checkins, load_demo_data
from app.web.helpers import clinic_today
from tests.e2e.conftest import PASSWORD

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
NURSE_PAGES = {
    "today": "/",
    "inbox": "/inbox/",
    "inbox-resolved": "/inbox/?show=resolved",
    "patients": "/patients/",
    "patient": "/patients/JSCH-001",
    "conversation": "/patients/JSCH-001/conversation",
    "contacts": "/patients/JSCH-001/contacts/",
    "enrol": "/patients/new",
    "messages": "/messages/",
    "messages-planned": "/messages/?tab=planned",
    "month": "/calendar/month",
    "week": "/calendar/week",
    "clinic-list": "/calendar/clinic-list",
    "metrics": "/metrics/",
    "audit": "/audit/",
    "rota": "/alerts/rota",
}


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical WCAG 2.1 A/AA violations on the current page."""
    if not AXE.exists():
        pytest.fail("axe-core is missing: run 'npm ci' in tests/e2e (make test does)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> {[_node(n) for n in v['nodes'][:6]]}"
        for v in result["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def _node(node: dict) -> str:
    """Where a violation is, with the colours axe measured (for contrast)."""
    data = next((c.get("data") for c in node.get("any", []) if c.get("data")), None) or {}
    colours = (
        f" {data.get('fgColor')} on {data.get('bgColor')} = {data.get('contrastRatio')}"
        if isinstance(data, dict) and data.get("fgColor")
        else ""
    )
    return f"{node['target']}{colours}"


@pytest.fixture
def axe_page(browser: Browser, server: str, nurse_account: str) -> Iterator[Page]:
    """The signed-in nurse's page, in a context that lets Playwright inject axe-core past the
    app's Content-Security-Policy (script-src 'self'); fails on any page error."""
    context = browser.new_context(base_url=server, bypass_csp=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto("/sign-in")
    tab.fill("#username", nurse_account)
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{server}/")
    yield tab
    context.close()
    assert errors == [], errors


@pytest.fixture
def demo(app_ctx: Flask) -> None:
    """The demo patients with their check-ins and the demo rota."""
    today = clinic_today()
    load_demo_data(today=today)
    load_demo_checkins(today=today)
    ensure_demo_rota()


def test_every_nurse_page_passes_axe_in_both_languages(
    axe_page: Page, screenshots: Path, demo: None
) -> None:
    page = axe_page
    page.set_viewport_size({"width": 1366, "height": 768})
    problems: dict[str, list[str]] = {}
    pages = {**NURSE_PAGES, "contact-edit": _a_caregiver_edit_page()}
    for language in ("zh", "en"):
        page.goto("/")
        page.click(f"button[name=locale][value={language}]")
        for name, url in pages.items():
            page.goto(url)
            page.screenshot(path=str(screenshots / f"a11y-{language}-{name}.png"))
            found = serious_violations(page)
            if found:
                problems[f"{language} {url}"] = found
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


def _a_caregiver_edit_page() -> str:
    """The edit page of a demo caregiver (not the patient's own phone)."""
    contact = db.session.scalars(
        select(Contact).where(Contact.relation != "self").order_by(Contact.id)
    ).first()
    assert contact is not None, "the demo has a caregiver"
    patient = db.session.get(Patient, contact.patient_id)
    assert patient is not None
    return f"/patients/{patient.study_id}/contacts/{contact.id}/edit"


def _open_checkin() -> CheckinSession:
    """A check-in just sent (without SMS) to a Chinese demo patient, open for answers."""
    answered = select(CheckinSession.event_key).where(CheckinSession.patient_id == Patient.id)
    event = db.session.scalars(
        select(CalendarEvent)
        .join(Patient, Patient.id == CalendarEvent.patient_id)
        .where(CalendarEvent.kind == "checkin", CalendarEvent.date <= clinic_today())
        .where(Patient.locale == "zh", CalendarEvent.key.not_in(answered))
        .order_by(CalendarEvent.date.desc())
    ).first()
    assert event is not None
    session = start_checkin(event, now=utcnow(), actor="test", send=False)
    db.session.commit()
    assert session is not None
    return session


def test_the_check_in_page_passes_axe_on_a_phone(
    axe_page: Page, screenshots: Path, demo: None
) -> None:
    page = axe_page
    session = _open_checkin()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/c/{make_token(session.id, session.patient_id)}")
    page.screenshot(path=str(screenshots / "a11y-checkin-phone.png"), full_page=True)
    assert serious_violations(page) == []
