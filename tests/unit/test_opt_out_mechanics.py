"""Opt-out mechanics: whole-message matching, polite words, confirmations, the intent lexicon.

tests/unit/test_opt_out_phrases.py tries every phrase of the vocabulary; these tests pin the
machinery around the phrases (written against the survivors of the mutation run of
2026-12-07, docs/testing.md): where polite words may be stripped, how a message is compared
with the whole-message lists, the limits of a confirmation, and the loading of intents.yaml
(each section read, and each malformed section named in the error). The default vocabulary is
cached, so the loading tests load a vocabulary directory themselves.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.domain.replies import (
    DEFAULT_VOCABULARY_DIR,
    ReplyContext,
    Vocabulary,
    VocabularyError,
    load_vocabulary,
    parse_reply,
)

OPTED_OUT = ReplyContext(opted_out=True)


def intent(text: str, context: ReplyContext | None = None, **kwargs: Any) -> str:
    """The intent parse_reply gives ``text``."""
    return parse_reply(text, context=context, **kwargs).intent


# --------------------------------------------------------------------------- polite words


@pytest.mark.parametrize(
    "text",
    [
        "TD please",  # an English polite word after the keyword
        "please TD",  # ... and before it
        "ok please td",  # a second polite word exposed once the first is gone
        "TD please ok",
        "请取消短信",  # a Chinese polite word needs no space ("取消短信" is whole-message only)
        "取消短信，谢谢",
        "T.D.",  # punctuation between the letters of a keyword
    ],
    ids=["after", "before", "two-before", "two-after", "zh-before", "zh-after", "dotted"],
)
def test_polite_words_and_punctuation_around_a_whole_message_keyword(text: str) -> None:
    assert intent(text) == "opt_out"


@pytest.mark.parametrize("text", ["tdplease", "pleasetd", "Hin", "okt"], ids=str.lower)
def test_an_english_polite_word_glued_to_other_letters_is_not_stripped(text: str) -> None:
    # "Hin" is not "hi" + "n" (an opt-out letter), "okt" not "ok" + "t"
    assert intent(text) == "unknown"


def test_polite_words_also_surround_help() -> None:
    assert intent("help please") == "help"
    assert intent("Please help") == "help"
    assert intent("help pleased") == "unknown"


# --------------------------------------------------------------------------- confirmations


def test_a_question_is_never_a_confirmation() -> None:
    assert intent("OK") == "confirm"
    assert intent("OK?") == "unknown"
    assert intent("好的？") == "unknown"


def test_a_confirmation_is_at_most_60_characters() -> None:
    at_limit = "OK see you on Tuesday morning at the clinic at eleven thirty"
    over = "OK see you on Thursday morning at the clinic at eleven thirty"
    assert (len(at_limit), len(over)) == (60, 61)
    assert intent(at_limit) == "confirm"
    assert intent(over) == "unknown"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("不好", "unknown"),
        ("不太行", "unknown"),
        ("没问题", "confirm"),  # 没 is part of the confirm phrase, not before it
        ("not sure", "unknown"),
        ("I am not sure", "unknown"),
        ("cannot say, ok", "confirm"),  # "not" inside another word is no negator
        ("好的，不用谢", "confirm"),  # a negator after the confirm word does not cancel it
    ],
    ids=["zh", "zh-two", "zh-inside", "en", "en-sentence", "en-inside-a-word", "zh-after"],
)
def test_a_negator_just_before_a_confirm_word_cancels_it(text: str, expected: str) -> None:
    assert intent(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I can't confirm",
        "I can’t confirm",  # a typographic apostrophe
        "I cant confirm",  # no apostrophe, as phones often send it
        "isn't fine",
        "isnt fine",
        "won't be fine",
        "I don't feel good",
        "dont feel good",
        "not feeling good",
        "not really fine",
        "didn't receive",
        "I couldn't confirm",
        "shouldnt really fine",  # the longest negators (16-17 characters) fit the window
        "you shouldnt feeling ok",
    ],
)
def test_an_english_contraction_or_negated_phrase_does_not_confirm(text: str) -> None:
    # Before, "n't" sat behind the word-start look-behind and never matched: these confirmed.
    assert intent(text) != "confirm"


@pytest.mark.parametrize(
    "text",
    ["appointment confirmed", "Patient fine", "I want to confirm", "can confirm", "ok thanks"],
)
def test_words_merely_ending_in_nt_or_t_still_confirm(text: str) -> None:
    assert intent(text) == "confirm"


def test_intent_order_opt_out_before_opt_in_help_numbers_and_confirm() -> None:
    assert intent("TD") == "opt_out"
    assert intent("START") == "opt_in"
    assert intent("yes") == "confirm"
    assert intent("yes", OPTED_OUT) == "opt_in"
    assert intent("yes please", OPTED_OUT) == "opt_in"  # polite words go here too
    assert intent("?") == "help"
    assert intent("") == "unknown"
    assert intent("1") == "confirm"
    assert intent("2") == "reschedule_request"
    assert intent("3") == "unknown"
    assert intent("来不了") == "reschedule_request"
    assert intent("hello") == "unknown"


# --------------------------------------------------------------------------- the lexicon, loaded


@pytest.fixture
def fresh() -> Vocabulary:
    """The shipped vocabulary, loaded now (not the cached default)."""
    return load_vocabulary(DEFAULT_VOCABULARY_DIR)


FRESH_CASES = [
    ("TD", None, "opt_out"),  # opt_out.whole, literal (not in opt_out.anywhere)
    ("cancel", None, "opt_out"),
    ("T.D.", None, "opt_out"),  # compared without punctuation
    ("帮我取消短信提醒", None, "opt_out"),  # opt_out.whole, regex
    ("别烦我", None, "opt_out"),  # opt_out.anywhere
    ("TD please", None, "opt_out"),  # polite.en
    ("请取消短信", None, "opt_out"),  # polite.zh
    ("START", None, "opt_in"),  # opt_in.whole
    ("恢复发送", None, "opt_in"),
    ("yes", OPTED_OUT, "opt_in"),  # opt_in_after_opt_out.whole
    ("是的", OPTED_OUT, "opt_in"),
    ("help", None, "help"),  # help.whole
    ("1", None, "confirm"),  # numbered
    ("2", None, "reschedule_request"),
    ("来不了", None, "reschedule_request"),  # reschedule.anywhere
    ("好的", None, "confirm"),  # confirm.anywhere
    ("👍", None, "confirm"),  # confirm.emoji
    ("不好", None, "unknown"),  # confirm.negators.zh
    ("not sure", None, "unknown"),  # confirm.negators.en
    ("OK see you on Tuesday morning at the clinic at eleven thirty", None, "confirm"),
    ("OK see you on Thursday morning at the clinic at eleven thirty", None, "unknown"),
    ("d2", None, "checkin_answer"),  # checkin_codes
]


def test_a_freshly_loaded_vocabulary_reads_every_intent_section(fresh: Vocabulary) -> None:
    got = [(text, intent(text, context, vocabulary=fresh)) for text, context, _ in FRESH_CASES]
    assert got == [(text, expected) for text, _, expected in FRESH_CASES]
    coded = parse_reply("d2", vocabulary=fresh).symptom("diarrhea")
    assert coded is not None and coded.detail["frequency"] == 2


def _with_intents(tmp_path: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of the vocabulary whose intents.yaml is changed by ``change``; its path."""
    target = tmp_path / "vocabulary"
    shutil.copytree(DEFAULT_VOCABULARY_DIR, target)
    path = target / "intents.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    replaced = change(doc)
    path.write_text(
        yaml.safe_dump(doc if replaced is None else replaced, allow_unicode=True), encoding="utf-8"
    )
    return target


