"""Property tests of the inbound webhook: any form body, correctly signed or not, never gives a
500 and never leaves anything half-written."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.extensions import db
from app.models import Alert, InboundMessage
from tests.replies.conftest import INBOUND_PATH, count, patient, sign

FIELD_NAMES = ("MessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "AccountSid", "x")
PHONE = "+8613800138000"
MESSAGES = ("1", "TD", "START", "胸痛", "拉了八次", "发烧39度", "HELP", "改期", "有点累", "")

field_value = st.one_of(
    st.text(max_size=40),
    st.sampled_from((PHONE, "+8613912345678", "SM" + "a" * 32, "", " ", "\x00", "0" * 70)),
    st.sampled_from(MESSAGES),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
)
form_fields = st.lists(
    st.tuples(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10)), field_value),
    max_size=10,
)
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _invariants() -> None:
    """Nothing half-written: every stored message was interpreted (or failed and says why),
    and every alert points at a stored message."""
    rows = db.session.scalars(
        select(InboundMessage).execution_options(populate_existing=True)
    ).all()
    for row in rows:
        assert row.status in ("processed", "failed"), row
        assert row.reply_body is not None
        assert row.status == "processed" or row.error
    ids = {row.id for row in rows}
    for alert in db.session.scalars(select(Alert)):
        assert alert.inbound_message_id in ids


@FUZZ
@given(fields=form_fields, sid=st.uuids(), known_sender=st.booleans())
def test_any_signed_form_is_answered_without_a_server_error(
    client: FlaskClient, fields: list[tuple[str, str]], sid: object, known_sender: bool
) -> None:
    if not _has_patient():
        patient(phone=PHONE[3:])
    form = MultiDict(fields)
    if known_sender and "MessageSid" not in form:
        form.add("MessageSid", f"SM{sid.hex}")  # type: ignore[attr-defined]
        form.add("From", PHONE)
    before = count(InboundMessage)
    response = client.post(INBOUND_PATH, data=form, headers={"X-Twilio-Signature": sign(form)})
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    after = count(InboundMessage)
    if response.status_code == 400:
        assert after == before
    else:
        assert after - before in (0, 1)
        assert response.mimetype == "application/xml"
    _invariants()


def _has_patient() -> bool:
    from app.models import Patient

    return db.session.scalar(select(Patient.id)) is not None


@FUZZ
@given(
    fields=form_fields,
    signature=st.one_of(
        st.none(), st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
    ),
)
def test_any_unsigned_or_badly_signed_form_is_refused_and_nothing_is_stored(
    client: FlaskClient, fields: list[tuple[str, str]], signature: str | None
) -> None:
    form = MultiDict(fields)
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = client.post(INBOUND_PATH, data=form, headers=headers)
    assert response.status_code == 403
    assert count(InboundMessage) == 0 and count(Alert) == 0


@FUZZ
@given(raw=st.binary(max_size=400))
def test_raw_bytes_are_refused_without_a_server_error(client: FlaskClient, raw: bytes) -> None:
    response = client.post(
        INBOUND_PATH,
        data=raw,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": "x"},
    )
    assert response.status_code in (400, 403)
    assert count(InboundMessage) == 0


def test_the_app_fixture_is_usable(app_ctx: Flask) -> None:
    assert count(InboundMessage) == 0
