"""The triage inbox in pages: SQL pages in urgency-then-age order, counts over every item, filters
and search kept across pages, handling an item sends the nurse back to the same page."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models import Alert
from app.services.conversations import inbox
from tests.checkins.conftest import ENROLLED_ON, days, enrol, local, post
from tests.checkins.test_inbox import raise_item

T0 = local(ENROLLED_ON, 9)
AMBER = 8
NOTES = inbox.PER_PAGE + 3  # alone more than one page


@pytest.fixture
def many_items(app_ctx: Flask) -> list[Alert]:
    """AMBER amber items and NOTES green notes, raised oldest first; in inbox order."""
    patient = enrol()
    ambers = [raise_item(patient, "symptom", "amber", T0 + days(i / 100), f"amber-{i:02d}")
              for i in range(AMBER)]  # fmt: skip
    notes = [raise_item(patient, "symptom", "green", T0 + days(i / 100), f"note-{i:02d}")
             for i in range(NOTES)]  # fmt: skip
    return ambers + notes


def item_ids(html: str) -> list[int]:
    """The ids of the items listed on an inbox page, in page order."""
    return [int(n) for n in re.findall(r'<li class="inbox-item[^"]*" id="item-(\d+)"', html)]


def test_a_page_of_items_comes_from_sql_in_order(many_items: list[Alert]) -> None:
    first = inbox.open_items_page(page=1, per_page=5)
    second = inbox.open_items_page(page=2, per_page=5)
    assert [i.alert.id for i in first.items] == [a.id for a in many_items[:5]]
    assert [i.alert.id for i in second.items] == [a.id for a in many_items[5:10]]
    assert (first.total, first.pages) == (AMBER + NOTES, -(-(AMBER + NOTES) // 5))
    last = inbox.open_items_page(page=999, per_page=5)  # clamped to the last page
    assert last.page == last.pages and last.items[-1].alert.id == many_items[-1].id


def test_page_two_shows_the_next_items_and_the_counts_stay_right(
    many_items: list[Alert], nurse: FlaskClient
) -> None:
    one = nurse.get("/inbox/").get_data(as_text=True)
    two = nurse.get("/inbox/?page=2").get_data(as_text=True)
    assert item_ids(one) == [a.id for a in many_items[: inbox.PER_PAGE]]
    assert item_ids(two) == [a.id for a in many_items[inbox.PER_PAGE :]]
    for html in (one, two):
        assert re.search(r'id="count-amber"[^>]*>[^<]*<span class="n">8</span>', html)
        assert re.search(rf'id="count-note"[^>]*>[^<]*<span class="n">{NOTES}</span>', html)
        assert f"of {AMBER + NOTES}" in html
    assert 'rel="next"' in one and "page=2" in one
    assert 'rel="prev"' in two and 'rel="next"' not in two


def test_filters_and_search_are_kept_across_pages(
    many_items: list[Alert], nurse: FlaskClient
) -> None:
    notes = many_items[AMBER:]
    one = nurse.get("/inbox/?category=note").get_data(as_text=True)
    assert item_ids(one) == [a.id for a in notes[: inbox.PER_PAGE]]
    link = re.search(r'href="([^"]*)" rel="next"', one)
    assert link and "category=note" in link.group(1)
    two = nurse.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert item_ids(two) == [a.id for a in notes[inbox.PER_PAGE :]]

    found = nurse.get("/inbox/?q=NOTE-0").get_data(as_text=True)  # any case, in SQL
    assert item_ids(found) == [a.id for a in notes[:10]]
    assert nurse.get("/inbox/?q=note-0&page=2").status_code == 200  # one page: clamped


def test_handling_an_item_on_page_two_returns_to_page_two(
    many_items: list[Alert], nurse: FlaskClient
) -> None:
    target = many_items[-1]
    response = post(nurse, f"/inbox/{target.id}/acknowledge?page=2")
    assert response.status_code == 302 and "page=2" in response.headers["Location"]
    assert db.session.get(Alert, target.id).status == "acknowledged"
    html = nurse.get("/inbox/?page=2").get_data(as_text=True)
    assert f"/inbox/{target.id}/assign?" in html and "page=2" in html