def test_a_whole_message_regex_is_matched_with_its_spaces(tmp_path: Path) -> None:
    def without_anywhere(doc: dict[str, Any]) -> None:
        del doc["opt_out"]["anywhere"]

    vocabulary = load_vocabulary(_with_intents(tmp_path, without_anywhere))
    assert intent("stop texting me", vocabulary=vocabulary) == "opt_out"
    assert intent("Stop sending these reminders", vocabulary=vocabulary) == "opt_out"
    assert intent("stop texting me now", vocabulary=vocabulary) == "unknown"


def test_a_literal_negator_must_end_right_before_the_confirm_word(tmp_path: Path) -> None:
    def literal_negator(doc: dict[str, Any]) -> None:
        doc["confirm"]["negators"]["en"] = ["barely"]

    vocabulary = load_vocabulary(_with_intents(tmp_path, literal_negator))
    assert intent("barelyok", vocabulary=vocabulary) == "unknown"
    assert intent("lovely, ok", vocabulary=vocabulary) == "confirm"  # "ely" is not "barely"
    assert intent("barely, ok", vocabulary=vocabulary) == "confirm"  # not right before it


def test_a_literal_negator_cancels_the_confirm_word_right_after_it(tmp_path: Path) -> None:
    def literal_zh_negator(doc: dict[str, Any]) -> None:
        doc["confirm"]["negators"]["zh"] = ["不太"]  # instead of the shipped regex

    vocabulary = load_vocabulary(_with_intents(tmp_path, literal_zh_negator))
    assert intent("不太行", vocabulary=vocabulary) == "unknown"
    assert intent("不太可以", vocabulary=vocabulary) == "unknown"
    assert intent("不行", vocabulary=vocabulary) == "confirm"  # "不" alone is no longer listed
    assert intent("不太 行", vocabulary=vocabulary) == "confirm"  # not right before it


def test_without_negators_every_confirm_word_confirms(tmp_path: Path) -> None:
    def no_negators(doc: dict[str, Any]) -> None:
        del doc["confirm"]["negators"]

    vocabulary = load_vocabulary(_with_intents(tmp_path, no_negators))
    assert vocabulary.intents.confirm_negators is None
    assert intent("好的", vocabulary=vocabulary) == "confirm"
    assert intent("OK", vocabulary=vocabulary) == "confirm"
    assert intent("不好", vocabulary=vocabulary) == "confirm"  # nothing left to cancel it


