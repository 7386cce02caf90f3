"""Segment counting (GSM-7 / UCS-2) and sender signatures."""

import pytest

from app.sms.segments import (
    SegmentInfo,
    _count_parts,
    _unit_costs,
    count_segments,
    with_signature,
)

SIGNATURE = "【江苏省肿瘤医院】"


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_single_and_multipart_boundaries(length: int, segments: int) -> None:
    info = count_segments("a" * length)
    assert info.encoding == "GSM-7"
    assert info.units == length
    assert info.segments == segments
    assert info.per_segment == (160 if segments == 1 else 153)


@pytest.mark.parametrize(
    ("length", "segments"),
    [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_single_and_multipart_boundaries(length: int, segments: int) -> None:
    info = count_segments("好" * length)
    assert info == SegmentInfo("UCS-2", length, segments, 70 if segments == 1 else 67)


def test_ucs2_without_surrogates_counts_as_packing_character_by_character() -> None:
    # The one-unit-per-character shortcut must agree with packing each character in turn.
    for length in range(1, 420):
        body = ("好" * length)[: length - 1] + "!"
        packed = _count_parts(_unit_costs(body, "UCS-2"), 67)
        info = count_segments(body)
        assert info.units == length
        assert info.segments == (1 if length <= 70 else packed)


@pytest.mark.parametrize("char", ["^", "{", "}", "[", "]", "~", "\\", "|", "€", "\f"])
def test_gsm_extension_characters_count_two_units(char: str) -> None:
    info = count_segments("a" * 158 + char)
    assert info.encoding == "GSM-7"
    assert info.units == 160
    assert info.segments == 1
    assert count_segments("a" * 159 + char).segments == 2


def test_escape_pair_is_not_split_across_parts() -> None:
    # 306 units would fit 2 parts of 153, but "€" at units 153-154 moves to part 2 whole.
    body = "a" * 152 + "€" + "a" * 152
    info = count_segments(body)
    assert info.units == 306
    assert info.segments == 3


def test_gsm_accented_letters_stay_gsm7_but_other_accents_force_ucs2() -> None:
    assert count_segments("é à ü Ñ £ ¥ §").encoding == "GSM-7"
    assert count_segments("ê").encoding == "UCS-2"


def test_one_chinese_character_makes_the_whole_message_ucs2() -> None:
    info = count_segments("a" * 69 + "中")
    assert info == SegmentInfo("UCS-2", 70, 1, 70)
    assert count_segments("a" * 70 + "中").segments == 2


def test_emoji_outside_the_bmp_count_two_utf16_units() -> None:
    assert count_segments("👍").units == 2
    assert count_segments("a" * 68 + "👍") == SegmentInfo("UCS-2", 70, 1, 70)
    assert count_segments("a" * 69 + "👍").segments == 2


def test_surrogate_pair_is_not_split_across_parts() -> None:
    body = "a" * 66 + "👍" + "a" * 66
    info = count_segments(body)
    assert info.units == 134
    assert info.segments == 3


def test_empty_body_costs_nothing() -> None:
    assert count_segments("") == SegmentInfo("GSM-7", 0, 0, 160)


def test_chinese_reminder_with_signature_fits_one_segment_until_70() -> None:
    body = "您好，您的下次治疗安排在3月5日上午8:30，请提前空腹抽血。回复TD退订"
    signed = with_signature(body, SIGNATURE)
    assert signed.startswith(SIGNATURE)
    info = count_segments(signed)
    assert info.encoding == "UCS-2"
    assert info.units == len(SIGNATURE) + len(body)
    assert info.segments == 1
    too_long = with_signature("好" * (71 - len(SIGNATURE)), SIGNATURE)
    assert count_segments(too_long).segments == 2


def test_signature_is_added_once_and_can_go_last() -> None:
    once = with_signature("您好", SIGNATURE)
    assert with_signature(once, SIGNATURE) == once
    assert with_signature("Hello", "[Cadence]", position="suffix") == "Hello[Cadence]"
    assert with_signature("Hello", "  ") == "Hello"
    with pytest.raises(ValueError, match="position"):
        with_signature("Hello", SIGNATURE, position="middle")
