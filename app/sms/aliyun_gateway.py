"""Alibaba Cloud SMS gateway (``alibabacloud_dysmsapi20170525``): approved templates only.

Each text is matched to its approved template (app/sms/templates.py) and sent as TemplateCode
plus TemplateParam (JSON); the outbox id travels as OutId, which comes back in receipts and in
``QuerySendDetails``. Alibaba has no idempotency key: the outbox is the only guard, and the
reconciler looks a message up by OutId before any resend. SDK retries are off.

``send_batch`` sends one text to up to 100 numbers in one SendBatchSms. Alibaba answers one
BizId for the batch and no status per number, so each member is known as ``<BizId>:<number>``
(receipts carry both); the batch's outbox ids go as one OutId (``"12-40,57"``, under 256
characters) that QuerySendDetails returns for every member, so the reconciler finds each member
by its own number and its id in the list (found that way, a member is ``outid:<hash of
OutId>:<number>`` until its receipt names it). A batch refused for a reason that may be one
number's (invalid, unsubscribed, that number's frequency limit) created nothing: each member is
sent alone (``SendAloneError``: the dispatcher sends each member by itself) and gets its own
answer.

Error mapping (see app/sms/base.py): Code "OK" -> sent; frequency / daily limits, throttling, an
empty balance and a connection never made -> RetryableSmsError; bad keys or signature ->
SmsAuthError; an illegal number -> invalid_number; template / signature / parameter refusals
-> rejected; a read timeout, HTTP 5xx and isp.* errors -> AmbiguousSmsError.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import utils_models as open_api_models
from darabonba.runtime import RuntimeOptions

from app import clock
from app.sms.base import (
    AmbiguousSmsError,
    ProviderMessage,
    RetryableSmsError,
    SendAloneError,
    SentMessage,
    SmsAuthError,
    SmsError,
    TerminalSmsError,
    encode_references,
    reference_ids,
)
from app.sms.privacy import mask_phone
from app.sms.templates import TemplateCatalogue, TemplateError

_logger = logging.getLogger("cadence.sms.aliyun")

CHINA = ZoneInfo("Asia/Shanghai")
RETRYABLE_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",
        "isv.DAY_LIMIT_CONTROL",
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "Throttling.User",
        "Throttling.Api",
        "Throttling",
    }
)
AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "SignatureDoesNotMatch",
        "isv.ACCOUNT_ABNORMAL",
        "isp.RAM_PERMISSION_DENY",
    }
)
INVALID_NUMBER_CODES = frozenset({"isv.MOBILE_NUMBER_ILLEGAL", "isv.INVALID_PHONE_NUMBER"})
OPTED_OUT_CODES = frozenset({"isv.MOBILE_IN_BLACK", "isv.USER_UNSUBSCRIBED"})
CONNECT_FAILURES = ("NewConnectionError", "ConnectTimeout", "Connection refused")
PER_NUMBER_CODES = (
    INVALID_NUMBER_CODES
    | OPTED_OUT_CODES
    | {
        "isv.BUSINESS_LIMIT_CONTROL",
        "isv.DAY_LIMIT_CONTROL",
    }
)
MAX_BATCH = 100  # numbers in one SendBatchSms
MAX_OUT_ID = 256  # OutId must be shorter
PAGE_SIZE = 50
MAX_QUERY_DAYS = 30
SEND_STATUS = {1: "sent", 2: "undelivered", 3: "delivered"}


def classify(code: str, message: str, http_status: int | None = None) -> SmsError:
    """Map an Alibaba error code to our typed error."""
    detail = f"{code}: {message}"
    if code in RETRYABLE_CODES or code.startswith("Throttling") or http_status == 429:
        return RetryableSmsError(
            f"Alibaba Cloud refused for now: {detail}", http_status=http_status
        )
    if code in AUTH_CODES or http_status in (401, 403):
        return SmsAuthError(f"Alibaba Cloud rejected the credentials: {detail}")
    if code in OPTED_OUT_CODES:
        return TerminalSmsError(f"recipient unsubscribed: {detail}", reason="opted_out")
    if code in INVALID_NUMBER_CODES:
        return TerminalSmsError(f"invalid number: {detail}", reason="invalid_number")
    if code.startswith("isp.") or (http_status is not None and http_status >= 500):
        return AmbiguousSmsError(f"Alibaba Cloud failed; the message may exist: {detail}")
    return TerminalSmsError(f"Alibaba Cloud refused the message: {detail}", reason="rejected")


def translate_exception(exc: Exception) -> SmsError:
    """Translate an SDK exception raised while sending."""
    code = getattr(exc, "code", None)
    status = getattr(exc, "status_code", None)
    if code is not None and status is not None:
        return classify(str(code), str(getattr(exc, "message", "") or exc), int(status))
    inner = repr(getattr(exc, "inner_exception", exc))
    # The SDK's text holds the request URL with the phone number: keep only the cause.
    if "Read timed out" in inner:
        return AmbiguousSmsError("Alibaba Cloud did not answer in time; the message may exist")
    if any(marker in inner for marker in CONNECT_FAILURES):
        return RetryableSmsError("could not connect to Alibaba Cloud, nothing was sent")
    return AmbiguousSmsError(
        f"Alibaba Cloud request failed; the message may exist ({type(exc).__name__})"
    )


class _Refused(Exception):
    """SendSms / SendBatchSms answered a refusal ``code`` (``error``: what it means)."""

    def __init__(self, code: str, error: SmsError) -> None:
        super().__init__(code)
        self.code = code
        self.error = error


def _answer(call: Callable[[], Any], whom: str) -> Any:
    """The body of an accepted SendSms / SendBatchSms answer (``whom``: for the log, masked);
    the SDK's failure as its ``SmsError``, a refusal as ``_Refused``."""
    try:
        response = call()
    except Exception as exc:
        error = translate_exception(exc)
        _logger.warning("Alibaba send to %s failed: %s", whom, error)
        raise error from exc
    answer = response.body
    if answer is None or answer.code != "OK":
        code = answer.code if answer is not None else "NoBody"
        error = classify(code or "", answer.message if answer is not None else "")
        _logger.warning("Alibaba refused %s: %s", whom, error)
        raise _Refused(code or "", error)
    return answer


