"""Remembered parses (app.domain.replies.parse_reply): the same answer as parsing afresh, a
copy per call, only short replies with the default vocabulary."""

from __future__ import annotations

from app.domain import replies
from app.domain.replies import (
    CACHED_PARSE_CHARS,
    ReplyContext,
    load_vocabulary,
    parse_reply,
)


def test_a_remembered_parse_equals_a_fresh_one_in_every_context() -> None:
    for text in ("1", "好的", "发烧39度", "A2 B1", "YES", "今天拉了五次"):
        for context in (ReplyContext(), ReplyContext(opted_out=True), ReplyContext(
            awaiting_checkin=True, checkin_symptom="diarrhoea", checkin_scale="count"
        )):  # fmt: skip
            fresh = parse_reply(text, context=context, vocabulary=load_vocabulary())
            assert parse_reply(text, context=context) == fresh
            assert parse_reply(text, context=context) == fresh  # the remembered one


def test_each_call_gets_its_own_codes() -> None:
    first = parse_reply("A2 B1")
    assert first.codes
    first.codes.clear()
    assert parse_reply("A2 B1").codes  # the remembered parse was not changed through a copy


def test_only_short_replies_are_remembered() -> None:
    replies.forget_parses()
    parse_reply("x" * CACHED_PARSE_CHARS)
    parse_reply("发烧" * CACHED_PARSE_CHARS)
    assert replies._parse_with_default_vocabulary.cache_info().currsize == 1
