"""The real twilio SDK, through TwilioGateway, against the loopback FakeTwilio server."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from app.clock import utcnow
from app.sms import (
    AmbiguousSmsError,
    ConsoleGateway,
    RetryableSmsError,
    SmsAuthError,
    SmsGateway,
    TerminalSmsError,
    TwilioGateway,
    make_gateway,
)
from app.sms import twilio_gateway as twilio_module
from app.sms.privacy import mask_phone
from tests.fakes.fake_twilio import FakeTwilio

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token"
SERVICE_SID = "MG" + "2" * 32
PATIENT = "+8613812345678"
TIMEOUT = 0.5


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as server:
        yield server


def gateway_for(fake: FakeTwilio, **overrides: object) -> TwilioGateway:
    options: dict = {
        "messaging_service_sid": SERVICE_SID,
        "timeout": TIMEOUT,
        "validity_period": 3600,
        "base_url": fake.base_url,
    }
    options.update(overrides)
    return TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, **options)


def window() -> tuple[datetime, datetime]:
    now = utcnow()
    return now - timedelta(minutes=5), now + timedelta(minutes=1)


def test_send_returns_the_sid_and_sends_every_field_with_basic_auth(fake: FakeTwilio) -> None:
    sent = gateway_for(fake).send(PATIENT, "您好", status_callback="https://c.example/cb")

    assert sent.provider_id.startswith("SM") and len(sent.provider_id) == 34
    assert sent.status == "accepted"
    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.auth == (ACCOUNT_SID, AUTH_TOKEN)
    assert request.form == {
        "To": PATIENT,
        "Body": "您好",
        "MessagingServiceSid": SERVICE_SID,
        "StatusCallback": "https://c.example/cb",
        "ValidityPeriod": "3600",
    }
    assert [m.sid for m in fake.messages] == [sent.provider_id]


def test_send_with_a_from_number_and_no_optional_fields(fake: FakeTwilio) -> None:
    gateway = TwilioGateway(
        ACCOUNT_SID, AUTH_TOKEN, from_number="+15005550006", base_url=fake.base_url
    )

    sent = gateway.send(PATIENT, "Hello")

    assert sent.status == "queued"
    assert fake.requests[0].form == {"To": PATIENT, "Body": "Hello", "From": "+15005550006"}


def test_rate_limit_is_retryable_and_creates_nothing(fake: FakeTwilio) -> None:
    fake.fail_next(1, "429")
    with pytest.raises(RetryableSmsError) as caught:
        gateway_for(fake).send(PATIENT, "x")
    assert (caught.value.http_status, caught.value.provider_code) == (429, 20429)
    assert fake.count_for(PATIENT) == 0


@pytest.mark.parametrize(("kind", "created"), [("500", 0), ("500_created", 1)])
def test_server_error_is_ambiguous(fake: FakeTwilio, kind: str, created: int) -> None:
    fake.fail_next(1, kind)
    with pytest.raises(AmbiguousSmsError) as caught:
        gateway_for(fake).send(PATIENT, "x")
    assert caught.value.http_status == 500
    assert fake.count_for(PATIENT) == created


def test_timeout_is_ambiguous_and_comes_after_about_the_configured_timeout(
    fake: FakeTwilio,
) -> None:
    fake.fail_next(1, "timeout")
    started = time.monotonic()
    with pytest.raises(AmbiguousSmsError, match="did not answer in time"):
        gateway_for(fake).send(PATIENT, "x")
    elapsed = time.monotonic() - started
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 1.0


def test_connection_dropped_after_sending_is_ambiguous(fake: FakeTwilio) -> None:
    fake.fail_next(1, "drop_created")
    with pytest.raises(AmbiguousSmsError):
        gateway_for(fake).send(PATIENT, "x")
    assert fake.count_for(PATIENT) == 1


def test_connection_refused_is_retryable() -> None:
    with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as stopped:
        gateway = gateway_for(stopped)
        gateway.send(PATIENT, "warm the connection pool")
    started = time.monotonic()
    with pytest.raises(RetryableSmsError, match="nothing was sent"):
        gateway.send(PATIENT, "x")
    assert time.monotonic() - started < TIMEOUT + 1.0


@pytest.mark.parametrize(
    ("code", "reason"),
    [(21610, "opted_out"), (21211, "invalid_number"), (21614, "invalid_number")],
)
def test_number_errors_are_terminal_with_a_reason(fake: FakeTwilio, code: int, reason: str) -> None:
    fake.set_number_error(PATIENT, code)
    with pytest.raises(TerminalSmsError) as caught:
        gateway_for(fake).send(PATIENT, "x")
    assert caught.value.reason == reason
    assert (caught.value.http_status, caught.value.provider_code) == (400, code)
    assert fake.count_for(PATIENT) == 0


def test_other_client_errors_are_terminal_rejections(fake: FakeTwilio) -> None:
    with pytest.raises(TerminalSmsError) as caught:
        gateway_for(fake).send(PATIENT, "x" * 1601)
    assert caught.value.reason == "rejected"
    assert caught.value.provider_code == 21617


def test_wrong_credentials_give_a_clear_error_and_send_nothing(fake: FakeTwilio) -> None:
    gateway = TwilioGateway(
        ACCOUNT_SID, "wrong-token", from_number="+15005550006", base_url=fake.base_url
    )
    with pytest.raises(SmsAuthError, match="TWILIO_AUTH_TOKEN") as caught:
        gateway.send(PATIENT, "x")
    assert caught.value.http_status == 401
    assert isinstance(caught.value, RetryableSmsError)
    assert fake.messages == []


def test_find_sent_returns_the_message_created_during_a_timeout(fake: FakeTwilio) -> None:
    gateway = gateway_for(fake)
    since, until = window()
    gateway.send("+8613900000000", "another patient")
    fake.fail_next(1, "timeout_created")
    with pytest.raises(AmbiguousSmsError):
        gateway.send(PATIENT, "提醒：明天上午复查")

    found = gateway.find_sent(PATIENT, since, until)

    assert [(m.to, m.body) for m in found] == [(PATIENT, "提醒：明天上午复查")]
    assert found[0].provider_id == fake.messages[-1].sid
    assert found[0].date_created.tzinfo is not None
    assert since <= found[0].date_created <= until
    assert found[0].error_code is None


def test_find_sent_sees_messages_still_queued_without_a_date_sent() -> None:
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, queue_messages=True) as fake:
        gateway = gateway_for(fake)
        fake.fail_next(1, "500_created")
        with pytest.raises(AmbiguousSmsError):
            gateway.send(PATIENT, "queued one")
        assert fake.messages[0].date_sent is None

        found = gateway.find_sent(PATIENT, *window())

    assert [m.body for m in found] == ["queued one"]
    assert found[0].status == "accepted"


def test_find_sent_respects_the_time_window_and_the_recipient() -> None:
    start = datetime(2026, 3, 4, 10, 0, 0, 250_000, tzinfo=UTC)
    now = [start]
    with FakeTwilio(ACCOUNT_SID, AUTH_TOKEN, clock=lambda: now[0]) as fake:
        gateway = gateway_for(fake)
        gateway.send(PATIENT, "at 10:00:00")
        now[0] = start + timedelta(minutes=30)
        gateway.send(PATIENT, "at 10:30:00")
        gateway.send("+8613900000000", "someone else")

        def bodies(since: datetime, until: datetime) -> list[str]:
            return [m.body for m in gateway.find_sent(PATIENT, since, until)]

        # Twilio has whole seconds: a window opening 0.25 s after creation still sees it.
        assert bodies(start, start + timedelta(hours=1)) == ["at 10:30:00", "at 10:00:00"]
        assert bodies(start + timedelta(minutes=1), start + timedelta(hours=1)) == ["at 10:30:00"]
        assert bodies(start - timedelta(hours=1), start + timedelta(minutes=29)) == ["at 10:00:00"]
        assert bodies(start + timedelta(hours=1), start + timedelta(hours=2)) == []
        with pytest.raises(ValueError, match="aware"):
            gateway.find_sent(PATIENT, start.replace(tzinfo=None), start)


def test_find_sent_follows_pages(fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(twilio_module, "LIST_PAGE_SIZE", 3)
    gateway = gateway_for(fake)
    for number in range(8):
        gateway.send(PATIENT, f"message {number}")

    found = gateway.find_sent(PATIENT, *window())

    assert sorted(m.body for m in found) == [f"message {n}" for n in range(8)]
    list_requests = [r for r in fake.requests if r.method == "GET"]
    assert len(list_requests) == 3
    assert list_requests[0].query == {"To": PATIENT, "PageSize": "3"}


def test_find_sent_errors_are_retryable_because_reading_is_safe(fake: FakeTwilio) -> None:
    fake.fail_next(1, "500", methods=("GET",))
    with pytest.raises(RetryableSmsError):
        gateway_for(fake).find_sent(PATIENT, *window())


def test_one_gateway_is_safe_to_share_between_threads(fake: FakeTwilio) -> None:
    gateway = gateway_for(fake)
    sids: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        for number in range(25):
            sid = gateway.send(f"+86139{index:02d}{number:06d}", "hi").provider_id
            with lock:
                sids.append(sid)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(sids) == len(set(sids)) == 200
    assert sorted(sids) == sorted(m.sid for m in fake.messages)


def test_redirecting_client_keeps_path_and_query_and_leaves_other_hosts_alone() -> None:
    client = twilio_module.RedirectingHttpClient("http://127.0.0.1:9999/proxy/", 1.0)
    assert (
        client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1")
        == "http://127.0.0.1:9999/proxy/2010-04-01/Accounts/AC1/Messages.json?To=%2B1"
    )
    assert client.rewrite("https://example.org/x") == "https://example.org/x"
    assert client.session is not None and client.session.trust_env is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"from_number": None, "messaging_service_sid": None}, "from_number"),
        ({"timeout": 0}, "timeout"),
        ({"validity_period": 36001}, "validity_period"),
    ],
)
def test_gateway_rejects_bad_options(options: dict, message: str) -> None:
    arguments = {"from_number": "+15005550006", **options}
    with pytest.raises(ValueError, match=message):
        TwilioGateway(ACCOUNT_SID, AUTH_TOKEN, **arguments)


# make_gateway


def twilio_settings(fake: FakeTwilio, **changes: object) -> dict:
    settings = {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "",
        "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
        "TWILIO_TIMEOUT": "2.5",
        "TWILIO_VALIDITY_PERIOD": "7200",
        "TWILIO_BASE_URL": fake.base_url,
    }
    settings.update(changes)
    return settings


def test_make_gateway_builds_a_working_twilio_gateway(fake: FakeTwilio) -> None:
    gateway = make_gateway(twilio_settings(fake))

    assert isinstance(gateway, TwilioGateway)
    assert gateway.name == "twilio"
    assert gateway.timeout == 2.5
    gateway.send(PATIENT, "hi")
    assert fake.requests[0].form["ValidityPeriod"] == "7200"
    assert fake.requests[0].form["MessagingServiceSid"] == SERVICE_SID


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"TWILIO_ACCOUNT_SID": None}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_AUTH_TOKEN": "  "}, "TWILIO_AUTH_TOKEN"),
        ({"TWILIO_MESSAGING_SERVICE_SID": ""}, "TWILIO_MESSAGING_SERVICE_SID"),
        ({"TWILIO_TIMEOUT": "soon"}, "TWILIO_TIMEOUT"),
        ({"TWILIO_VALIDITY_PERIOD": "an hour"}, "TWILIO_VALIDITY_PERIOD"),
    ],
)
def test_make_gateway_names_the_missing_or_bad_setting(
    fake: FakeTwilio, changes: dict, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        make_gateway(twilio_settings(fake, **changes))


def test_make_gateway_lists_known_backends_for_an_unknown_one() -> None:
    with pytest.raises(ValueError, match="console, twilio"):
        make_gateway({"SMS_BACKEND": "carrier-pigeon"})


def test_make_gateway_defaults_to_the_console() -> None:
    assert isinstance(make_gateway({}), ConsoleGateway)
    assert isinstance(make_gateway({"SMS_BACKEND": "Console"}), ConsoleGateway)


# console gateway


def test_console_gateway_logs_and_remembers_what_it_sent(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    gateway = ConsoleGateway(stream=stream)
    assert isinstance(gateway, SmsGateway)
    since = utcnow()

    with caplog.at_level(logging.INFO, logger="cadence.sms.console"):
        sent = gateway.send(PATIENT, "【江苏省肿瘤医院】明天复查")
    gateway.send("+8613900000000", "other")

    assert sent.provider_id.startswith("console-") and len(sent.provider_id) == 40
    assert mask_phone(PATIENT) in caplog.text and "1 segment(s)" in caplog.text
    assert PATIENT not in caplog.text and "明天复查" not in caplog.text  # INFO: no number, no body
    assert stream.getvalue().count("\n") == 2 and "明天复查" in stream.getvalue()
    found = gateway.find_sent(PATIENT, since, utcnow())
    assert [(m.provider_id, m.body) for m in found] == [
        (sent.provider_id, "【江苏省肿瘤医院】明天复查")
    ]
    assert (
        gateway.find_sent(PATIENT, since - timedelta(hours=1), since - timedelta(seconds=1)) == []
    )
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="cadence.sms.console"):
        gateway.send(PATIENT, "【江苏省肿瘤医院】后天复查")
    assert "后天复查" in caplog.text  # bodies only at DEBUG


def test_console_gateway_is_thread_safe() -> None:
    gateway = ConsoleGateway(logger=logging.getLogger("test.console.quiet"))
    threads = [
        threading.Thread(target=lambda: [gateway.send(PATIENT, "x") for _ in range(100)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({m.provider_id for m in gateway.sent}) == 800
