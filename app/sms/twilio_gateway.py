"""Twilio gateway: the official SDK with an explicit timeout and careful error mapping.

Thread safety: a ``TwilioGateway`` may be shared by any number of threads. Each thread lazily
gets its own ``twilio.rest.Client`` and HTTP session (``threading.local``), because a
``requests.Session`` is not documented as thread-safe; connections are pooled per thread.

Error mapping (see app/sms/base.py for what callers do with each):
- HTTP 429 / code 20429, connection refused, DNS failure, connect timeout -> RetryableSmsError
  (the request never reached Twilio, or Twilio refused it before creating anything);
- HTTP 401/403 -> SmsAuthError (retryable: nothing was sent, the settings must be fixed);
- 21610 -> TerminalSmsError("opted_out"); 21211, 21217, 21401, 21407, 21612, 21614 ->
  TerminalSmsError("invalid_number"); any other 4xx -> TerminalSmsError("rejected");
- read timeout, 5xx, connection dropped after the request was written, unreadable answer ->
  AmbiguousSmsError (the message MAY exist: reconcile with ``find_sent`` before resending).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from app.sms.base import (
    AmbiguousSmsError,
    ProviderMessage,
    RetryableSmsError,
    SentMessage,
    SmsAuthError,
    SmsError,
    TerminalSmsError,
)
from app.sms.privacy import mask_phone, mask_sensitive, quiet_third_party_loggers

_logger = logging.getLogger("cadence.sms.twilio")

OPTED_OUT_CODES: frozenset[int] = frozenset({21610})
INVALID_NUMBER_CODES: frozenset[int] = frozenset({21211, 21217, 21401, 21407, 21612, 21614})
RETRYABLE_CODES: frozenset[int] = frozenset({20429, 21611})
MAX_VALIDITY_PERIOD = 36_000
LIST_PAGE_SIZE = 200
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class RedirectingHttpClient(TwilioHttpClient):
    """A TwilioHttpClient that sends every *.twilio.com request to ``base_url`` instead.

    Used for the loopback fake in tests or a Twilio-compatible proxy; the path and query are
    kept. Environment proxies are ignored for a loopback ``base_url``.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        self._base = parts
        if self.session is not None and parts.hostname in LOOPBACK_HOSTS:
            self.session.trust_env = False

    def rewrite(self, url: str) -> str:
        """Return ``url`` with a Twilio host replaced by the base URL (path kept)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            return url
        path = self._base.path + parts.path
        return urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send the request to the rewritten URL."""
        return super().request(method, self.rewrite(url), *args, **kwargs)


