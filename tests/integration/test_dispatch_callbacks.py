"""Delivery status callbacks: signed webhook, forward-only statuses, out of order, twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.serving import make_server

from app.clock import utcnow
from app.extensions import db
from app.models import AuditEntry, OutboxMessage, OutboxStatusChange, Patient
from app.services.messaging.dispatch import Dispatcher, DispatchReport, DispatchSettings, reconcile
from app.services.messaging.status_callbacks import apply_status_callback
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.sms_support import (
    AUTH_TOKEN,
    add_due_messages,
    fake_fixture,  # noqa: F401  (the `fake` fixture)
    fresh_message,
    gateway_for,
)

PATH = "/webhooks/twilio/status"
SETTINGS = DispatchSettings(workers=2, batch_size=5, settle=timedelta(0))


@pytest.fixture
def twilio_app(app_ctx: Flask) -> Iterator[Flask]:
    """The app with the Twilio auth token configured (restored afterwards)."""
    saved = {k: app_ctx.config.get(k) for k in ("TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL")}
    app_ctx.config.update(TWILIO_AUTH_TOKEN=AUTH_TOKEN, PUBLIC_BASE_URL=None)
    yield app_ctx
    app_ctx.config.update(saved)


def send_one(fake: FakeTwilio, settings: DispatchSettings = SETTINGS) -> OutboxMessage:
    [message_id] = add_due_messages(1)
    Dispatcher(gateway_for(fake), settings, actor="test").run()
    return fresh_message(message_id)


def history_count(message_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(OutboxStatusChange)
            .where(OutboxStatusChange.message_id == message_id)
        )
    )


def post_callback(
    client: FlaskClient,
    fake: FakeTwilio,
    row: OutboxMessage,
    status: str,
    *,
    error_code: int | None = None,
    signed_url: str | None = None,
    signature: str | None = None,
    sid: str | None = None,
) -> int:
    url = f"http://localhost{PATH}?m={row.id}"
    form = fake.status_callback_form(sid or row.provider_id, status, error_code)
    header = signature if signature is not None else fake.sign(signed_url or url, form)
    response = client.post(f"{PATH}?m={row.id}", data=form, headers={"X-Twilio-Signature": header})
    return response.status_code


def test_a_signed_callback_moves_the_status_forward(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    row = send_one(fake)
    assert row.status == "queued"

    for status in ("sending", "sent", "delivered"):
        assert post_callback(client, fake, row, status) == 204

    row = fresh_message(row.id)
    assert row.status == "delivered" and row.delivered_at is not None
    assert [h.to_status for h in row.history][-3:] == ["sending", "sent", "delivered"]
    assert row.history[-1].source == "status-callback"


@pytest.mark.parametrize(
    "forgery",
    ["missing", "garbage", "other_url", "other_token", "changed_form"],
)
def test_a_forged_callback_gets_403_and_changes_nothing(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio, forgery: str
) -> None:
    row = send_one(fake)
    before = history_count(row.id)
    url = f"http://localhost{PATH}?m={row.id}"
    form = fake.status_callback_form(row.provider_id, "delivered")
    signatures = {
        "missing": None,
        "garbage": "bm90IGEgc2lnbmF0dXJl",
        "other_url": fake.sign(f"http://localhost{PATH}?m={row.id + 1}", form),
        "other_token": FakeTwilio(auth_token="someone-else").sign(url, form),
        "changed_form": fake.sign(url, {**form, "MessageStatus": "sent"}),
    }
    headers = {"X-Twilio-Signature": signatures[forgery]} if signatures[forgery] else {}

    response = client.post(f"{PATH}?m={row.id}", data=form, headers=headers)

    assert response.status_code == 403
    row = fresh_message(row.id)
    assert row.status == "queued" and row.delivered_at is None
    assert history_count(row.id) == before


def test_without_an_auth_token_every_callback_is_refused(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    row = send_one(fake)
    twilio_app.config["TWILIO_AUTH_TOKEN"] = None

    assert post_callback(client, fake, row, "delivered") == 403
    assert fresh_message(row.id).status == "queued"


def test_out_of_order_and_repeated_callbacks_never_move_back(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    row = send_one(fake)

    for status in ("delivered", "sent", "sending", "delivered", "queued", "undelivered"):
        assert post_callback(client, fake, row, status) == 204

    row = fresh_message(row.id)
    assert row.status == "delivered"
    assert [h.to_status for h in row.history].count("delivered") == 1
    assert "sent" not in [h.to_status for h in row.history][2:]


def test_a_repeated_status_is_recorded_once(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    row = send_one(fake)

    for _ in range(3):
        assert post_callback(client, fake, row, "sent") == 204

    assert [h.to_status for h in fresh_message(row.id).history].count("sent") == 1


def test_failed_and_undelivered_are_terminal_and_show_the_error(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    row = send_one(fake)

    assert post_callback(client, fake, row, "undelivered", error_code=30007) == 204
    assert post_callback(client, fake, row, "delivered") == 204
    assert post_callback(client, fake, row, "sent") == 204

    row = fresh_message(row.id)
    assert (row.status, row.error_code, row.error_reason) == ("undelivered", 30007, "undelivered")
    assert "filtered by the carrier" in row.error_message


def test_an_opt_out_reported_by_callback_updates_the_patient(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    row = send_one(fake)

    assert post_callback(client, fake, row, "failed", error_code=21610) == 204

    patient = db.session.get(Patient, row.patient_id)
    db.session.refresh(patient)
    assert patient.sms_opted_out_at is not None
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action == "patient.sms_opted_out", AuditEntry.patient_id == patient.id
            )
        )
        == 1
    )


def test_a_callback_settles_an_ambiguous_send_so_it_is_never_resent(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    fake.fail_next(1, "500_created")
    row = send_one(fake)
    assert row.status == "unknown" and row.provider_id is None
    [created] = fake.messages

    assert post_callback(client, fake, row, "sent", sid=created.sid) == 204

    row = fresh_message(row.id)
    assert (row.status, row.provider_id) == ("sent", created.sid)
    assert reconcile(gateway=gateway_for(fake), settings=SETTINGS).checked == 0
    assert Dispatcher(gateway_for(fake), SETTINGS).run().claimed == 0
    assert len(fake.create_requests()) == 1


def test_a_callback_that_beats_the_api_answer_is_kept(app_ctx: Flask, fake: FakeTwilio) -> None:
    [message_id] = add_due_messages(1)
    dispatcher = Dispatcher(gateway_for(fake), SETTINGS, actor="test")
    [claimed] = dispatcher.claim(utcnow(), 1)
    outcome = dispatcher.attempt(claimed, should_stop=lambda: False)
    assert outcome.sent is not None

    result = apply_status_callback(outcome.sent.provider_id, "sent", message_id=message_id)
    report = DispatchReport()
    dispatcher.record(claimed, outcome, report)
    db.session.commit()

    row = fresh_message(message_id)
    assert result.outcome == "updated"
    assert (row.status, row.provider_id, report.lost) == ("sent", outcome.sent.provider_id, 0)
    assert [h.to_status for h in row.history] == ["claimed", "sent"]


def test_an_unknown_message_sid_is_acknowledged_and_ignored(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    url = f"http://localhost{PATH}"

    response = client.post(PATH, data=form, headers={"X-Twilio-Signature": fake.sign(url, form)})

    assert response.status_code == 204
    assert db.session.scalar(select(func.count()).select_from(OutboxStatusChange)) == 0


def test_the_public_base_url_is_what_twilio_signed(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    row = send_one(fake)
    twilio_app.config["PUBLIC_BASE_URL"] = "https://cadence.example.org/"
    public = f"https://cadence.example.org{PATH}?m={row.id}"

    assert post_callback(client, fake, row, "sent") == 403  # signed for the internal URL
    assert post_callback(client, fake, row, "sent", signed_url=public) == 204
    assert fresh_message(row.id).status == "sent"


def test_csrf_is_off_for_the_webhooks_only(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio
) -> None:
    assert twilio_app.config.get("WTF_CSRF_ENABLED", True)
    row = send_one(fake)

    assert post_callback(client, fake, row, "sent") == 204  # no CSRF token needed
    assert client.post("/sign-in", data={"username": "x", "password": "y"}).status_code == 400


def test_callbacks_from_the_fake_reach_a_live_server(twilio_app: Flask, fake: FakeTwilio) -> None:
    server = make_server("127.0.0.1", 0, twilio_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}{PATH}"
        settings = DispatchSettings(**{**SETTINGS.__dict__, "status_callback_base": base})
        row = send_one(fake, settings)
        [created] = fake.messages
        assert created.status_callback == f"{base}?m={row.id}"

        answers = [
            fake.post_status_callback(None, created.sid, status).status_code
            for status in ("sent", "delivered")
        ]
    finally:
        server.shutdown()
        thread.join(5)

    assert answers == [204, 204]
    row = fresh_message(row.id)
    assert row.status == "delivered"
    assert row.delivered_at is not None and row.delivered_at <= utcnow()


@pytest.mark.parametrize("status", ["planned", "cancelled"])
def test_a_callback_with_an_unknown_sid_never_moves_an_unsent_row(
    client: FlaskClient, twilio_app: Flask, fake: FakeTwilio, status: str
) -> None:
    [message_id] = add_due_messages(1)
    row = fresh_message(message_id)
    row.status = status
    db.session.commit()
    before = history_count(message_id)

    code = post_callback(client, fake, row, "delivered", sid="SM" + "9" * 32)

    assert code == 204
    row = fresh_message(message_id)
    assert (row.status, row.provider_id, row.delivered_at) == (status, None, None)
    assert history_count(message_id) == before
    assert apply_status_callback("SM" + "9" * 32, "sent", message_id=message_id).outcome == (
        "unknown_message"
    )
