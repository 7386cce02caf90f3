"""Every kind of SMS Cadence sends goes out through its own approved template (issue 12).

Each kind is rendered by the app's real renderer (zh and en, signature included, as stored in
the outbox), resolved to a template of that kind (never the generic fallback), its values kept
within the declared maxima, and sent with the real SDKs to both providers' loopback fakes, which
rebuild the text from template id + parameters: the patient receives exactly what was stored.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from app.domain.checkins import AnswerProblem
from app.domain.escalation import AmberPromise
from app.domain.reminders import PlannedMessage, ReminderItem
from app.services.conversations import conversation
from app.services.conversations.checkins import links, sessions
from app.services.conversations.checkins import texts as ct
from app.services.conversations.inbound import senders
from app.services.messaging.reminders import RenderContext, render_message
from app.services.shared import reply_texts as rt
from app.sms import AliyunGateway, TencentGateway, template_catalogue
from app.sms.templates import REQUIRED_KINDS, SIGNATURE, ProviderRules, TemplateCatalogue
from tests.fakes.fake_aliyun import FakeAliyun
from tests.fakes.fake_tencent import FakeTencent

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 9, tzinfo=SHANGHAI)
DAY = date(2026, 3, 12)
Render = Callable[[str], list[str]]


def _reminder(kind: str, moved_from: date | None = None) -> ReminderItem:
    return ReminderItem(
        event_key=f"x.{kind}",
        kind=kind,
        event_date=DAY,
        template="notice" if moved_from else "treatment" if kind == "infusion" else kind,
        rule_id=f"{kind}.2",
        days_before=2,
        send_at=datetime(2026, 3, 10, 8, tzinfo=SHANGHAI),
        moved_from=moved_from,
    )


def reminders(locale: str) -> list[str]:
    """A merged reminder and single ones, as planned."""
    ctx = RenderContext(locale=locale, tz=SHANGHAI)
    kinds = ("infusion", "labs", "imaging", "endoscopy", "visit", "followup")
    single = [(_reminder(k),) for k in kinds]
    merged = [tuple(_reminder(k) for k in kinds[:3])]
    return [
        render_message(PlannedMessage("reminder", items[0].send_at, items), 0, ctx)
        for items in single + merged
    ]


def moved(locale: str) -> list[str]:
    """Schedule changes, one and several."""
    ctx = RenderContext(locale=locale, tz=SHANGHAI)
    before = DAY - timedelta(days=7)
    items = [_reminder(k, before) for k in ("infusion", "labs", "visit", "visit")]
    return [
        render_message(PlannedMessage("moved", items[0].send_at, tuple(chosen)), 0, ctx)
        for chosen in (items[:1], items)
    ]


def when(locale: str) -> list[str]:
    return [rt.when_text(NOW + timedelta(hours=h), NOW, SHANGHAI, locale) for h in (3, 24, 72)]


def signed(make: Callable[[str], str | list[str]]) -> Render:
    """A renderer of answers (unsigned texts) as the outbox stores them."""

    def render(locale: str) -> list[str]:
        made = make(locale)
        return [rt.signed(text) for text in ([made] if isinstance(made, str) else made)]

    return render


def _promise(kind: str) -> AmberPromise:
    return AmberPromise(kind=kind, call_by=NOW + timedelta(hours=4))  # type: ignore[arg-type]


def checkins(kind: str) -> Render:
    """Check-in messages for every item and question of the protocol's questionnaire."""

    def render(locale: str) -> list[str]:
        questionnaire = sessions.questionnaire()
        url = links.link_url(12345, 678)
        items = questionnaire.items
        total = len(items)
        out: list[str] = []
        for position, item in enumerate(items, start=1):
            for question in item.questions:
                if kind == "checkin_start":
                    if question is item.questions[0]:  # a check-in starts with an item's first
                        out.append(
                            ct.start_message(questionnaire, item, question, 1, total, url, locale)
                        )
                elif kind == "checkin_question":
                    out.append(ct.question_message(item, question, position, total, url, locale))
                    problem = AnswerProblem("out_of_range", "F", "9", "")
                    out.append(
                        ct.again_message(item, question, position, total, [problem], url, locale)
                    )
                else:
                    out.append(ct.reminder_message(item, question, position, total, url, locale))
        return out

    return render


