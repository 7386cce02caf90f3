"""Opt-out and opt-in: every phrase of the vocabulary file, and phrasings written apart from it.

A missed opt-out keeps texting someone who asked us to stop (a compliance failure), so each
literal phrase in ``app/domain/vocabulary/intents.yaml`` is tried as a whole message, in its own
case variants, and a list written independently of the file checks that the file is not the
only thing the tests know.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.domain.replies import ReplyContext, parse_reply

INTENTS_FILE = Path(__file__).resolve().parents[2] / "app/domain/vocabulary/intents.yaml"
VOCABULARY = yaml.safe_load(INTENTS_FILE.read_text(encoding="utf-8"))
OPTED_OUT = ReplyContext(opted_out=True)


def literal_phrases(section: str) -> list[tuple[str, str]]:
    """(language, phrase) for each literal (non-regex) whole-message phrase of a section."""
    whole = VOCABULARY[section]["whole"]
    return [
        (lang, phrase)
        for lang, phrases in whole.items()
        for phrase in phrases
        if not str(phrase).startswith("re:")
    ]


# Written from carriers' and Twilio's opt-out keywords and from how people ask to stop, without
# looking at the vocabulary file.
INDEPENDENT_OPT_OUTS = [
    "STOP",
    "Stop",
    "stop.",
    "STOP!",
    "unsubscribe",
    "Unsubscribe please",
    "please stop texting me",
    "stop sending me messages",
    "opt out",
    "Opt-out",
    "I want to opt out",
    "remove me",
    "TD",
    "td",
    "退订",
    "退订。",
    "退订！",
    "请退订",
    "我要退订",
    "取消订阅",
    "别再给我发短信了",
    "不要再发了",
    "停止发送",
    "拒收",
    "取消短信",
]
INDEPENDENT_OPT_INS = ["START", "start", "Unstop", "subscribe", "订阅", "重新订阅", "恢复发送"]


@pytest.mark.parametrize(("lang", "phrase"), literal_phrases("opt_out"))
def test_every_opt_out_phrase_of_the_vocabulary_opts_out(lang: str, phrase: str) -> None:
    for variant in {phrase, phrase.upper(), phrase.capitalize(), f" {phrase} "}:
        assert parse_reply(variant).intent == "opt_out", (lang, variant)


@pytest.mark.parametrize("text", INDEPENDENT_OPT_OUTS)
def test_opt_outs_written_apart_from_the_vocabulary_opt_out(text: str) -> None:
    assert parse_reply(text).intent == "opt_out"


@pytest.mark.parametrize(("lang", "phrase"), literal_phrases("opt_in"))
def test_every_opt_in_phrase_of_the_vocabulary_opts_in(lang: str, phrase: str) -> None:
    assert parse_reply(phrase, context=OPTED_OUT).intent == "opt_in", (lang, phrase)


@pytest.mark.parametrize(("lang", "phrase"), literal_phrases("opt_in_after_opt_out"))
def test_yes_restarts_messages_only_after_an_opt_out(lang: str, phrase: str) -> None:
    assert parse_reply(phrase, context=OPTED_OUT).intent == "opt_in", (lang, phrase)
    assert parse_reply(phrase).intent != "opt_in", (lang, phrase)


@pytest.mark.parametrize("text", INDEPENDENT_OPT_INS)
def test_opt_ins_written_apart_from_the_vocabulary_opt_in(text: str) -> None:
    assert parse_reply(text, context=OPTED_OUT).intent == "opt_in"


@pytest.mark.parametrize("text", ["I can't stop coughing", "不要停药吧？", "the pain won't stop"])
def test_stop_inside_a_symptom_report_is_not_an_opt_out(text: str) -> None:
    assert parse_reply(text).intent != "opt_out"
