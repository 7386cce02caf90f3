"""Logs never carry a full phone number, an SMS body or a check-in link token above DEBUG."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage, utcnow
from app.services.conversations.checkins.links import make_token
from app.services.messaging.dispatch import Dispatcher, DispatchSettings
from app.sms import ConsoleGateway, TwilioGateway, count_segments
from app.sms.privacy import MaskingFilter, install_log_masking, mask_phone, mask_sensitive
from tests.replies.conftest import inbound_form, patient, post_inbound

PHONE = "+8613800138000"
SETTINGS = DispatchSettings(workers=1, batch_size=5, settle=timedelta(0))


def secret_bits(token: str, body: str) -> list[str]:
    """What must not appear: the number in any form, the body, the link token."""
    return [PHONE, PHONE[3:], "38000138000", token, body, "fever since this morning"]


def test_info_logs_of_a_dispatch_and_an_inbound_message_hide_numbers_bodies_and_links(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    p = patient(locale="en")
    token = make_token(41, p.id)
    body = f"Please answer a few questions: https://cadence.example.org/c/{token} Thank you."
    now = utcnow()
    info = count_segments(body)
    db.session.add(
        OutboxMessage(
            patient_id=p.id, dedupe_key="checkin:x", kind="checkin", status="planned",
            body=body, locale="en", segments=info.segments, encoding=info.encoding,
            send_after=now - timedelta(minutes=1), due_at=now - timedelta(minutes=1),
            expires_at=now + timedelta(hours=2), event_keys=[], items=[], notes=[], attempts=0,
        )
    )  # fmt: skip
    db.session.commit()
    caplog.set_level(logging.INFO)

    report = Dispatcher(ConsoleGateway(), SETTINGS, actor="test").run()
    response = post_inbound(client, inbound_form(PHONE, "fever since this morning"))

    row = db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == "checkin:x"))
    assert report.sent >= 1 and row is not None and row.provider_id
    assert response.status_code == 200
    assert "SMS to +86138****8000" in caplog.text  # the dispatch was logged, masked
    for bit in secret_bits(token, body):
        assert bit not in caplog.text


def test_the_twilio_sdk_logger_is_quieted_to_warning() -> None:
    logging.getLogger("twilio.http_client").setLevel(logging.NOTSET)

    TwilioGateway("AC" + "1" * 32, "token", messaging_service_sid="MG" + "2" * 32)

    assert logging.getLogger("twilio.http_client").level == logging.WARNING


def test_one_masking_helper_for_numbers_in_every_form() -> None:
    assert mask_phone("+8613800000001") == "+86138****0001"
    assert mask_phone("13800000001") == "+86138****0001"
    assert mask_phone("+14155550100") == "+1415***0100"
    assert mask_phone("not a number") == "****"
    text = "to +8613800000001 or 13900000002, see https://x.org/c/eyJhbGciOi.abc-DEF_123 id 4711"
    assert mask_sensitive(text) == (
        "to +86138****0001 or +86139****0002, see https://x.org/c/<token> id 4711"
    )


def test_the_filter_masks_any_record_a_handler_emits() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("cadence.test.privacy")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        install_log_masking(logger)
        logger.warning("sending to %s failed", "+8613800000001")
        try:
            raise ValueError("The 'To' number +8613800000001 is not valid")
        except ValueError:
            logger.exception("send failed")
    finally:
        logger.removeHandler(handler)
    assert any(isinstance(f, MaskingFilter) for f in handler.filters)
    assert "+8613800000001" not in stream.getvalue()
    assert "ValueError: The 'To' number +86138****0001 is not valid" in stream.getvalue()
    assert "sending to +86138****0001 failed" in stream.getvalue()