def _is_connect_failure(exc: BaseException) -> bool:
    """True when a requests error happened while connecting, before anything was sent."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, MaxRetryError):
            return isinstance(arg.reason, (NewConnectionError, ConnectTimeoutError))
        if isinstance(arg, (NewConnectionError, ConnectTimeoutError)):
            return True
    return False


def classify_http_error(status: int | None, code: int | None, detail: str) -> SmsError:
    """Map a Twilio HTTP error answer to our typed error (for a request that CREATES)."""
    if status == 429 or code in RETRYABLE_CODES:
        return RetryableSmsError(
            f"Twilio is rate limiting: {detail}", provider_code=code, http_status=status
        )
    if status in (401, 403):
        return SmsAuthError(
            "Twilio rejected the credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
            f" ({detail})",
            provider_code=code,
            http_status=status,
        )
    if code in OPTED_OUT_CODES:
        return TerminalSmsError(
            f"recipient opted out: {detail}",
            reason="opted_out",
            provider_code=code,
            http_status=status,
        )
    if code in INVALID_NUMBER_CODES:
        return TerminalSmsError(
            f"invalid or unreachable number: {detail}",
            reason="invalid_number",
            provider_code=code,
            http_status=status,
        )
    if status is not None and 400 <= status < 500:
        return TerminalSmsError(
            f"Twilio rejected the message: {detail}",
            reason="rejected",
            provider_code=code,
            http_status=status,
        )
    return AmbiguousSmsError(
        f"Twilio answered with an error; the message may exist: {detail}",
        provider_code=code,
        http_status=status,
    )


def _error_from_page_exception(exc: TwilioException) -> tuple[int | None, int | None, str]:
    """Status, code and text of the plain TwilioException raised for a failed list page."""
    response = exc.args[1] if len(exc.args) > 1 else None
    status = getattr(response, "status_code", None)
    code = None
    text = str(exc.args[0]) if exc.args else "error"
    try:
        payload = json.loads(getattr(response, "text", "") or "{}")
        code = payload.get("code")
        text = payload.get("message", text)
    except (ValueError, AttributeError):
        pass
    return status, code, text


def translate_exception(exc: Exception) -> SmsError:
    """Translate any exception raised by the SDK while CREATING a message."""
    if isinstance(exc, SmsError):
        return exc
    if isinstance(exc, TwilioException) and hasattr(exc, "status"):
        status = getattr(exc, "status", None)
        code = getattr(exc, "code", None)
        detail = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
        return classify_http_error(status, code, str(detail))
    if isinstance(exc, TwilioException):
        return classify_http_error(*_error_from_page_exception(exc))
    if isinstance(exc, requests.exceptions.RequestException) and _is_connect_failure(exc):
        return RetryableSmsError(f"could not connect to Twilio, nothing was sent: {exc}")
    if isinstance(exc, requests.exceptions.Timeout):
        return AmbiguousSmsError(f"Twilio did not answer in time; the message may exist: {exc}")
    if isinstance(exc, requests.exceptions.RequestException):
        return AmbiguousSmsError(f"connection to Twilio failed mid-request: {exc}")
    return AmbiguousSmsError(f"unexpected error while sending through Twilio: {exc!r}")


def translate_read_exception(exc: Exception) -> SmsError:
    """Translate an SDK error raised while READING (listing is idempotent: retry is safe)."""
    error = translate_exception(exc)
    if isinstance(error, AmbiguousSmsError):
        return RetryableSmsError(
            f"could not list messages: {error.message}",
            provider_code=error.provider_code,
            http_status=error.http_status,
        )
    return error


def _masked(number: str) -> str:
    """A phone number masked for logs (+86138****0001)."""
    return mask_phone(number)


def _floor_to_second(moment: datetime) -> datetime:
    """Drop sub-second precision (Twilio timestamps have whole seconds)."""
    return moment.replace(microsecond=0)


class TwilioGateway:
    """Sends SMS through Twilio's Messages API with the official SDK; thread-safe."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        timeout: float = 10.0,
        validity_period: int | None = None,
        base_url: str | None = None,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("TwilioGateway needs an account SID and an auth token")
        if not from_number and not messaging_service_sid:
            raise ValueError("TwilioGateway needs from_number or messaging_service_sid")
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if validity_period is not None and not 1 <= validity_period <= MAX_VALIDITY_PERIOD:
            raise ValueError(f"validity_period must be 1..{MAX_VALIDITY_PERIOD} seconds")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.from_number = from_number or None
        self.messaging_service_sid = messaging_service_sid or None
        self.timeout = float(timeout)
        self.validity_period = validity_period
        self.base_url = base_url or None
        self._local = threading.local()
        quiet_third_party_loggers()  # the SDK logs every request's To number at INFO

    def _client(self) -> Client:
        """This thread's SDK client (created on first use)."""
        client = getattr(self._local, "client", None)
        if client is None:
            if self.base_url:
                http_client = RedirectingHttpClient(self.base_url, self.timeout)
            else:
                http_client = TwilioHttpClient(timeout=self.timeout)
            client = Client(self.account_sid, self._auth_token, http_client=http_client)
            self._local.client = client
        return client

    def _create_params(self, to: str, body: str, status_callback: str | None) -> dict[str, Any]:
        """Keyword arguments for messages.create (unset values left out)."""
        params: dict[str, Any] = {"to": to, "body": body}
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        if self.from_number:
            params["from_"] = self.from_number
        if status_callback:
            params["status_callback"] = status_callback
        if self.validity_period is not None:
            params["validity_period"] = self.validity_period
        return params

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        reference: str | None = None,
    ) -> SentMessage:
        """Create the message at Twilio; return its SID or raise a typed ``SmsError``."""
        try:
            message = self._client().messages.create(
                **self._create_params(to, body, status_callback)
            )
        except Exception as exc:
            error = translate_exception(exc)
            _logger.warning("Twilio send to %s failed: %s", _masked(to), mask_sensitive(str(error)))
            raise error from exc
        if not message.sid:
            raise AmbiguousSmsError("Twilio accepted the request but returned no message SID")
        _logger.debug("Twilio accepted %s for %s (%s)", message.sid, _masked(to), message.status)
        return SentMessage(provider_id=message.sid, status=message.status or "queued")

    def find_sent(self, to: str, since: datetime, until: datetime) -> list[ProviderMessage]:
        """Messages to ``to`` created in [since, until], newest first (RetryableSmsError on error).

        Lists by recipient only and filters on ``date_created`` here, because Twilio's
        DateSent filter misses messages still queued (their date_sent is null), which is
        exactly the state of a message created just before a timeout. Paging stops once a
        whole page is older than ``since`` (Twilio lists newest first).
        """
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("find_sent needs aware datetimes")
        low, high = _floor_to_second(since), until
        try:
            return self._collect(to, low, high)
        except Exception as exc:
            raise translate_read_exception(exc) from exc

    def _collect(self, to: str, low: datetime, high: datetime) -> list[ProviderMessage]:
        """Walk the pages of messages to ``to`` and keep those created in [low, high]."""
        found: list[ProviderMessage] = []
        stop_before = low - timedelta(days=1)
        page = self._client().messages.page(to=to, page_size=LIST_PAGE_SIZE)
        while page is not None:
            records = list(page)
            for record in records:
                created = record.date_created or record.date_sent or record.date_updated
                if created is None or low <= created <= high:
                    found.append(self._provider_message(record, created or high))
            if records and all(
                r.date_created is not None and r.date_created < stop_before for r in records
            ):
                break
            page = page.next_page()
        return sorted(found, key=lambda m: m.date_created, reverse=True)

    @staticmethod
    def _provider_message(record: Any, created: datetime) -> ProviderMessage:
        """Convert an SDK MessageInstance."""
        return ProviderMessage(
            provider_id=record.sid,
            to=record.to,
            body=record.body or "",
            status=record.status or "unknown",
            date_created=created,
            error_code=record.error_code,
        )
