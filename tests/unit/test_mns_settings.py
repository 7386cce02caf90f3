"""Alibaba queue mode settings: off, complete, or refused with one clear line per problem."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from app.configuration import ConfigurationError, check_queue_mode, production_problems
from app.sms.aliyun_mns import MalformedMessage, decode_body, mns_problems, mns_settings
from jobs.provider_queue import JOB_ID
from jobs.schedule import job_specs
from tests.unit.test_configuration import good_settings

QUEUES = {
    "ALIYUN_MNS_ENDPOINT": "https://1234.mns.cn-hangzhou.aliyuncs.com",
    "ALIYUN_MNS_REPORT_QUEUE": "Alicom-Queue-1234-SmsReport",
    "ALIYUN_MNS_REPLY_QUEUE": "Alicom-Queue-1234-SmsUp",
}
SMS_KEYS = {"ALIYUN_ACCESS_KEY_ID": "LTAIsms", "ALIYUN_ACCESS_KEY_SECRET": "sms-secret"}
ALIYUN = {
    "SMS_BACKEND": "aliyun",
    "SMS_SIGN_NAME": "江苏省肿瘤医院",
    **SMS_KEYS,
}


def test_queue_mode_is_off_without_settings() -> None:
    assert mns_problems({}) == [] and mns_settings({}) is None


def test_complete_settings_use_the_sms_keys_unless_mns_keys_are_given() -> None:
    shared = mns_settings({**QUEUES, **SMS_KEYS})
    own = mns_settings(
        {
            **QUEUES,
            **SMS_KEYS,
            "ALIYUN_MNS_ACCESS_KEY_ID": "LTAImns",
            "ALIYUN_MNS_ACCESS_KEY_SECRET": "mns-secret",
            "ALIYUN_MNS_WAIT_SECONDS": "10",
        }
    )
    assert shared is not None and own is not None
    assert (shared.access_key_id, shared.access_key_secret) == ("LTAIsms", "sms-secret")
    assert (shared.auth, shared.token_endpoint) == ("token", "dybaseapi.aliyuncs.com")
    assert (own.access_key_id, own.access_key_secret, own.wait_seconds) == (
        "LTAImns",
        "mns-secret",
        10,
    )
    assert (own.report_queue, own.reply_queue) == (
        QUEUES["ALIYUN_MNS_REPORT_QUEUE"],
        QUEUES["ALIYUN_MNS_REPLY_QUEUE"],
    )


@pytest.mark.parametrize(
    "settings,first_word",
    [
        ({"ALIYUN_MNS_REPORT_QUEUE": "q", **SMS_KEYS}, "ALIYUN_MNS_ENDPOINT"),
        (
            {"ALIYUN_MNS_ENDPOINT": QUEUES["ALIYUN_MNS_ENDPOINT"], **SMS_KEYS},
            "ALIYUN_MNS_REPORT_QUEUE",
        ),
        ({**QUEUES}, "queue"),
        (
            {**QUEUES, **SMS_KEYS, "ALIYUN_MNS_ACCESS_KEY_ID": "LTAImns"},
            "ALIYUN_MNS_ACCESS_KEY_SECRET",
        ),
        (
            {**QUEUES, **SMS_KEYS, "ALIYUN_MNS_ENDPOINT": "1234.mns.aliyuncs.com"},
            "ALIYUN_MNS_ENDPOINT",
        ),
        ({**QUEUES, **SMS_KEYS, "ALIYUN_MNS_WAIT_SECONDS": "31"}, "ALIYUN_MNS_WAIT_SECONDS=31"),
        ({**QUEUES, **SMS_KEYS, "ALIYUN_MNS_BATCH": "0"}, "ALIYUN_MNS_BATCH=0"),
        ({**QUEUES, **SMS_KEYS, "ALIYUN_MNS_AUTH": "sts"}, "ALIYUN_MNS_AUTH=sts"),
    ],
)
def test_half_configured_queue_mode_is_refused_in_every_environment(
    settings: dict[str, Any], first_word: str
) -> None:
    [problem] = mns_problems(settings)
    assert problem.replace("'", "").split(" ", 1)[0] == first_word
    with pytest.raises(ValueError):
        mns_settings(settings)
    with pytest.raises(ConfigurationError) as caught:
        check_queue_mode(settings)
    assert caught.value.problems == [problem]
    assert problem in production_problems(good_settings(**settings), {}, ["python"])


def test_production_with_alibaba_in_queue_mode_needs_no_callback_secret() -> None:
    pushed = production_problems(good_settings(**ALIYUN), {}, ["python"])
    queued = production_problems(good_settings(**ALIYUN, **QUEUES), {}, ["python"])

    assert any(p.startswith("SMS_CALLBACK_SECRET") for p in pushed)
    assert queued == []
    tencent_too = good_settings(
        **ALIYUN,
        **QUEUES,
        SMS_FALLBACK_BACKEND="tencent",
        TENCENT_SECRET_ID="id",
        TENCENT_SECRET_KEY="key",
        TENCENT_SMS_SDK_APP_ID="1400000000",
    )
    assert any(  # Tencent still pushes: its callbacks still need the secret
        p.startswith("SMS_CALLBACK_SECRET")
        for p in production_problems(tencent_too, {}, ["python"])
    )


def test_the_queue_job_is_scheduled_only_in_queue_mode() -> None:
    assert JOB_ID not in {spec.id for spec in job_specs({})}
    [spec] = [s for s in job_specs({**QUEUES, "ALIYUN_MNS_POLL_SECONDS": "7"}) if s.id == JOB_ID]
    assert spec.trigger.interval.total_seconds() == 7  # type: ignore[attr-defined]


def test_bodies_are_base64_json_or_plain_json_else_malformed() -> None:
    report = {"biz_id": "1", "success": True}
    encoded = base64.b64encode(json.dumps(report).encode()).decode()

    assert decode_body(encoded) == report
    assert decode_body(json.dumps(report)) == report
    for body in ("not base64 at all %%", base64.b64encode(b"\xff\xfe").decode(), "e30", "{oops"):
        with pytest.raises(MalformedMessage):
            decode_body(body)
