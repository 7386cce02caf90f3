"""The calendar's legend and filters in the browser (zh and en): axe-core finds no serious or
critical violation, the filters work by mouse and keyboard, week titles are whole; bulk work
shows its progress while the jobs side runs it (issue 13)."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from app.models import utcnow
from app.services import bulk
from app.web.helpers import clinic_today
from tests.e2e.test_accessibility_e2e import (  # noqa: F401  (fixtures used by name)
    axe_page,
    demo,
    serious_violations,
)

CALENDAR_PAGES = {
    "month-filtered": "/calendar/month?patient=JSCH-001&kind=infusion&kind=labs",
    "week-legend": "/calendar/week",
    "day-legend": "/calendar/day/{today}",
}


def _switch(page: Page, language: str) -> None:
    page.goto("/")
    page.click(f"button[name=locale][value={language}]")


def test_the_calendar_legend_and_filters_pass_axe_in_both_languages(
    axe_page: Page,  # noqa: F811
    screenshots: Path,
    demo: None,  # noqa: F811
) -> None:
    page = axe_page
    page.set_viewport_size({"width": 1366, "height": 768})
    today = clinic_today().isoformat()
    problems: dict[str, list[str]] = {}
    for language in ("zh", "en"):
        _switch(page, language)
        for name, url in CALENDAR_PAGES.items():
            page.goto(url.format(today=today))
            expect(page.locator("#calendar-legend")).to_be_visible()
            page.screenshot(
                path=str(screenshots / f"calendar-{language}-{name}.png"), full_page=True
            )
            found = serious_violations(page)
            if found:
                problems[f"{language} {url}"] = found
    assert problems == {}, "\n".join(f"{k}: {v}" for k, v in problems.items())


def test_filters_by_kind_and_patient_from_the_keyboard(
    axe_page: Page,  # noqa: F811
    demo: None,  # noqa: F811
) -> None:
    page = axe_page
    _switch(page, "en")
    page.goto("/calendar/month")
    infusion = page.locator("#f-kinds input[value=infusion]")
    infusion.focus()
    page.keyboard.press("Space")  # tick it from the keyboard
    page.get_by_label("Patient (study id)").fill("jsch-002")
    page.get_by_label("Patient (study id)").press("Enter")
    page.wait_for_url(re.compile(r"patient=jsch-002"))
    assert re.search(r"kind=infusion", page.url)
    expect(page.locator("#patient-filter-note")).to_contain_text("JSCH-002")
    expect(page.locator("#f-kinds input[value=infusion]")).to_be_checked()
    # Only infusions are counted: every kind count in the grid is an infusion.
    kinds = page.locator("#month-grid .kcount").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds and set(kinds) == {"infusion"}
    # The week view keeps the filter and shows whole titles (nothing cut off).
    page.click("text=Week")
    assert "patient=JSCH-002" in page.url
    cut = page.locator(".wlist .t").evaluate_all(
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).length"
    )
    assert cut == 0


def test_re_planning_every_patient_shows_progress_until_done(
    axe_page: Page,  # noqa: F811
    screenshots: Path,
    demo: None,  # noqa: F811
) -> None:
    page = axe_page
    _switch(page, "zh")
    page.goto("/messages/")
    page.click("#replan-all-form button")
    page.wait_for_url(re.compile(r"/bulk/\d+$"))
    expect(page.locator("#bulk-status")).to_contain_text("等待开始")
    assert serious_violations(page) == []
    # The jobs side runs it now; the page, polling, follows it to the end without a reload by hand.
    assert bulk.run_pending(utcnow, tz=ZoneInfo("Asia/Shanghai")) == 1
    expect(page.locator("#bulk-status")).to_contain_text("已完成", timeout=15000)
    expect(page.locator("#bulk-summary")).to_be_visible()
    done = page.locator('[data-field="done"]').inner_text()
    total = page.locator('[data-field="total"]').inner_text()
    assert done == total and int(total) > 0
    page.screenshot(path=str(screenshots / "bulk-replan-zh.png"))
