"""The message log counts at most LOG_COUNT_CAP messages and then says "10,000+"."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from app.extensions import db
from app.models import OutboxMessage
from app.services.messaging import outbox
from tests.integration.sms_support import add_due_messages

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_count_stops_at_the_cap_and_the_pages_still_go_on(
    app_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_due_messages(5)
    monkeypatch.setattr(outbox, "LOG_COUNT_CAP", 3)
    everything = outbox.MessageFilter()

    first = outbox.message_log(everything, tz=SHANGHAI, page=1, per_page=2)
    assert (first.total, first.capped, first.pages, first.has_next) == (3, True, 2, True)
    second = outbox.message_log(everything, tz=SHANGHAI, page=2, per_page=2)
    assert (second.total, second.capped, second.has_next, len(second.items)) == (4, True, True, 2)
    last = outbox.message_log(everything, tz=SHANGHAI, page=3, per_page=2)
    assert (last.total, last.capped, last.has_next, len(last.items)) == (5, False, False, 1)
    ids = [m.id for page in (first, second, last) for m in page.items]
    assert len(set(ids)) == 5


def _over_the_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """More messages than a page, a cap of 3: counted up to one page and one more."""
    add_due_messages(outbox.PAGE_SIZE + 2)
    monkeypatch.setattr(outbox, "LOG_COUNT_CAP", 3)
    return outbox.PAGE_SIZE


def test_the_pager_shows_a_capped_count_with_a_plus(
    english_nurse: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = _over_the_cap(monkeypatch)
    english = english_nurse.get("/messages/").get_data(as_text=True)
    assert f"1–{shown} of {shown}+" in english and "Page 1 of 1+" in english
    assert 'rel="next"' in english


def test_the_capped_count_in_chinese(nurse: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _over_the_cap(monkeypatch)
    chinese = nurse.get("/messages/").get_data(as_text=True)
    assert f"共 {shown}+ 条" in chinese and "第 1 / 1+ 页" in chinese


def test_below_the_cap_the_count_is_exact(english_nurse: FlaskClient) -> None:
    add_due_messages(3)
    english = english_nurse.get("/messages/").get_data(as_text=True)
    assert "1–3 of 3" in english and "of 3+" not in english


def test_the_summary_counts_each_status_up_to_the_cap(
    english_nurse: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = add_due_messages(6)
    db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id.in_(ids[:2])).values(status="delivered")
    )
    db.session.execute(
        update(OutboxMessage).where(OutboxMessage.id == ids[2]).values(status="failed")
    )
    db.session.commit()  # 3 planned, 2 delivered, 1 failed
    summary = outbox.log_summary(cap=2)
    assert (str(summary.planned), str(summary.sent), str(summary.problems)) == ("2+", "2", "1")
    assert summary.by_status["delivered"] == outbox.CappedCount(2, False)
    exact = outbox.log_summary()
    assert (str(exact.planned), str(exact.sent), str(exact.problems)) == ("3", "2", "1")

    monkeypatch.setattr(outbox, "LOG_COUNT_CAP", 2)
    page = english_nurse.get("/messages/?tab=attention").get_data(as_text=True)
    assert '<div class="n">2+</div>' in page and "(2+)</option>" in page
