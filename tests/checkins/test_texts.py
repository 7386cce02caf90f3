"""Check-in SMS wording: sentences joined per language, links kept apart from the next words."""

from __future__ import annotations

from app.services.conversations.checkins.texts import joined


def test_chinese_sentences_join_without_spaces_but_a_link_is_followed_by_one() -> None:
    body = joined(["体温多少度？", "或在手机上作答：https://x.example/c/AbC", "回复TD退订"], "zh")
    assert body == "体温多少度？或在手机上作答：https://x.example/c/AbC 回复TD退订"


def test_english_sentences_join_with_spaces() -> None:
    assert joined(["Temperature?", " ", "Reply STOP to opt out."], "en") == (
        "Temperature? Reply STOP to opt out."
    )