def test_a_polite_phrase_ending_in_a_shorter_one_is_stripped_whole(tmp_path: Path) -> None:
    def nested_polite(doc: dict[str, Any]) -> None:
        doc["polite"]["en"] = ["thanks", "many thanks"]

    vocabulary = load_vocabulary(_with_intents(tmp_path, nested_polite))
    # the longer phrase first: stripping "thanks" first would leave "td many"
    assert intent("TD many thanks", vocabulary=vocabulary) == "opt_out"
    assert intent("TD thanks", vocabulary=vocabulary) == "opt_out"


def test_confirm_max_chars_defaults_to_60(tmp_path: Path) -> None:
    def no_limit(doc: dict[str, Any]) -> None:
        del doc["confirm"]["max_chars"]

    vocabulary = load_vocabulary(_with_intents(tmp_path, no_limit))
    at_limit = "OK see you on Tuesday morning at the clinic at eleven thirty"
    assert intent(at_limit, vocabulary=vocabulary) == "confirm"
    assert intent(at_limit.replace("Tuesday", "Thursday"), vocabulary=vocabulary) == "unknown"


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node = doc
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


def _field_id(message: str) -> str:
    """A plain test id from an error message: the field it names."""
    field = message.split(":")[0].replace("(top level)", "top")
    return "".join(c if c.isalnum() or c in "._" else "_" for c in field)


NOT_A_STRING = (
    ': expected a non-empty string, got 5 (quote words YAML reads as booleans or numbers: "no",'
    ' "yes", "on", "1")'
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda doc: ["stop"], "(top level): expected a mapping"),
        (_set("confirm", value=["ok"]), "confirm: expected a mapping"),
        (_set("polite", value=["please"]), "polite: expected a mapping"),
        (_set("polite", "zh", value=["请", 5]), "polite.zh[1]" + NOT_A_STRING),
        (_set("polite", "en", value=[5]), "polite.en[0]" + NOT_A_STRING),
        (_set("confirm", "negators", value=["not"]), "confirm.negators: expected a mapping"),
        (_set("confirm", "negators", "zh", value=[5]), "confirm.negators.zh[0]" + NOT_A_STRING),
        (_set("confirm", "negators", "en", value=[5]), "confirm.negators.en[0]" + NOT_A_STRING),
        (_set("numbered", value=["confirm"]), "numbered: expected a mapping"),
        (_set("numbered", "3", value="dance"), "numbered.3: unknown intent 'dance'"),
        (_set("opt_out", value=["stop"]), "opt_out: expected a mapping"),
        (_set("opt_out", "whole", value=["stop"]), "opt_out.whole: expected a mapping"),
        (_set("opt_out", "whole", "fr", value=["arrêt"]), "opt_out.whole: unknown language 'fr'"),
        (_set("opt_out", "whole", "en", value=["stop", 5]), "opt_out.whole.en[1]" + NOT_A_STRING),
        (
            _set("opt_out", "whole", "en", value=["re:stop ("]),
            "opt_out.whole: bad regular expression 're:stop (': missing ), unterminated"
            " subpattern at position 5",
        ),
        (_set("opt_out", "anywhere", value=["stop"]), "opt_out.anywhere: expected a mapping"),
        (_set("opt_in", value=["start"]), "opt_in: expected a mapping"),
        (_set("opt_in", "whole", value=["start"]), "opt_in.whole: expected a mapping"),
        (_set("opt_in_after_opt_out", value=["yes"]), "opt_in_after_opt_out: expected a mapping"),
        (
            _set("opt_in_after_opt_out", "whole", value=["yes"]),
            "opt_in_after_opt_out.whole: expected a mapping",
        ),
        (_set("help", value=["help"]), "help: expected a mapping"),
        (_set("help", "whole", value=["help"]), "help.whole: expected a mapping"),
        (_set("reschedule", value=["改期"]), "reschedule: expected a mapping"),
        (_set("reschedule", "anywhere", value=["改期"]), "reschedule.anywhere: expected a mapping"),
        (_set("confirm", "anywhere", value=["ok"]), "confirm.anywhere: expected a mapping"),
        (_set("confirm", "emoji", value="👍"), "confirm.emoji: expected a list of strings"),
        (_set("confirm", "max_chars", value=0), "confirm.max_chars: expected an integer >= 1"),
    ],
    ids=lambda value: _field_id(value) if isinstance(value, str) else None,
)
def test_a_malformed_intents_file_names_the_field(
    tmp_path: Path, change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    directory = _with_intents(tmp_path, change)
    with pytest.raises(VocabularyError) as error:
        load_vocabulary(directory)
    assert str(error.value) == f"{directory / 'intents.yaml'}: {message}"


def test_max_chars_of_1_is_accepted(tmp_path: Path) -> None:
    vocabulary = load_vocabulary(_with_intents(tmp_path, _set("confirm", "max_chars", value=1)))
    assert intent("k", vocabulary=vocabulary) == "confirm"
    assert intent("ok", vocabulary=vocabulary) == "unknown"
