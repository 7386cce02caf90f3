"""The fake Twilio server itself: signed callbacks, auth, listing, faults, concurrency, stop."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import requests
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app.sms import AmbiguousSmsError, SmsError, TwilioGateway
from app.sms.webhook_security import is_valid_twilio_request
from tests.fakes.fake_twilio import FakeTwilio

ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "fake-secret"
PATIENT = "+8613812345678"


@dataclass
class Received:
    """What the callback receiver got."""

    path: str = ""
    form: dict[str, str] = field(default_factory=dict)
    signature: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    """A tiny HTTP server standing in for the app's status callback endpoint."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            pairs = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            received.path = self.path
            received.form = {key: values[-1] for key, values in pairs.items()}
            received.signature = self.headers.get("X-Twilio-Signature")
            self.send_response(204)
            self.end_headers()
            received.done.set()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/twilio/status", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def gateway_for(fake: FakeTwilio, timeout: float = 5.0) -> TwilioGateway:
    return TwilioGateway(
        fake.account_sid,
        fake.auth_token,
        from_number="+15005550006",
        timeout=timeout,
        base_url=fake.base_url,
    )


def api(fake: FakeTwilio, path: str = "Messages.json") -> str:
    return f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/{path}"


# status callbacks


def test_status_callback_is_signed_so_the_app_can_verify_it(
    fake: FakeTwilio, receiver: tuple[str, Received]
) -> None:
    url, received = receiver
    sid = gateway_for(fake).send(PATIENT, "x", status_callback=url).provider_id

    response = fake.post_status_callback(None, sid, "undelivered", error_code=30003)

    assert response.status_code == 204
    assert received.done.wait(5)
    assert received.form["MessageSid"] == sid
    assert received.form["MessageStatus"] == "undelivered"
    assert received.form["AccountSid"] == ACCOUNT_SID
    assert received.form["To"] == PATIENT
    assert received.form["From"] == "+15005550006"
    assert received.form["ErrorCode"] == "30003"
    assert is_valid_twilio_request(AUTH_TOKEN, url, received.form, received.signature)
    assert fake.message(sid).status == "undelivered"
    assert fake.message(sid).error_code == 30003


def test_forged_or_missing_signatures_do_not_verify(
    fake: FakeTwilio, receiver: tuple[str, Received]
) -> None:
    url, received = receiver
    sid = gateway_for(fake).send(PATIENT, "x").provider_id
    fake.post_status_callback(url, sid, "delivered")
    assert received.done.wait(5)
    assert "ErrorCode" not in received.form
    form, signature = received.form, received.signature

    assert is_valid_twilio_request(AUTH_TOKEN, url, form, signature)
    assert not is_valid_twilio_request("another-token", url, form, signature)
    assert not is_valid_twilio_request(
        AUTH_TOKEN, url, {**form, "MessageStatus": "failed"}, signature
    )
    assert not is_valid_twilio_request(AUTH_TOKEN, url + "?x=1", form, signature)
    forged = RequestValidator("guessed-token").compute_signature(url, form)
    assert not is_valid_twilio_request(AUTH_TOKEN, url, form, forged)
    assert not is_valid_twilio_request(AUTH_TOKEN, url, form, None)
    assert not is_valid_twilio_request(AUTH_TOKEN, url, form, "")
    assert not is_valid_twilio_request("", url, form, signature)


def test_sign_matches_twilio_request_validator(fake: FakeTwilio) -> None:
    params = {"MessageSid": "SM1", "MessageStatus": "sent"}
    url = "https://cadence.example.org/webhooks/twilio/status"
    assert fake.sign(url, params) == RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    assert is_valid_twilio_request(AUTH_TOKEN, url, params, fake.sign(url, params))