class AliyunGateway:
    """Sends approved templates through Alibaba Cloud SMS; thread-safe (one client per thread)."""

    name = "aliyun"
    max_batch = MAX_BATCH
    reference_room = MAX_OUT_ID - 1

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        sign_name: str,
        templates: TemplateCatalogue,
        timeout: float = 10.0,
        endpoint: str | None = None,
    ) -> None:
        if not access_key_id or not access_key_secret or not sign_name:
            raise ValueError("AliyunGateway needs an AccessKey id and secret and a SignName")
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self._key_id = access_key_id
        self._key_secret = access_key_secret
        self.sign_name = sign_name
        self.templates = templates
        self.timeout = timeout
        self.endpoint = endpoint or "dysmsapi.aliyuncs.com"
        self._local = threading.local()

    def _client(self) -> Client:
        """This thread's SDK client (``http://host:port`` speaks plain HTTP to a loopback fake)."""
        client = getattr(self._local, "client", None)
        if client is None:
            scheme, _, host = self.endpoint.rpartition("://")
            config = open_api_models.Config(
                access_key_id=self._key_id,
                access_key_secret=self._key_secret,
                endpoint=host,
                protocol=scheme or "https",
                read_timeout=int(self.timeout * 1000),
                connect_timeout=int(min(self.timeout, 5) * 1000),
            )
            client = Client(config)
            self._local.client = client
        return client

    def _runtime(self) -> RuntimeOptions:
        return RuntimeOptions(
            autoretry=False,
            read_timeout=int(self.timeout * 1000),
            connect_timeout=int(min(self.timeout, 5) * 1000),
        )

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        reference: str | None = None,
    ) -> SentMessage:
        """Send ``body`` as its approved template; return the BizId or raise ``SmsError``."""
        try:
            resolved = self.templates.resolve(body, self.name)
        except TemplateError as exc:
            raise TerminalSmsError(str(exc), reason="rejected") from exc
        request = models.SendSmsRequest(
            phone_numbers=_national(to),
            sign_name=self.sign_name,
            template_code=resolved.template_id,
            template_param=json.dumps(resolved.named, ensure_ascii=False),
            out_id=reference,
        )
        client = self._client()
        try:
            answer = _answer(
                lambda: client.send_sms_with_options(request, self._runtime()), mask_phone(to)
            )
        except _Refused as refused:
            raise refused.error from None
        if not answer.biz_id:
            raise AmbiguousSmsError("Alibaba accepted the request but returned no BizId")
        return SentMessage(provider_id=answer.biz_id, status="queued", provider=self.name)

    def send_batch(
        self,
        to_list: Sequence[str],
        body: str,
        *,
        references: Sequence[str],
        status_callbacks: Sequence[str | None] | None = None,
    ) -> list[SentMessage | SmsError]:
        """One SendBatchSms to every number; each member as ``<BizId>:<number>`` or its error."""
        if not to_list or len(to_list) != len(references):
            raise ValueError("send_batch needs one reference per number")
        if len(to_list) > self.max_batch or len(set(to_list)) != len(to_list):
            raise ValueError(f"a batch holds at most {self.max_batch} distinct numbers")
        if len(to_list) == 1:  # one number: SendSms, known by its BizId alone
            return [self._alone(to_list[0], body, references[0])]
        out_id = encode_references(references)
        if len(out_id) > self.reference_room:
            raise ValueError("the batch's references do not fit in OutId")
        try:
            biz_id = self._send_batch(to_list, body, out_id)
        except _Refused as refused:
            if refused.code not in PER_NUMBER_CODES:
                raise refused.error from None
            return [SendAloneError(f"batch refused: {refused.error}") for _ in to_list]
        return [
            SentMessage(member_id(biz_id, _national(to)), status="queued", provider=self.name)
            for to in to_list
        ]

    def _send_batch(self, to_list: Sequence[str], body: str, out_id: str) -> str:
        """The SendBatchSms request; its BizId, or the request's ``SmsError``."""
        try:
            resolved = self.templates.resolve(body, self.name)
        except TemplateError as exc:
            raise TerminalSmsError(str(exc), reason="rejected") from exc
        named = json.dumps(resolved.named, ensure_ascii=False)
        request = models.SendBatchSmsRequest(
            phone_number_json=json.dumps([_national(to) for to in to_list]),
            sign_name_json=json.dumps([self.sign_name] * len(to_list), ensure_ascii=False),
            template_code=resolved.template_id,
            template_param_json="[" + ",".join([named] * len(to_list)) + "]",
            out_id=out_id,
        )
        client = self._client()
        answer = _answer(
            lambda: client.send_batch_sms_with_options(request, self._runtime()),
            f"a batch of {len(to_list)}",
        )
        if not answer.biz_id:
            raise AmbiguousSmsError("Alibaba accepted the batch but returned no BizId")
        return str(answer.biz_id)

    def _alone(self, to: str, body: str, reference: str) -> SentMessage | SmsError:
        """One member sent by itself after its batch was refused (nothing was created)."""
        try:
            return self.send(to, body, reference=reference)
        except SmsError as error:
            return error

    def find_sent(self, to: str, since: datetime, until: datetime) -> list[ProviderMessage]:
        """Messages to ``to`` sent in [since, until] (one QuerySendDetails per China day)."""
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("find_sent needs aware datetimes")
        found: list[ProviderMessage] = []
        day = since.astimezone(CHINA).date()
        last = until.astimezone(CHINA).date()
        oldest = (clock.utcnow().astimezone(CHINA) - timedelta(days=MAX_QUERY_DAYS)).date()
        while day <= last:
            if day >= oldest:
                found.extend(self.details(to, day.strftime("%Y%m%d")))
            day += timedelta(days=1)
        inside = [m for m in found if since <= m.date_created <= until]
        return sorted(inside, key=lambda m: m.date_created, reverse=True)

    def details(self, to: str, send_date: str, biz_id: str | None = None) -> list[ProviderMessage]:
        """QuerySendDetails for one number and China day (every page); RetryableSmsError."""
        found: list[ProviderMessage] = []
        page = 1
        while True:
            request = models.QuerySendDetailsRequest(
                phone_number=_national(to),
                send_date=send_date,
                page_size=PAGE_SIZE,
                current_page=page,
                biz_id=biz_id,
            )
            try:
                response = self._client().query_send_details_with_options(request, self._runtime())
            except Exception as exc:
                raise RetryableSmsError(f"could not query Alibaba: {exc}") from exc
            body = response.body
            if body is None or body.code != "OK":
                raise RetryableSmsError(f"could not query Alibaba: {body and body.message}")
            dtos = body.sms_send_detail_dtos
            items = list(dtos.sms_send_detail_dto or []) if dtos else []
            found.extend(self._provider_message(item, to) for item in items)
            if len(items) < PAGE_SIZE:
                return found
            page += 1

    def _provider_message(self, item: Any, to: str) -> ProviderMessage:
        sent = datetime.strptime(item.send_date, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
        # QuerySendDetails has no BizId: the row is known by its OutId until a receipt names it.
        return ProviderMessage(
            provider_id=found_id(item.out_id, _national(to)) if item.out_id else "",
            to=to,
            body=item.content or "",
            status=SEND_STATUS.get(int(item.send_status or 1), "sent"),
            date_created=sent.astimezone(UTC),
            reference=item.out_id or None,
            provider=self.name,
        )


def member_id(biz_id: str, national: str) -> str:
    """A batch member's provider id: the batch's BizId and the member's number."""
    return f"{biz_id}:{national}"


def biz_id_of(provider_id: str | None) -> str | None:
    """The BizId in a stored provider id (None for one known only by its OutId)."""
    if not provider_id or provider_id.startswith("outid:"):
        return None
    return provider_id.split(":", 1)[0]


def is_batch_reference(out_id: str | None) -> bool:
    """True for an OutId naming several outbox ids (a batch's)."""
    return len(reference_ids(out_id, limit=MAX_BATCH)) > 1


def found_id(out_id: str, national: str) -> str:
    """How a message found by QuerySendDetails is known until a receipt names its BizId:
    ``outid:<id>``, or for a batch member ``outid:<hash of the OutId>:<number>``."""
    if not is_batch_reference(out_id):
        return f"outid:{out_id}"
    digest = hashlib.sha256(out_id.encode()).hexdigest()[:16]
    return f"outid:{digest}:{national}"


def _national(number: str) -> str:
    """Alibaba wants mainland numbers without +86 (others keep their country code, no '+')."""
    digits = number.lstrip("+")
    return digits[2:] if number.startswith("+86") else digits