def pages(make: Callable[..., str]) -> Render:
    whats = {"zh": "胸痛，发热，体温39.2 °C", "en": "chest pain, fever, temperature 39.2 °C"}

    def render(locale: str) -> list[str]:
        return [make(locale, 12, "JSCH-001", whats[locale]), make(locale, 3, "JSCH-014", "?")]

    return render


class _Patient:
    def __init__(self, initials: str) -> None:
        self.initials = initials


def _phrase(code: str) -> Render:
    return signed(lambda loc: conversation.phrase_text(code, loc))


SAMPLES: dict[str, Render] = {
    "reminder": reminders,
    "moved": moved,
    "confirmed": signed(lambda loc: rt.confirm_reply(loc, True)),
    "received": signed(lambda loc: rt.confirm_reply(loc, False)),
    "reschedule": signed(lambda loc: [rt.reschedule_reply(loc, w) for w in when(loc)]),
    "red_reply": signed(rt.red_reply),
    "amber_reply": signed(lambda loc: rt.amber_answer(loc, _promise("now"), NOW, SHANGHAI)),
    "amber_reply_later": signed(lambda loc: rt.amber_answer(loc, _promise("later"), NOW, SHANGHAI)),
    "amber_reply_no_cover": signed(rt.amber_reply_no_cover),
    "green_reply": signed(lambda loc: [rt.green_reply(loc, w) for w in when(loc)]),
    "opt_out": signed(rt.opt_out_reply),
    "opt_in": signed(rt.opt_in_reply),
    "help": signed(rt.help_reply),
    "unknown_reply": signed(rt.unknown_reply),
    "failure_reply": signed(rt.failure_reply),
    "unknown_sender": signed(lambda loc: rt.unknown_sender_reply(loc, False)),
    "unknown_sender_emergency": signed(lambda loc: rt.unknown_sender_reply(loc, True)),
    "ask_back": signed(lambda loc: rt.ask_back_reply(loc, "1", DAY, "F1")),
    "red_check": signed(
        lambda loc: rt.red_check_reply(
            loc, "3", sessions.questionnaire().items[0].questions[0].sms_text(loc)
        )
    ),
    "nothing_open": signed(lambda loc: [rt.nothing_open_reply(loc, t) for t in ("2", "x" * 30)]),
    "which_patient": signed(
        lambda loc: senders.which_patient_reply(loc, (_Patient("WL"), _Patient("ZM")))  # type: ignore[arg-type]
    ),
    "checkin_start": checkins("checkin_start"),
    "checkin_question": checkins("checkin_question"),
    "checkin_reminder": checkins("checkin_reminder"),
    "checkin_done": lambda loc: [ct.done_message(None, loc, "")],
    **{f"nurse_{code}": _phrase(code) for code in conversation.READY_PHRASES},
    "message": signed(
        lambda loc: conversation.own_words_text("明天上午请空腹来抽血。\n有问题请回电。", loc)
    ),
    "red_page": pages(rt.red_page),
    "red_escalation_page": pages(
        lambda loc, i, who, what: rt.red_escalation_page(loc, i, who, what, 15)
    ),
    "amber_reminder_page": pages(rt.amber_reminder_page),
}
CASES = [(kind, locale) for kind in SAMPLES for locale in ("zh", "en")]
_numbers = (f"+86139{n:08d}" for n in itertools.count(1))


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    """Both providers' fakes (limits high enough for one number per message)."""
    with FakeTencent(daily_limit=10_000) as tencent, FakeAliyun() as aliyun:
        yield {"tencent": tencent, "aliyun": aliyun}


