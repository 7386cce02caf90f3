"""A fake Alibaba Cloud SMS API (dysmsapi 2017-05-25) on loopback HTTP.

    with FakeAliyun() as fake:
        gateway = AliyunGateway("id", "secret", sign_name=..., endpoint=fake.endpoint)

The real SDK talks to it (the ACS3 Authorization header is checked for presence). It answers
SendSms (Code/BizId), SendBatchSms (one BizId for up to 100 numbers, every member keeping the
request's OutId; one number refused refuses the whole request, as Alibaba answers no status per
number) and QuerySendDetails like Alibaba, enforces approved templates and their
parameters, 50 a day per signature + template + number (UTC+8 days) and the business limit on
the same content within 30 s; it produces SmsReport receipts and SmsUp replies for push.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from app.clock import utcnow
from app.sms.templates import TemplateCatalogue
from tests.fakes.loopback import CREATING, LoopbackFake, _Handler

DAILY_LIMIT = 50
MAX_BATCH = 100  # numbers in one SendBatchSms
MAX_OUT_ID = 256  # OutId must be shorter


@dataclass
class AliyunMessage:
    """One message as the fake keeps it."""

    biz_id: str
    phone: str
    template_code: str
    params: dict[str, str]
    sign: str
    out_id: str
    created: datetime
    content: str
    status: int = 3  # 1 waiting, 2 failed, 3 delivered


class FakeAliyun(LoopbackFake):
    """Fake Alibaba Cloud SMS (see the module docstring)."""

    thread_name = "fake-aliyun"

    def __init__(self, *, daily_limit: int = DAILY_LIMIT) -> None:
        super().__init__()
        self.daily_limit = daily_limit
        catalogue = TemplateCatalogue.load()
        self.templates = {t.ids["aliyun"]: t for t in catalogue.templates if "aliyun" in t.ids}
        self._messages: list[AliyunMessage] = []
        self.actions: list[str] = []
        self.number_errors: dict[str, str] = {}
        self._state_lock = threading.Lock()
        # Held from the limit check to the append, so concurrent sends cannot both pass a limit
        self._admission = threading.Lock()
        self._sequence = 1000

    # -- programming ---------------------------------------------------------------------

    def set_number_error(self, phone: str, code: str | None) -> None:
        """Answer sends to ``phone`` (national, e.g. 13800000001) with this Code."""
        if code is None:
            self.number_errors.pop(phone, None)
        else:
            self.number_errors[phone] = code

    @property
    def messages(self) -> list[AliyunMessage]:
        """Every message created."""
        with self._state_lock:
            return list(self._messages)

    def messages_to(self, phone: str) -> list[AliyunMessage]:
        """Messages for a number (national or +86)."""
        national = phone.removeprefix("+86")
        return [m for m in self.messages if m.phone == national]

    def report_payload(self, message: AliyunMessage, *, success: bool = True) -> dict[str, Any]:
        """The SmsReport push item for one message."""
        local = (utcnow() + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
        return {
            "phone_number": message.phone,
            "send_time": local,
            "report_time": local,
            "success": success,
            "err_code": "DELIVERED" if success else "MK:0001",
            "err_msg": "用户接收成功" if success else "空号",
            "sms_size": "1",
            "biz_id": message.biz_id,
            "out_id": message.out_id,
        }

    def push_reports(self, url: str, *, success: bool = True) -> Any:
        """POST every message's SmsReport to ``url`` as one array."""
        return self.post_json(url, [self.report_payload(m, success=success) for m in self.messages])

    def reply_payload(self, phone: str, text: str) -> dict[str, Any]:
        """An SmsUp push item."""
        self._sequence += 1
        return {
            "phone_number": phone.removeprefix("+86"),
            "send_time": (utcnow() + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S"),
            "content": text,
            "sign_name": "江苏省肿瘤医院",
            "dest_code": "1234",
            "sequence_id": self._sequence,
        }

    def push_reply(self, url: str, phone: str, text: str) -> Any:
        """POST one SmsUp reply to ``url``."""
        return self.post_json(url, [self.reply_payload(phone, text)])

    # -- serving --------------------------------------------------------------------------

    def handle(self, handler: _Handler) -> None:
        """Answer one API request (RPC style: parameters in the query string or form)."""
        raw = handler.body()
        query = {k: v[-1] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        query |= {k: v[-1] for k, v in parse_qs(raw.decode("utf-8")).items()}
        action = handler.headers.get("x-acs-action") or query.get("Action", "")
        with self._state_lock:
            self.actions.append(action)
        auth = handler.headers.get("Authorization", "") or query.get("Signature", "")
        if not auth:
            handler.send_json(400, _error("SignatureDoesNotMatch", "no signature"))
            return
        if action == "SendSms":
            self._send(handler, query)
        elif action == "SendBatchSms":
            self._send_batch(handler, query)
        elif action == "QuerySendDetails":
            self._details(handler, query)
        else:
            handler.send_json(404, _error("InvalidAction.NotFound", action))

    def _send(self, handler: _Handler, query: dict[str, str]) -> None:
        fault = self.draw_fault()
        if fault is not None and fault not in CREATING:
            self.apply_fault(handler, fault)
            return
        template = self.templates.get(query.get("TemplateCode", ""))
        if template is None:
            handler.send_json(200, _error("isv.SMS_TEMPLATE_ILLEGAL", "template not approved"))
            return
        try:
            params = json.loads(query.get("TemplateParam") or "{}")
        except ValueError:
            handler.send_json(200, _error("isv.INVALID_JSON_PARAM", "TemplateParam"))
            return
        if set(params) != set(template.names):
            handler.send_json(200, _error("isv.TEMPLATE_MISSING_PARAMETERS", "parameters"))
            return
        phone = query.get("PhoneNumbers", "")
        content = template.render(params)
        with self._admission:
            code = self.number_errors.get(phone) or self._limit(phone, query, content)
            message = None if code is not None else self._create(phone, query, params, content)
        if message is None:
            handler.send_json(200, _error(code, code))
            return
        if fault is not None:
            self.apply_fault(handler, fault)
            return
        handler.send_json(
            200,
            {"Code": "OK", "Message": "OK", "BizId": message.biz_id, "RequestId": _rid()},
        )

    def _send_batch(self, handler: _Handler, query: dict[str, str]) -> None:
        fault = self.draw_fault()
        if fault is not None and fault not in CREATING:
            self.apply_fault(handler, fault)
            return
        members = self._batch_members(query)
        if isinstance(members, str):
            handler.send_json(200, _error(members, members))
            return
        biz_id = _biz_id()
        with self._admission:
            refused = [
                self.number_errors.get(phone) or self._limit(phone, member, content)
                for phone, member, _params, content in members
            ]
            code = next((c for c in refused if c is not None), None)
            if code is None:
                for phone, member, params, content in members:
                    self._create(phone, member, params, content, biz_id=biz_id)
        if code is not None:
            handler.send_json(200, _error(code, code))
            return
        if fault is not None:
            self.apply_fault(handler, fault)
            return
        handler.send_json(
            200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": _rid()}
        )

    def _batch_members(
        self, query: dict[str, str]
    ) -> str | list[tuple[str, dict[str, str], dict[str, Any], str]]:
        """(phone, its query, its parameters, its text) per member, or the refusal's code."""
        template = self.templates.get(query.get("TemplateCode", ""))
        if template is None:
            return "isv.SMS_TEMPLATE_ILLEGAL"
        try:
            phones = json.loads(query.get("PhoneNumberJson") or "[]")
            signs = json.loads(query.get("SignNameJson") or "[]")
            values = json.loads(query.get("TemplateParamJson") or "[]")
        except ValueError:
            return "isv.INVALID_JSON_PARAM"
        if not phones or not all(isinstance(x, list) for x in (phones, signs, values)):
            return "isv.INVALID_PARAMETERS"
        if len(phones) > MAX_BATCH:
            return "isv.MOBILE_COUNT_OVER_LIMIT"
        if len(signs) != len(phones) or len(values) != len(phones):
            return "isv.INVALID_PARAMETERS"
        if len(query.get("OutId", "")) >= MAX_OUT_ID:
            return "isv.INVALID_PARAMETERS"
        if any(not isinstance(v, dict) or set(v) != set(template.names) for v in values):
            return "isv.TEMPLATE_MISSING_PARAMETERS"
        code = query["TemplateCode"]
        out_id = query.get("OutId", "")
        return [
            (
                str(phone),
                {"TemplateCode": code, "SignName": str(sign), "OutId": out_id},
                params,
                template.render(params),
            )
            for phone, sign, params in zip(phones, signs, values, strict=True)
        ]

    def _create(
        self,
        phone: str,
        query: dict[str, str],
        params: dict[str, Any],
        content: str,
        *,
        biz_id: str | None = None,
    ) -> AliyunMessage:
        """Record one accepted message."""
        message = AliyunMessage(
            biz_id=biz_id or _biz_id(),
            phone=phone,
            template_code=query["TemplateCode"],
            params=params,
            sign=query.get("SignName", ""),
            out_id=query.get("OutId", ""),
            created=utcnow(),
            content=f"【{query.get('SignName', '')}】{content}",
        )
        with self._state_lock:
            self._messages.append(message)
        return message

    def _limit(self, phone: str, query: dict[str, str], content: str) -> str | None:
        now = utcnow()
        mine = self.messages_to(phone)
        if any(
            m.content.endswith(content) and now - m.created < timedelta(seconds=30) for m in mine
        ):
            return "isv.BUSINESS_LIMIT_CONTROL"
        day = (now + timedelta(hours=8)).date()
        same = [
            m
            for m in mine
            if m.template_code == query.get("TemplateCode")
            and m.sign == query.get("SignName")
            and (m.created + timedelta(hours=8)).date() == day
        ]
        return "isv.DAY_LIMIT_CONTROL" if len(same) >= self.daily_limit else None

    def _details(self, handler: _Handler, query: dict[str, str]) -> None:
        phone = query.get("PhoneNumber", "")
        date = query.get("SendDate", "")
        size = min(int(query.get("PageSize", "10")), 50)
        page = int(query.get("CurrentPage", "1"))
        found = [
            m
            for m in self.messages_to(phone)
            if (m.created + timedelta(hours=8)).strftime("%Y%m%d") == date
            and (not query.get("BizId") or m.biz_id == query["BizId"])
        ]
        chunk = found[(page - 1) * size : page * size]
        dtos = [
            {
                "Content": m.content,
                "ErrCode": "DELIVERED",
                "OutId": m.out_id,
                "PhoneNum": m.phone,
                "ReceiveDate": _local(m.created),
                "SendDate": _local(m.created),
                "SendStatus": m.status,
                "TemplateCode": m.template_code,
            }
            for m in chunk
        ]
        handler.send_json(
            200,
            {
                "Code": "OK",
                "Message": "OK",
                "RequestId": _rid(),
                "TotalCount": len(found),
                "SmsSendDetailDTOs": {"SmsSendDetailDTO": dtos},
            },
        )


def _local(moment: datetime) -> str:
    return (moment + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")


def _biz_id() -> str:
    return f"{uuid.uuid4().int % 10**18}^0"


def _rid() -> str:
    return str(uuid.uuid4()).upper()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"Code": code, "Message": message, "RequestId": _rid()}
