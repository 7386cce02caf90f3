"""Provider frequency limits are planned for at dispatch, on each provider's fake (issue 12).

Routine messages to one number wait (back to planned, with the reason in their history) instead
of being refused by the provider; a red emergency reply to the same number goes at once and is
accepted, because routine messages leave it a reserve of the daily allowance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import insert, select

from app.clock import utcnow
from app.configuration import frequency_problems
from app.domain.sms_limits import FrequencyLimits
from app.extensions import db
from app.models import OutboxMessage, OutboxStatusChange
from app.services.messaging.dispatch import Dispatcher
from app.services.messaging.frequency import limits_from_config
from app.services.shared import reply_texts as rt
from tests.fakes.fake_aliyun import FakeAliyun
from tests.fakes.fake_tencent import FakeTencent
from tests.integration.sms_support import add_due_messages
from tests.integration.test_domestic_sms import FAST, gateway_for

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAILY = 10
LIMITS = FrequencyLimits(
    same_text_gap=timedelta(seconds=30), per_day=DAILY, urgent_reserve=2, day_zone=SHANGHAI
)


@pytest.fixture(params=("tencent", "aliyun"))
def fake(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each provider's fake with a daily per-number limit of DAILY."""
    server = FakeTencent(daily_limit=DAILY) if request.param == "tencent" else FakeAliyun()
    if request.param == "aliyun":
        server.daily_limit = DAILY
    with server:
        yield server


def dispatcher(fake: Any, limits: FrequencyLimits | None = LIMITS) -> Dispatcher:
    return Dispatcher(gateway_for(fake), replace(FAST, limits=limits), actor="test")


def red_reply_to(patient_id: int) -> int:
    """A red emergency reply queued to the patient (as a late answer is)."""
    now = utcnow()
    body = rt.signed(rt.red_reply("zh"))
    row = {
        "patient_id": patient_id, "dedupe_key": "reply:red", "kind": "reply",
        "status": "planned", "send_after": now, "due_at": now,
        "expires_at": now + timedelta(hours=24), "body": body, "locale": "zh", "segments": 1,
        "encoding": "UCS-2", "event_keys": [], "items": [], "notes": [], "attempts": 0,
    }  # fmt: skip
    message_id = db.session.execute(insert(OutboxMessage).returning(OutboxMessage.id), [row])
    db.session.commit()
    return int(message_id.scalar_one())


def statuses(ids: list[int]) -> dict[int, OutboxMessage]:
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))
    return {r.id: r for r in rows}


def test_routine_messages_wait_for_the_next_day_and_a_red_reply_still_goes(
    app_ctx: Flask, fake: Any
) -> None:
    ids = add_due_messages(12, per_patient=12)

    report = dispatcher(fake).run()

    assert (report.sent, report.limited, report.retried) == (DAILY - 2, 4, 0)
    rows = statuses(ids)
    held = [r for r in rows.values() if r.status == "planned"]
    midnight = datetime(2026, 3, 5, tzinfo=SHANGHAI).astimezone(UTC)
    assert len(held) == 4 and all(r.due_at == midnight for r in held)
    assert all(r.attempts == 0 for r in held)
    detail = db.session.scalar(
        select(OutboxStatusChange.detail).where(OutboxStatusChange.message_id == held[0].id)
        .order_by(OutboxStatusChange.id.desc())
    )  # fmt: skip
    assert detail is not None and "frequency limit" in detail
    assert len(fake.messages) == DAILY - 2

    red = red_reply_to(rows[ids[0]].patient_id)
    again = dispatcher(fake).run()

    assert (again.claimed, again.sent, again.retried) == (1, 1, 0)
    assert statuses([red])[red].status in ("queued", "sent", "delivered")
    assert len(fake.messages) == DAILY - 1


def test_the_same_text_twice_waits_the_gap_instead_of_being_refused(
    app_ctx: Flask, fake: Any, clock: Any
) -> None:
    ids = add_due_messages(2, per_patient=2)
    db.session.execute(
        OutboxMessage.__table__.update()
        .where(OutboxMessage.id.in_(ids))
        .values(body="【测试】提醒：请按时到院。")
    )
    db.session.commit()

    first = dispatcher(fake).run()
    assert (first.sent, first.limited, first.retried) == (1, 1, 0)

    clock.advance(seconds=31)
    second = dispatcher(fake).run()
    assert (second.sent, second.retried) == (1, 0)
    assert {r.status for r in statuses(ids).values()} <= {"queued", "sent", "delivered"}


def test_without_planning_the_provider_refuses_what_the_plan_would_hold(
    app_ctx: Flask, fake: Any
) -> None:
    add_due_messages(12, per_patient=12)

    report = dispatcher(fake, limits=None).run()

    assert (report.sent, report.retried) == (DAILY, 2)


def test_concurrent_sends_to_one_number_cannot_both_pass_the_providers_limit(
    app_ctx: Flask, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The provider counts atomically: four dispatcher workers sending at once to one number get
    # exactly the daily allowance accepted. The fake's count is slowed to widen any race.
    fake.daily_limit = 3
    counted = fake.messages_to

    def slow_count(phone: str) -> list:
        found = counted(phone)
        time.sleep(0.05)  # between reading the count and recording the send
        return found

    monkeypatch.setattr(fake, "messages_to", slow_count)
    add_due_messages(8, per_patient=8)

    report = dispatcher(fake, limits=None).run()

    assert report.sent == 3
    assert len(fake.messages) == 3


@pytest.mark.parametrize(
    ("settings", "per_day", "per_hour"),
    [
        ({"SMS_BACKEND": "tencent", "TENCENT_SMS_DAILY_LIMIT": 20}, 20, 5),
        ({"SMS_BACKEND": "aliyun"}, 50, None),
    ],
)
def test_limits_follow_the_backend(settings: dict, per_day: int, per_hour: int | None) -> None:
    limits = limits_from_config(settings)
    assert limits is not None and (limits.per_day, limits.per_hour) == (per_day, per_hour)
    assert limits_from_config({"SMS_BACKEND": "twilio"}) is None
    assert limits_from_config({**settings, "SMS_PLAN_LIMITS": "0"}) is None


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"SMS_BACKEND": "tencent", "SMS_DAILY_BUDGET": 3}, None),
        ({"SMS_BACKEND": "tencent", "SMS_DAILY_BUDGET": 8}, None),  # 10 a day less 2 reserved
        ({"SMS_BACKEND": "tencent", "SMS_DAILY_BUDGET": 9}, "SMS_DAILY_BUDGET to 8 or less"),
        (
            {"SMS_BACKEND": "tencent", "TENCENT_SMS_DAILY_LIMIT": 4, "SMS_DAILY_BUDGET": 3},
            "SMS_DAILY_BUDGET to 2 or less",
        ),
        ({"SMS_BACKEND": "aliyun", "SMS_DAILY_BUDGET": 9}, None),  # 50 a day
        ({"SMS_BACKEND": "twilio", "SMS_DAILY_BUDGET": 40}, None),  # no per-number limit
        ({"SMS_BACKEND": "tencent", "TENCENT_SMS_DAILY_LIMIT": "ten"}, "TENCENT_SMS_DAILY_LIMIT"),
        ({"SMS_BACKEND": "tencent", "TENCENT_SMS_DAILY_LIMIT": -1}, "TENCENT_SMS_DAILY_LIMIT"),
    ],
)
def test_production_refuses_a_reminder_budget_the_provider_would_refuse(
    settings: dict, expected: str | None
) -> None:
    problems = frequency_problems(settings)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0]
