"""The compact outbox-id list a batch carries as its reference (Tencent SessionContext)."""

from __future__ import annotations

import pytest

from app.sms import batch_chunks, encode_references, reference_covers, reference_ids


def test_runs_are_written_as_ranges_and_singles_alone() -> None:
    assert encode_references(["7"]) == "7"
    assert encode_references(["12", "13", "14", "20", "22", "23"]) == "12-14,20,22-23"
    assert encode_references(["9", "3", "4"]) == "3-4,9"


@pytest.mark.parametrize(
    ("reference", "outbox_id", "covered"),
    [
        ("7", 7, True),
        ("7", 70, False),
        ("12-14,20", 13, True),
        ("12-14,20", 14, True),
        ("12-14,20", 15, False),
        ("12-14,20", 20, True),
        ("12-14,20", 2, False),
        ("outid:7", 7, False),  # not a list we wrote: only an exact match counts
        ("abc", "abc", True),
        (None, 7, False),
        ("", 7, False),
    ],
)
def test_a_reference_covers_exactly_its_members(
    reference: str | None, outbox_id: int | str, covered: bool
) -> None:
    assert reference_covers(reference, outbox_id) is covered


def test_every_member_and_no_other_id_is_covered() -> None:
    members = ["5", "6", "9", "100", "101", "102", "250"]
    reference = encode_references(members)
    covered = {n for n in range(0, 300) if reference_covers(reference, n)}
    assert covered == {int(m) for m in members}


def test_chunks_respect_the_member_limit_and_the_room() -> None:
    spaced = [str(100000 + 2 * i) for i in range(150)]  # no runs: 7 characters each
    chunks = batch_chunks(spaced, 200, 511)
    assert [i for chunk in chunks for i in chunk] == list(range(150))
    assert all(len(encode_references([spaced[i] for i in c])) <= 511 for c in chunks)
    assert len(chunks) == 3
    consecutive = [str(1000 + i) for i in range(450)]
    assert [len(c) for c in batch_chunks(consecutive, 200, 511)] == [200, 200, 50]
    assert batch_chunks([], 200, 511) == []


def test_the_ids_of_a_reference_are_listed_and_untrusted_values_give_none() -> None:
    assert reference_ids("12-14,20") == [12, 13, 14, 20]
    assert reference_ids("7") == [7]
    assert reference_ids(encode_references(["5", "6", "9"])) == [5, 6, 9]
    assert reference_ids("outid:7") == []
    assert reference_ids("14-12") == []
    assert reference_ids("1-100000", limit=200) == []
    assert reference_ids(None) == [] and reference_ids("") == []
