"""The Messages page shows which provider carried a message and its error in zh and en."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import update

from app.extensions import db
from app.models import OutboxMessage
from tests.integration.sms_support import add_due_messages


def _failed_at_tencent() -> None:
    [message_id] = add_due_messages(1)
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            status="undelivered",
            provider="tencent",
            provider_id="2433:1234",
            error_reason="undelivered",
            error_message="MK:0001 / 空号或关机",
        )
    )
    db.session.commit()


def test_a_chinese_nurse_sees_the_provider_and_the_error_in_chinese(nurse: FlaskClient) -> None:
    _failed_at_tencent()

    page = nurse.get("/messages/?status=undelivered").get_data(as_text=True)

    assert "腾讯云" in page and "2433:1234" in page
    assert "运营商未能送达" in page and "空号或关机" in page


def test_an_english_nurse_sees_it_in_english(english_nurse: FlaskClient) -> None:
    _failed_at_tencent()

    page = english_nurse.get("/messages/?status=undelivered").get_data(as_text=True)

    assert "Tencent Cloud" in page
    assert "the carrier could not deliver it" in page
