"""A fake Tencent Cloud SMS API (v20210111) on loopback HTTP, for tests and benchmarks.

    with FakeTencent() as fake:
        gateway = TencentGateway("id", "key", sdk_app_id=fake.app_id, ..., endpoint=fake.endpoint)

The real SDK talks to it (TC3 headers are checked for presence, not verified). It answers
SendSms, PullSmsSendStatus, PullSmsReplyStatus and PullSmsSendStatusByPhoneNumber like Tencent
(per-number SendStatusSet codes, request-level Error; a SendSms to up to 200 numbers creates one
message per number, each with its own SerialNo and the request's SessionContext), enforces approved templates and their
parameter count, the 30-second same-content limit and a daily limit per number, and produces
delivery receipts and replies for pull or push (``push_receipts``, ``push_reply``).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.clock import utcnow
from app.sms.templates import TemplateCatalogue
from tests.fakes.loopback import CREATING, LoopbackFake, _Handler

APP_ID = "1400000001"
MAX_NUMBERS = 200  # PhoneNumberSet per SendSms
MAX_SESSION_CONTEXT = 512  # bytes; SessionContext must be shorter


@dataclass
class TencentMessage:
    """One message as the fake keeps it."""

    serial_no: str
    phone: str
    template_id: str
    params: list[str]
    sign: str
    session_context: str
    created: datetime
    report_status: str = "SUCCESS"
    text: str = ""


@dataclass
class TencentState:
    """What the fake has seen and queued."""

    messages: list[TencentMessage] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


class FakeTencent(LoopbackFake):
    """Fake Tencent Cloud SMS (see the module docstring)."""

    thread_name = "fake-tencent"
    content_type = "application/json"  # exactly: the SDK reads errors only for this type

    def __init__(self, *, app_id: str = APP_ID, daily_limit: int = 10) -> None:
        super().__init__()
        self.app_id = app_id
        self.daily_limit = daily_limit
        catalogue = TemplateCatalogue.load()
        self.templates = {t.ids["tencent"]: t for t in catalogue.templates if "tencent" in t.ids}
        self.state = TencentState()
        self.number_errors: dict[str, str] = {}
        self.request_error: str | None = None
        self.batch_error: str | None = None  # refuses requests to more than one number
        self._state_lock = threading.Lock()
        # Held from the limit check to the append, so concurrent sends cannot both pass a limit
        self._admission = threading.Lock()

    # -- programming ---------------------------------------------------------------------

    def set_number_error(self, phone: str, code: str | None) -> None:
        """Answer sends to ``phone`` with this per-number Code (None: clear)."""
        if code is None:
            self.number_errors.pop(phone, None)
        else:
            self.number_errors[phone] = code

    def messages_to(self, phone: str) -> list[TencentMessage]:
        """Messages created for ``phone``."""
        with self._state_lock:
            return [m for m in self.state.messages if m.phone == phone]

    @property
    def messages(self) -> list[TencentMessage]:
        """Every message created."""
        with self._state_lock:
            return list(self.state.messages)

    def add_reply(self, phone: str, text: str, *, at: datetime | None = None) -> dict[str, Any]:
        """Queue a patient's reply for PullSmsReplyStatus; return the push payload."""
        moment = at or utcnow()
        local = (moment + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
        item = {
            "ExtendCode": "",
            "CountryCode": "86",
            "PhoneNumber": phone,
            "SignName": "江苏省肿瘤医院",
            "ReplyContent": text,
            "ReplyTime": local,
            "SubscriberNumber": phone.removeprefix("+86"),
        }
        with self._state_lock:
            self.state.replies.append(item)
        return {
            "extend": "",
            "mobile": phone.removeprefix("+86"),
            "nationcode": "86",
            "sign": "江苏省肿瘤医院",
            "text": text,
            "time": int(moment.timestamp()),
        }

    def receipt_payload(self, message: TencentMessage, *, success: bool = True) -> dict[str, Any]:
        """The push callback item for one message."""
        return {
            "user_receive_time": (utcnow() + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S"),
            "nationcode": "86",
            "mobile": message.phone.removeprefix("+86"),
            "report_status": "SUCCESS" if success else "FAIL",
            "errmsg": "DELIVRD" if success else "MK:0001",
            "description": "用户短信送达成功" if success else "空号或关机",
            "sid": message.serial_no,
            "ext": message.session_context,
        }

    def push_receipts(self, url: str, *, success: bool = True) -> Any:
        """POST every message's receipt to ``url`` as one array (what Tencent's push does)."""
        payload = [self.receipt_payload(m, success=success) for m in self.messages]
        return self.post_json(url, payload)

    def push_reply(self, url: str, phone: str, text: str) -> Any:
        """POST one reply to ``url`` (what Tencent's reply push does)."""
        return self.post_json(url, self.add_reply(phone, text))

    # -- serving --------------------------------------------------------------------------

    def handle(self, handler: _Handler) -> None:
        """Answer one API request."""
        raw = handler.body()
        action = handler.headers.get("X-TC-Action", "")
        auth = handler.headers.get("Authorization", "")
        with self._state_lock:
            self.state.actions.append(action)
        if not auth.startswith("TC3-HMAC-SHA256 Credential="):
            handler.send_json(200, _error("AuthFailure.SignatureFailure", "no signature"))
            return
        try:
            params = json.loads(raw or b"{}")
        except ValueError:
            handler.send_json(200, _error("FailedOperation.JsonParseFail", "bad JSON"))
            return
        if params.get("SmsSdkAppId") != self.app_id:
            handler.send_json(200, _error("UnauthorizedOperation.SmsSdkAppIdVerifyFail", "app"))
            return
        if action == "SendSms":
            self._send(handler, params)
        elif action == "PullSmsSendStatus":
            handler.send_json(200, _ok({"PullSmsSendStatusSet": self._drain("receipts")}))
        elif action == "PullSmsReplyStatus":
            handler.send_json(200, _ok({"PullSmsReplyStatusSet": self._drain("replies")}))
        elif action == "PullSmsSendStatusByPhoneNumber":
            handler.send_json(200, _ok({"PullSmsSendStatusSet": self._by_phone(params)}))
        else:
            handler.send_json(200, _error("InvalidAction", action))

    def _drain(self, which: str) -> list[dict[str, Any]]:
        with self._state_lock:
            items = getattr(self.state, which)
            taken, items[:] = items[:100], items[100:]
        return taken

    def _by_phone(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        begin, end = int(params["BeginTime"]), int(params["EndTime"])
        phone = params["PhoneNumber"]
        found = [m for m in self.messages_to(phone) if begin <= int(m.created.timestamp()) <= end]
        offset, limit = int(params.get("Offset", 0)), int(params.get("Limit", 100))
        return [_status_item(m) for m in found[offset : offset + limit]]

    def _send(self, handler: _Handler, params: dict[str, Any]) -> None:
        fault = self.draw_fault()
        if fault is not None and fault not in CREATING:
            self.apply_fault(handler, fault)
            return
        if self.request_error:
            handler.send_json(200, _error(self.request_error, "request refused"))
            return
        if self.batch_error and len(params.get("PhoneNumberSet") or []) > 1:
            handler.send_json(200, _error(self.batch_error, "batch refused"))
            return
        template = self.templates.get(str(params.get("TemplateId")))
        values = list(params.get("TemplateParamSet") or [])
        if template is None:
            code = "FailedOperation.TemplateIncorrectOrUnapproved"
            handler.send_json(200, _error(code, "template not approved"))
            return
        if len(values) != len(template.names):
            code = "InvalidParameterValue.TemplateParameterFormatError"
            handler.send_json(200, _error(code, "parameter count"))
            return
        refused = _batch_refusal(params)
        if refused is not None:
            handler.send_json(200, _error(*refused))
            return
        statuses = [
            self._one(phone, template, values, params) for phone in params["PhoneNumberSet"]
        ]
        if fault is not None:
            self.apply_fault(handler, fault)
            return
        handler.send_json(200, _ok({"SendStatusSet": statuses}))

    def _one(self, phone: str, template: Any, values: list[str], params: dict[str, Any]) -> dict:
        with self._admission:
            return self._admit(phone, template, values, params)

    def _admit(self, phone: str, template: Any, values: list[str], params: dict[str, Any]) -> dict:
        now = utcnow()
        text = template.render(dict(zip(template.names, values, strict=True)))
        code = self.number_errors.get(phone) or self._limit(phone, text, now)
        if code is not None:
            return {
                "SerialNo": "",
                "PhoneNumber": phone,
                "Fee": 0,
                "Code": code,
                "Message": code,
                "SessionContext": params.get("SessionContext", ""),
            }
        message = TencentMessage(
            serial_no=f"2433:{uuid.uuid4().int % 10**20}",
            phone=phone,
            template_id=str(params["TemplateId"]),
            params=values,
            sign=str(params.get("SignName", "")),
            session_context=str(params.get("SessionContext", "")),
            created=now,
            text=text,
        )
        with self._state_lock:
            self.state.messages.append(message)
            self.state.receipts.append(_status_item(message))
        return {
            "SerialNo": message.serial_no,
            "PhoneNumber": phone,
            "Fee": 1,
            "Code": "Ok",
            "Message": "send success",
            "SessionContext": message.session_context,
        }

    def _limit(self, phone: str, text: str, now: datetime) -> str | None:
        """The frequency-limit code this send hits, if any."""
        mine = self.messages_to(phone)
        if any(m.text == text and now - m.created < timedelta(seconds=30) for m in mine):
            return "LimitExceeded.PhoneNumberThirtySecondLimit"
        day = (now + timedelta(hours=8)).date()
        if sum((m.created + timedelta(hours=8)).date() == day for m in mine) >= self.daily_limit:
            return "LimitExceeded.PhoneNumberDailyLimit"
        return None


def _batch_refusal(params: dict[str, Any]) -> tuple[str, str] | None:
    """The request-level refusal of a SendSms whose number set or SessionContext breaks the
    API's rules (at most 200 numbers, all domestic or all international, SessionContext under
    512 bytes; Tencent documents no code for the last: the fake answers InvalidParameterValue)."""
    phones = list(params.get("PhoneNumberSet") or [])
    if not phones:
        return ("MissingParameter", "PhoneNumberSet is empty")
    if len(phones) > MAX_NUMBERS:
        return ("LimitExceeded.PhoneNumberCountLimit", "more than 200 numbers")
    if len({str(p).startswith("+86") for p in phones}) > 1:
        code = "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber"
        return (code, "domestic and international numbers in one request")
    if len(str(params.get("SessionContext", "")).encode()) >= MAX_SESSION_CONTEXT:
        return ("InvalidParameterValue", "SessionContext must be under 512 bytes")
    return None


def _status_item(message: TencentMessage) -> dict[str, Any]:
    return {
        "UserReceiveTime": int(message.created.timestamp()),
        "CountryCode": "86",
        "SubscriberNumber": message.phone.removeprefix("+86"),
        "PhoneNumber": message.phone,
        "SerialNo": message.serial_no,
        "ReportStatus": message.report_status,
        "Description": "用户短信送达成功",
        "SessionContext": message.session_context,
    }


def _ok(body: dict[str, Any]) -> dict[str, Any]:
    return {"Response": {**body, "RequestId": str(uuid.uuid4())}}


def _error(code: str, message: str) -> dict[str, Any]:
    return {
        "Response": {"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}
    }