def test_signature_covers_every_value_of_a_repeated_form_field() -> None:
    url = "https://cadence.example.org/webhooks/twilio/inbound"
    form = MultiDict([("Body", "TD"), ("MediaUrl", "a"), ("MediaUrl", "b")])
    signature = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN).sign(url, form)

    assert is_valid_twilio_request(AUTH_TOKEN, url, form, signature)
    changed = MultiDict([("Body", "TD"), ("MediaUrl", "a"), ("MediaUrl", "c")])
    assert not is_valid_twilio_request(AUTH_TOKEN, url, changed, signature)


# HTTP behaviour


def test_requests_without_valid_basic_auth_get_twilio_style_401(fake: FakeTwilio) -> None:
    anonymous = requests.post(api(fake), data={"To": PATIENT, "Body": "x", "From": "+1"})
    wrong = requests.get(api(fake), auth=(ACCOUNT_SID, "nope"))

    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert fake.messages == []
    assert len(fake.requests) == 2


def test_another_account_in_the_path_is_not_found(fake: FakeTwilio) -> None:
    url = f"{fake.base_url}/2010-04-01/Accounts/AC{'9' * 32}/Messages.json"
    response = requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN))
    assert response.status_code == 404
    assert response.json()["code"] == 20404


def test_create_answers_like_twilio(fake: FakeTwilio) -> None:
    response = requests.post(
        api(fake),
        data={"To": PATIENT, "MessagingServiceSid": "MG1", "Body": "好" * 71},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )

    assert response.status_code == 201
    body = response.json()
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert body["status"] == "accepted"
    assert body["to"] == PATIENT and body["from"] is None
    assert body["error_code"] is None and body["date_sent"] is None
    assert body["num_segments"] == "2"
    assert body["date_created"].endswith("+0000")
    fetched = requests.get(
        api(fake, f"Messages/{body['sid']}.json"), auth=(ACCOUNT_SID, AUTH_TOKEN)
    )
    assert fetched.status_code == 200 and fetched.json()["sid"] == body["sid"]
    missing = requests.get(api(fake, "Messages/SMnope.json"), auth=(ACCOUNT_SID, AUTH_TOKEN))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"Body": "x", "From": "+1"}, 21604),
        ({"To": PATIENT, "Body": "x"}, 21603),
        ({"To": PATIENT, "From": "+1"}, 21602),
    ],
)
def test_create_validates_required_fields(fake: FakeTwilio, form: dict, code: int) -> None:
    response = requests.post(api(fake), data=form, auth=(ACCOUNT_SID, AUTH_TOKEN))
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_list_filters_by_recipient_and_date_sent_and_pages() -> None:
    day = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    now = [day]
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, clock=lambda: now[0]) as fake:
        gateway = gateway_for(fake)
        for hours in (0, 1, 2, 30):
            now[0] = day + timedelta(hours=hours)
            gateway.send(PATIENT, f"+{hours}h")
        gateway.send("+8613900000000", "other")
        auth = (ACCOUNT_SID, AUTH_TOKEN)

        def bodies(**params: str) -> list[str]:
            page = requests.get(api(fake), params={"To": PATIENT, **params}, auth=auth).json()
            return [m["body"] for m in page["messages"]]

        assert bodies() == ["+30h", "+2h", "+1h", "+0h"]
        assert bodies(**{"DateSent>": "2026-03-04T10:00:00Z"}) == ["+30h", "+2h", "+1h"]
        assert bodies(**{"DateSent<": "2026-03-04T10:00:00Z"}) == ["+1h", "+0h"]
        assert bodies(**{"DateSent": "2026-03-05"}) == ["+30h"]
        page = requests.get(api(fake), params={"To": PATIENT, "PageSize": 3}, auth=auth).json()
        assert page["page"] == 0 and page["page_size"] == 3 and len(page["messages"]) == 3
        assert page["first_page_uri"].startswith(f"/2010-04-01/Accounts/{ACCOUNT_SID}/")
        second = requests.get(fake.base_url + page["next_page_uri"], auth=auth).json()
        assert [m["body"] for m in second["messages"]] == ["+0h"]
        assert second["next_page_uri"] is None


