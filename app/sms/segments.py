"""SMS segment counter (GSM 03.38 7-bit vs UCS-2) and sender signatures.

Rules: GSM-7 text fits 160 units in one SMS and 153 per part of a concatenated one; the GSM
extension characters (^ { } [ ] ~ \\ | € and form feed) take 2 units (escape + char). Any
other character (one Chinese character is enough) makes the whole message UCS-2: 70 units in
one SMS, 67 per part; characters outside the BMP (most emoji) take 2 UTF-16 units. An escape
pair or a surrogate pair is never split across two parts, as real encoders do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: frozenset[str] = frozenset("^{}\\[~]|€\f")

SINGLE_LIMIT: dict[str, int] = {"GSM-7": 160, "UCS-2": 70}
PART_LIMIT: dict[str, int] = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class SegmentInfo:
    """How a body is encoded and how many SMS segments it costs."""

    encoding: Encoding
    units: int
    segments: int
    per_segment: int


def is_gsm7(body: str) -> bool:
    """True when every character of ``body`` exists in the GSM-7 basic or extension table."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in body)


def _unit_costs(body: str, encoding: Encoding) -> list[int]:
    """Units each character takes: septets for GSM-7, UTF-16 code units for UCS-2."""
    if encoding == "GSM-7":
        return [2 if char in GSM7_EXTENSION else 1 for char in body]
    return [2 if ord(char) > 0xFFFF else 1 for char in body]


def _count_parts(costs: list[int], capacity: int) -> int:
    """Pack characters greedily into parts of ``capacity`` units without splitting one."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > capacity:
            parts, used = parts + 1, 0
        used += cost
    return parts


def count_segments(body: str) -> SegmentInfo:
    """Count the encoding, units and segments of an SMS body (signature included)."""
    encoding: Encoding = "GSM-7" if is_gsm7(body) else "UCS-2"
    if encoding == "UCS-2" and len(body.encode("utf-16-le")) == 2 * len(body):
        return _plain_ucs2(len(body))  # no surrogate pair: nothing to keep whole
    costs = _unit_costs(body, encoding)
    units = sum(costs)
    if units <= SINGLE_LIMIT[encoding]:
        return SegmentInfo(encoding, units, 1 if units else 0, SINGLE_LIMIT[encoding])
    per_part = PART_LIMIT[encoding]
    return SegmentInfo(encoding, units, _count_parts(costs, per_part), per_part)


def _plain_ucs2(units: int) -> SegmentInfo:
    """``count_segments`` of a UCS-2 body whose characters take one unit each (the usual
    Chinese reminder): parts are filled exactly, no character-by-character packing needed."""
    single, per_part = SINGLE_LIMIT["UCS-2"], PART_LIMIT["UCS-2"]
    if units <= single:
        return SegmentInfo("UCS-2", units, 1 if units else 0, single)
    return SegmentInfo("UCS-2", units, -(-units // per_part), per_part)


def with_signature(body: str, signature: str, position: str = "prefix") -> str:
    """Add the sender signature (e.g. 【江苏省肿瘤医院】) once, before or after the body."""
    if position not in ("prefix", "suffix"):
        raise ValueError(f"signature position must be 'prefix' or 'suffix', not {position!r}")
    signature = signature.strip()
    if not signature:
        return body
    if position == "prefix":
        return body if body.startswith(signature) else signature + body
    return body if body.endswith(signature) else body + signature