def gateways(app: Flask, fakes: dict[str, Any]) -> list[Any]:
    """The real gateways pointed at the fakes, with the app's template catalogue (no fallback)."""
    settings = {**app.config, "SMS_TEMPLATE_FALLBACK": ""}
    templates = template_catalogue(settings)
    tencent = TencentGateway(
        "AKIDtest",
        "secret",
        sdk_app_id=fakes["tencent"].app_id,
        sign_name="江苏省肿瘤医院",
        templates=templates,
        timeout=2,
        endpoint=fakes["tencent"].endpoint,
    )
    aliyun = AliyunGateway(
        "LTAItest",
        "secret",
        sign_name="江苏省肿瘤医院",
        templates=templates,
        timeout=2,
        endpoint=fakes["aliyun"].endpoint,
    )
    return [tencent, aliyun]


def test_every_kind_the_app_sends_has_a_sample_here() -> None:
    assert set(SAMPLES) == set(REQUIRED_KINDS)


@pytest.mark.parametrize(("kind", "locale"), CASES, ids=[f"{k}-{loc}" for k, loc in CASES])
def test_each_kind_resolves_to_its_own_template_within_the_limits(
    app_ctx: Flask, kind: str, locale: str
) -> None:
    catalogue = template_catalogue({**app_ctx.config, "SMS_TEMPLATE_FALLBACK": ""})
    bodies = SAMPLES[kind](locale)
    assert bodies
    for body in bodies:
        for provider in ("tencent", "aliyun"):
            resolved = catalogue.resolve(body, provider)
            assert (resolved.template.kind, resolved.template.locale) == (kind, locale), body
            for name, value in resolved.named.items():
                limit = int(resolved.template.variables[name]["max"])
                assert len(value) <= limit, f"{kind}/{locale} {name}: {len(value)} > {limit}"
            assert len(body) <= 500, f"{kind}/{locale}: {len(body)} characters"


@pytest.mark.parametrize(("kind", "locale"), CASES, ids=[f"{k}-{loc}" for k, loc in CASES])
def test_each_kind_reaches_both_fakes_exactly_as_stored(
    app_ctx: Flask, fakes: dict[str, Any], kind: str, locale: str
) -> None:
    body = SAMPLES[kind](locale)[0]
    for gateway in gateways(app_ctx, fakes):
        phone = next(_numbers)
        sent = gateway.send(phone, body, reference=f"{kind}-{locale}")
        assert sent.provider == gateway.name and sent.provider_id
        [message] = fakes[gateway.name].messages_to(phone)
        assert unsigned(_received_text(message)) == unsigned(body)


def unsigned(text: str) -> str:
    """The text without the provider's signature (one fake stores it, the other not)."""
    return SIGNATURE.sub("", text).strip()


def _received_text(message: Any) -> str:
    """What the fake rebuilt from template id + parameters (with the signature it adds)."""
    return message.text if hasattr(message, "text") else message.content


def test_check_names_a_kind_without_a_template() -> None:
    source = TemplateCatalogue.load()
    missing = [t for t in source.templates if not (t.kind == "red_reply" and t.locale == "en")]
    catalogue = TemplateCatalogue(missing)
    problems = catalogue.check(ProviderRules("tencent"))
    assert problems == ["red_reply/en (tencent): no template for a message Cadence sends"]


@pytest.mark.parametrize("url", ["https://cadence.example.org", "https://" + "x" * 42])
def test_the_links_fixed_in_templates_fit_a_public_address_of_up_to_50_characters(url: str) -> None:
    catalogue = TemplateCatalogue.load(constants={"PUBLIC_BASE_URL": url})
    assert [t.text for t in catalogue.templates if url + "/c/" in t.text]
    for provider in ("tencent", "aliyun"):
        assert catalogue.check(ProviderRules(provider)) == []
