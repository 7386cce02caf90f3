"""Tencent Cloud SMS gateway (``tencentcloud.sms.v20210111``): approved templates only.

Each text is matched to its approved template (app/sms/templates.py) and sent as TemplateId
plus TemplateParamSet; the outbox id travels as SessionContext, which comes back in receipts and
in ``PullSmsSendStatusByPhoneNumber``, so the reconciler finds a message by it before any resend.
``send_batch`` sends one text to up to 200 numbers in one SendSms (PhoneNumberSet); each number
gets its own SendStatus (SerialNo or Code), and the batch's outbox ids share one SessionContext
(``"12-40,57"``) that every member carries, so reconciliation by number + id stays exact.

Error mapping (see app/sms/base.py): per-number ``Code`` "Ok" -> sent; frequency limits,
RequestLimitExceeded, an empty package and a connection never made -> RetryableSmsError;
AuthFailure -> SmsAuthError; the blacklist (unsubscribed) -> opted_out; a bad number ->
invalid_number; template / signature / parameter refusals -> rejected; a read timeout, HTTP
errors and InternalError -> AmbiguousSmsError (reconcile first).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

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
)
from app.sms.privacy import mask_phone
from app.sms.templates import TemplateCatalogue, TemplateError

_logger = logging.getLogger("cadence.sms.tencent")

RETRYABLE_PREFIXES = ("LimitExceeded.", "RequestLimitExceeded")
RETRYABLE_CODES = frozenset({"FailedOperation.InsufficientBalanceInSmsPackage"})
OPTED_OUT_CODES = frozenset({"FailedOperation.PhoneNumberInBlacklist"})
INVALID_NUMBER_CODES = frozenset(
    {
        "InvalidParameterValue.IncorrectPhoneNumber",
        "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
        "FailedOperation.PhoneNumberParseFail",
    }
)
CONNECT_FAILURES = ("ConnectTimeout", "NewConnectionError", "Connection refused")
MAX_SESSION_CONTEXT = 512
MAX_BATCH = 200  # numbers in one SendSms PhoneNumberSet
PULL_LIMIT = 100


def classify(code: str, message: str) -> SmsError:
    """Map a Tencent error code (request-level or per number) to our typed error."""
    detail = f"{code}: {message}"
    if code.startswith(RETRYABLE_PREFIXES) or code in RETRYABLE_CODES:
        return RetryableSmsError(f"Tencent Cloud refused for now: {detail}", http_status=None)
    if code.startswith("AuthFailure") or code == "UnauthorizedOperation.SmsSdkAppIdVerifyFail":
        return SmsAuthError(f"Tencent Cloud rejected the credentials or app id: {detail}")
    if code in OPTED_OUT_CODES:
        return TerminalSmsError(f"recipient unsubscribed: {detail}", reason="opted_out")
    if code in INVALID_NUMBER_CODES:
        return TerminalSmsError(f"invalid number: {detail}", reason="invalid_number")
    if code == "ClientNetworkError":
        if (
            any(marker in message for marker in CONNECT_FAILURES)
            and "Read timed out" not in message
        ):
            return RetryableSmsError(f"could not connect to Tencent Cloud, nothing sent: {detail}")
        return AmbiguousSmsError(f"Tencent Cloud did not answer; the message may exist: {detail}")
    if code in ("ServerNetworkError",) or code.startswith("InternalError"):
        return AmbiguousSmsError(f"Tencent Cloud failed; the message may exist: {detail}")
    if code.startswith(("FailedOperation", "InvalidParameter", "MissingParameter", "Unsupported")):
        return TerminalSmsError(f"Tencent Cloud refused the message: {detail}", reason="rejected")
    if code.startswith("UnauthorizedOperation"):
        return TerminalSmsError(f"Tencent Cloud refused the message: {detail}", reason="rejected")
    return AmbiguousSmsError(f"unexpected answer from Tencent Cloud: {detail}")


class TencentGateway:
    """Sends approved templates through Tencent Cloud SMS; thread-safe (one client per thread)."""

    name = "tencent"
    max_batch = MAX_BATCH
    reference_room = MAX_SESSION_CONTEXT - 1  # "under 512 bytes"

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        *,
        sdk_app_id: str,
        sign_name: str,
        templates: TemplateCatalogue,
        region: str = "ap-guangzhou",
        timeout: float = 10.0,
        endpoint: str | None = None,
    ) -> None:
        if not secret_id or not secret_key or not sdk_app_id or not sign_name:
            raise ValueError(
                "TencentGateway needs a secret id and key, an SmsSdkAppId and a SignName"
            )
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self._credential = credential.Credential(secret_id, secret_key)
        self.sdk_app_id = sdk_app_id
        self.sign_name = sign_name
        self.templates = templates
        self.region = region
        self.timeout = timeout
        self.endpoint = endpoint
        self._local = threading.local()

    def _client(self) -> sms_client.SmsClient:
        """This thread's SDK client (an endpoint override speaks plain HTTP to a loopback fake)."""
        client = getattr(self._local, "client", None)
        if client is None:
            http = HttpProfile(reqTimeout=max(round(self.timeout), 1))
            if self.endpoint:
                scheme, _, host = self.endpoint.rpartition("://")
                http.endpoint = host
                http.protocol = http.scheme = scheme or "https"
            client = sms_client.SmsClient(
                self._credential, self.region, ClientProfile(httpProfile=http)
            )
            self._local.client = client
        return client

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        reference: str | None = None,
    ) -> SentMessage:
        """Send ``body`` as its approved template; return the SerialNo or raise ``SmsError``."""
        context = reference[:MAX_SESSION_CONTEXT] if reference else None
        response = self._send_sms([to], body, context)
        return self._sent(to, response)

    def send_batch(
        self,
        to_list: Sequence[str],
        body: str,
        *,
        references: Sequence[str],
        status_callbacks: Sequence[str | None] | None = None,
    ) -> list[SentMessage | SmsError]:
        """One SendSms to every number (PhoneNumberSet); each number's SerialNo or error.

        The outbox ids go as one SessionContext (``encode_references``), which Tencent keeps
        with every member, so ``find_sent`` finds each member by its number and its id.
        Receipts go where the SMS console says (``status_callbacks`` is not used).
        """
        if not to_list or len(to_list) != len(references):
            raise ValueError("send_batch needs one reference per number")
        if len(to_list) > self.max_batch or len(set(to_list)) != len(to_list):
            raise ValueError(f"a batch holds at most {self.max_batch} distinct numbers")
        if len({to.startswith("+86") for to in to_list}) > 1:
            raise ValueError("a batch is all mainland or all international numbers")
        context = encode_references(references)
        if len(context.encode()) > self.reference_room:
            raise ValueError("the batch's references do not fit in SessionContext")
        try:
            response = self._send_sms(list(to_list), body, context)
        except TerminalSmsError as error:
            if error.reason == "rejected":
                raise
            # names a number but not whose: nothing was created, each member goes alone
            return [SendAloneError(f"batch refused: {error}") for _ in to_list]
        by_number = {status.PhoneNumber: status for status in response.SendStatusSet or []}
        return [self._member(to, by_number.get(to)) for to in to_list]

    def _send_sms(self, phones: list[str], body: str, context: str | None) -> Any:
        """One SendSms request for ``phones``; its response, or the request's ``SmsError``."""
        try:
            resolved = self.templates.resolve(body, self.name)
        except TemplateError as exc:
            raise TerminalSmsError(str(exc), reason="rejected") from exc
        request = models.SendSmsRequest()
        request.SmsSdkAppId = self.sdk_app_id
        request.SignName = self.sign_name
        request.TemplateId = resolved.template_id
        request.TemplateParamSet = resolved.values
        request.PhoneNumberSet = phones
        if context:
            request.SessionContext = context
        try:
            return self._client().SendSms(request)
        except TencentCloudSDKException as exc:
            error = classify(exc.get_code() or "", exc.get_message() or "")
            masked = ", ".join(mask_phone(p) for p in phones[:3])
            _logger.warning("Tencent send to %s (%d) failed: %s", masked, len(phones), error)
            raise error from exc
        except Exception as exc:
            raise AmbiguousSmsError(f"unexpected error from the Tencent SDK: {exc!r}") from exc

    def _member(self, to: str, status: Any) -> SentMessage | SmsError:
        """One member's outcome in a batch answer (no status for it: it may exist)."""
        if status is None:
            return AmbiguousSmsError("Tencent answered no status for this number")
        try:
            return self._status(to, status)
        except SmsError as error:
            return error

    def _sent(self, to: str, response: Any) -> SentMessage:
        """The one SendStatus of our number, as SentMessage or an SmsError."""
        statuses = list(response.SendStatusSet or [])
        if len(statuses) != 1:
            raise AmbiguousSmsError(f"Tencent answered {len(statuses)} statuses for one number")
        return self._status(to, statuses[0])

    def _status(self, to: str, status: Any) -> SentMessage:
        """One number's SendStatus as SentMessage, or raise its SmsError."""
        if status.Code != "Ok":
            error = classify(status.Code or "", status.Message or "")
            _logger.warning("Tencent refused %s: %s", mask_phone(to), error)
            raise error
        if not status.SerialNo:
            raise AmbiguousSmsError("Tencent accepted the request but returned no SerialNo")
        return SentMessage(provider_id=status.SerialNo, status="queued", provider=self.name)

    def find_sent(self, to: str, since: datetime, until: datetime) -> list[ProviderMessage]:
        """Messages to ``to`` in [since, until] with their SessionContext (RetryableSmsError)."""
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("find_sent needs aware datetimes")
        found: list[ProviderMessage] = []
        offset = 0
        while True:
            page = self._status_page(to, since, until, offset)
            found.extend(self._provider_message(item, until) for item in page)
            if len(page) < PULL_LIMIT:
                break
            offset += PULL_LIMIT
        return sorted(found, key=lambda m: m.date_created, reverse=True)

    def _status_page(self, to: str, since: datetime, until: datetime, offset: int) -> list[Any]:
        request = models.PullSmsSendStatusByPhoneNumberRequest()
        request.from_json_string(
            json.dumps(
                {
                    "BeginTime": int(since.timestamp()),
                    "EndTime": int(until.timestamp()) + 1,
                    "Offset": offset,
                    "Limit": PULL_LIMIT,
                    "PhoneNumber": to,
                    "SmsSdkAppId": self.sdk_app_id,
                }
            )
        )
        try:
            response = self._client().PullSmsSendStatusByPhoneNumber(request)
        except TencentCloudSDKException as exc:
            raise RetryableSmsError(
                f"could not list Tencent statuses: {exc.get_message()}"
            ) from exc
        return list(response.PullSmsSendStatusSet or [])

    def _provider_message(self, item: Any, default: datetime) -> ProviderMessage:
        when = item.UserReceiveTime
        created = datetime.fromtimestamp(int(when), UTC) if when else default
        status = {"SUCCESS": "delivered", "FAIL": "undelivered"}.get(item.ReportStatus, "sent")
        return ProviderMessage(
            provider_id=item.SerialNo,
            to=item.PhoneNumber or "",
            body="",
            status=status,
            date_created=created,
            reference=item.SessionContext or None,
            provider=self.name,
        )

    def pull_receipts(self) -> list[dict[str, Any]]:
        """New delivery receipts (PullSmsSendStatus) in the callback's shape."""
        request = models.PullSmsSendStatusRequest()
        request.SmsSdkAppId = self.sdk_app_id
        request.Limit = PULL_LIMIT
        try:
            response = self._client().PullSmsSendStatus(request)
        except TencentCloudSDKException as exc:
            raise RetryableSmsError(
                f"could not pull Tencent receipts: {exc.get_message()}"
            ) from exc
        return [
            {
                "sid": item.SerialNo,
                "mobile": item.SubscriberNumber or item.PhoneNumber,
                "report_status": item.ReportStatus,
                "description": item.Description,
                "errmsg": item.Description,
                "ext": item.SessionContext,
                "user_receive_time": item.UserReceiveTime,
            }
            for item in response.PullSmsSendStatusSet or []
        ]

    def pull_replies(self) -> list[dict[str, Any]]:
        """New patient replies (PullSmsReplyStatus) in the callback's shape."""
        request = models.PullSmsReplyStatusRequest()
        request.SmsSdkAppId = self.sdk_app_id
        request.Limit = PULL_LIMIT
        try:
            response = self._client().PullSmsReplyStatus(request)
        except TencentCloudSDKException as exc:
            raise RetryableSmsError(f"could not pull Tencent replies: {exc.get_message()}") from exc
        return [
            {
                "mobile": item.SubscriberNumber,
                "nationcode": item.CountryCode,
                "text": item.ReplyContent,
                "time": item.ReplyTime,
                "sign": item.SignName,
                "extend": item.ExtendCode,
            }
            for item in response.PullSmsReplyStatusSet or []
        ]
