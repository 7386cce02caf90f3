"""Bounded requests: oversized bodies get 413 at once, before signature or CSRF checks."""

from __future__ import annotations

import io
import time

from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from app.extensions import db
from app.models import AuditEntry, InboundMessage

FIVE_MB = 5 * 1024 * 1024
FORM = "application/x-www-form-urlencoded"


def junk_form(size: int) -> bytes:
    """A url-encoded form of about `size` bytes, the shape of a Twilio webhook."""
    return b"From=%2B8613800138000&Body=" + b"x" * size


def stored_rows() -> int:
    """Inbound messages and audit rows in the database."""
    db.session.expire_all()
    inbound = db.session.scalar(select(func.count()).select_from(InboundMessage))
    audit = db.session.scalar(select(func.count()).select_from(AuditEntry))
    return int(inbound or 0) + int(audit or 0)


def test_a_5_mb_unsigned_webhook_post_gets_413_in_under_a_second(client: FlaskClient) -> None:
    body = junk_form(FIVE_MB)

    started = time.perf_counter()
    response = client.post("/webhooks/twilio/inbound", data=body, content_type=FORM)
    elapsed = time.perf_counter() - started

    assert response.status_code == 413
    assert elapsed < 1.0
    assert stored_rows() == 0


def post_chunked(client: FlaskClient, url: str, body: bytes) -> tuple[int, bytes]:
    """POST `body` as a server passes a chunked request on: no Content-Length, input terminated."""
    environ = EnvironBuilder(
        path=url, method="POST", input_stream=io.BytesIO(body), content_type=FORM
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input_terminated"] = True  # as gunicorn and werkzeug's server set it
    app_iter, status, _headers = run_wsgi_app(client.application, environ)
    return int(status.split()[0]), b"".join(app_iter)


def test_a_chunked_body_without_content_length_is_cut_off(client: FlaskClient) -> None:
    status, _body = post_chunked(client, "/webhooks/twilio/inbound", junk_form(FIVE_MB))

    assert status == 413
    assert stored_rows() == 0


def test_a_small_chunked_body_is_still_read(client: FlaskClient) -> None:
    status, _body = post_chunked(client, "/webhooks/twilio/inbound", junk_form(100))

    assert status == 403  # parsed, then refused for its missing signature


def test_large_sign_in_and_language_posts_get_413_before_csrf(client: FlaskClient) -> None:
    for url in ("/sign-in", "/language"):
        response = client.post(url, data=junk_form(FIVE_MB), content_type=FORM)
        assert response.status_code == 413, url


def test_the_413_page_is_translated_and_plain(client: FlaskClient) -> None:
    response = client.post("/sign-in", data=junk_form(200 * 1024), content_type=FORM)

    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "请求过大" in html and "未保存任何内容" in html
    assert "Traceback" not in html


def test_a_normal_webhook_sized_form_is_not_refused_for_its_size(client: FlaskClient) -> None:
    response = client.post("/webhooks/twilio/inbound", data=junk_form(1600), content_type=FORM)

    assert response.status_code == 403  # reached the signature check: unsigned, so refused


def test_too_many_multipart_parts_get_413(client: FlaskClient) -> None:
    data = {f"field{i}": "1" for i in range(400)}

    response = client.post(
        "/webhooks/twilio/inbound", data=data, content_type="multipart/form-data"
    )

    assert response.status_code == 413
    assert stored_rows() == 0


def test_limits_come_from_settings(client: FlaskClient) -> None:
    config = client.application.config

    assert config["MAX_CONTENT_LENGTH"] <= 64 * 1024
    assert config["MAX_FORM_MEMORY_SIZE"] <= 64 * 1024
    assert config["MAX_FORM_PARTS"] <= 300
