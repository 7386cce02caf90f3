"""The Twilio signature check: an empty auth token never validates, whatever the signature."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from app.sms.webhook_security import is_valid_twilio_request

URL = "https://cadence.example.cn/webhooks/twilio/inbound"
PARAMS = {"From": "+8613800138000", "Body": "1", "MessageSid": "SM" + "0" * 32}


def test_a_signature_made_with_the_real_token_is_valid() -> None:
    signature = RequestValidator("real-token").compute_signature(URL, PARAMS)

    assert is_valid_twilio_request("real-token", URL, PARAMS, signature)


@pytest.mark.parametrize("token", ["", None])
def test_a_signature_made_with_an_empty_key_is_refused_when_no_token_is_set(token) -> None:
    # A forger who guesses that no token is configured signs with the empty key.
    forged = RequestValidator("").compute_signature(URL, PARAMS)
    assert RequestValidator("").validate(URL, PARAMS, forged)  # the SDK alone would accept it

    assert not is_valid_twilio_request(token, URL, PARAMS, forged)


@pytest.mark.parametrize("signature", ["", None])
def test_a_missing_signature_is_refused(signature) -> None:
    assert not is_valid_twilio_request("real-token", URL, PARAMS, signature)


def test_a_signature_of_other_parameters_is_refused() -> None:
    signature = RequestValidator("real-token").compute_signature(URL, {**PARAMS, "Body": "2"})

    assert not is_valid_twilio_request("real-token", URL, PARAMS, signature)