# faults


def test_fail_next_hits_only_creation_by_default_in_order(fake: FakeTwilio) -> None:
    fake.fail_next(1, "429")
    fake.fail_next(1, "500")
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    form = {"To": PATIENT, "From": "+1", "Body": "x"}

    assert requests.get(api(fake), auth=auth).status_code == 200
    assert requests.post(api(fake), data=form, auth=auth).status_code == 429
    assert requests.post(api(fake), data=form, auth=auth).status_code == 500
    assert requests.post(api(fake), data=form, auth=auth).status_code == 201
    assert [r.fault for r in fake.requests] == [None, "429", "500", None]
    assert fake.count_for(PATIENT) == 1


def test_fault_rate_is_reproducible_with_a_seed() -> None:
    def outcomes(seed: int) -> list[int]:
        with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN) as fake:
            fake.set_fault_rate(0.5, kinds=("429", "500"), seed=seed)
            with requests.Session() as session:
                return [
                    session.post(
                        api(fake),
                        data={"To": PATIENT, "From": "+1", "Body": "x"},
                        auth=(ACCOUNT_SID, AUTH_TOKEN),
                    ).status_code
                    for _ in range(40)
                ]

    first = outcomes(7)
    assert first == outcomes(7)
    assert {201, 429, 500} == set(first)
    with pytest.raises(ValueError, match="unknown fault kind"):
        FakeTwilio().set_fault_rate(0.1, kinds=("teapot",))


def test_slow_and_latency_delay_but_succeed(fake: FakeTwilio) -> None:
    gateway = gateway_for(fake)
    fake.slow_seconds = 0.3
    fake.fail_next(1, "slow")
    started = time.monotonic()
    gateway.send(PATIENT, "slow")
    assert time.monotonic() - started >= 0.3
    fake.latency = 0.2
    started = time.monotonic()
    gateway.send(PATIENT, "latency")
    assert time.monotonic() - started >= 0.2
    assert fake.bodies_for(PATIENT) == ["slow", "latency"]


def test_stop_ends_stalled_handlers_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, stall_seconds=60).start()
    gateway = gateway_for(fake, timeout=0.3)
    gateway.send(PATIENT, "keep-alive connection left open")
    fake.fail_next(1, "timeout_created")
    with pytest.raises(AmbiguousSmsError):
        gateway.send(PATIENT, "stalls")

    idle = socket.create_connection(("127.0.0.1", fake.port))  # a handler waits on it
    time.sleep(0.1)

    started = time.monotonic()
    fake.stop()

    assert time.monotonic() - started < 2.0
    idle.close()
    assert set(threading.enumerate()) - before == set()
    assert fake.bodies_for(PATIENT) == ["keep-alive connection left open", "stalls"]


# concurrency


def _send_batch(base_url: str, prefix: str, count: int) -> list[str]:
    """Worker process: send ``count`` messages with 4 threads through the real SDK."""
    gateway = TwilioGateway(
        ACCOUNT_SID, AUTH_TOKEN, from_number="+15005550006", timeout=10, base_url=base_url
    )
    sids: list[str] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for number in range(offset, count, 4):
            try:
                sid = gateway.send(f"{prefix}{number:04d}", "load").provider_id
            except SmsError as error:
                sid = f"error: {error}"
            with lock:
                sids.append(sid)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sids


def test_many_requests_from_several_processes(fake: FakeTwilio) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:
        futures = [
            pool.submit(_send_batch, fake.base_url, f"+86137{index}", 150) for index in range(3)
        ]
        results = [sid for future in futures for sid in future.result(timeout=60)]

    assert len(results) == 450
    assert all(sid.startswith("SM") for sid in results), [s for s in results if "error" in s][:3]
    assert len(set(results)) == 450
    assert sorted(results) == sorted(m.sid for m in fake.messages)
    assert len(fake.create_requests()) == 450
