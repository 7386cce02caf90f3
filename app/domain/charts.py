"""Server-side SVG charts: symptom grade trends with treatment markers, and simple bar charts.

The output is a self-contained ``<svg>`` element (no script, no external fonts, styles or
images) that can be inlined in a page. It is deterministic: the same input gives the same bytes.
Every text is escaped; the chart has an accessible ``<title>`` and ``<desc>`` (role="img"), and
each point and marker a ``<title>`` that browsers show as a tooltip without JavaScript.

Pure domain code: standard library only. Labels are passed in already translated.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from xml.sax.saxutils import escape, quoteattr

SVG_NS = "http://www.w3.org/2000/svg"
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
"""Okabe-Ito colours (distinguishable with colour-vision deficiency), in order of use."""
DASHES = ("", "6 3", "2 3", "9 3 2 3")
"""Dash patterns cycled with the colours, so series differ without colour too."""
TONES = {"red": "#C0392B", "amber": "#E69F00", "green": "#009E73", "neutral": "#0072B2"}
"""Bar colours by tone (triage levels and a neutral blue)."""
RADIOTHERAPY_GAP_DAYS = 7
"""Radiotherapy dates at most this many days apart form one band (weekends, holidays)."""
DEFAULT_LABELS = {
    "title": "Symptom grades over time",
    "grade": "Grade",
    "infusion": "Infusion",
    "radiotherapy": "Radiotherapy",
    "empty": "No symptom reports in this period",
    "range": "Grades 0-{top} from {start} to {end}.",
    "no_reports": "{name}: no reports.",
    "series": "{name}: {count} {noun}, highest {peak} on {peak_date}, latest {last} on {last_date}.",
    "report": "report",
    "reports": "reports",
    "dates": "{name}: {dates}.",
    "run": "{name}: {first} to {last}.",
}
"""English defaults for the chart's own words; override them through ``labels``."""

_FONT = 'font-family="sans-serif"'
_MARGIN_LEFT = 48
_MARGIN_RIGHT = 16
_MARGIN_TOP = 16
_AXIS_SPACE = 24
_LEGEND_ROW = 20
_MIN_PLOT_HEIGHT = 80

Series = Mapping[str, Sequence[tuple[date, int | float | None]]]
Marker = tuple[date, str, str]


def _num(value: float) -> str:
    """A coordinate with one decimal (deterministic, compact)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _text_width(text: str, size: float) -> float:
    """Approximate rendered width: wide (CJK) characters count double."""
    return sum(size if unicodedata.east_asian_width(c) in "WF" else size * 0.6 for c in text)


def _safe_id(value: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", value) or "chart"
    return cleaned if cleaned[0].isalpha() else f"c-{cleaned}"


def _label(labels: Mapping[str, str], key: str) -> str:
    return labels.get(key) or DEFAULT_LABELS.get(key) or key


# --------------------------------------------------------------------------- trend chart


def trend_chart_svg(
    series: Series,
    markers: Sequence[Marker] = (),
    *,
    start: date,
    end: date,
    labels: Mapping[str, str] | None = None,
    width: int = 720,
    height: int = 320,
    max_grade: int | None = None,
    style: str = "step",
    chart_id: str = "trend",
    desc: str | None = None,
) -> str:
    """SVG of each symptom's grade over [start, end] with infusion and radiotherapy markers.

    ``series`` maps a symptom code to (date, grade) points (None grades are left out);
    ``markers`` are (date, label, kind): kind "infusion" draws a vertical line, "radiotherapy"
    dates are joined into shaded bands, any other kind a dotted line. ``labels`` names the
    symptoms and may override the chart's words (title, grade, infusion, radiotherapy, empty).
    ``style`` is "step" (a grade holds until the next report) or "line". ``height`` includes
    the legend. The grade axis is 0-3 (0-``max_grade``, or 0-4 when a grade 4 is present).
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if style not in ("step", "line"):
        raise ValueError(f"style must be 'step' or 'line', not {style!r}")
    words = dict(labels or {})
    cid = _safe_id(chart_id)
    points = {code: _clean_points(code, pts, start, end) for code, pts in series.items()}
    top_grade = max_grade or max([3, *(g for pts in points.values() for _, g in pts)])
    legend = _legend_layout(list(points), words, width)
    legend_height = len({row for row, _ in legend.values()}) * _LEGEND_ROW + (8 if legend else 0)
    plot_height = max(_MIN_PLOT_HEIGHT, height - _MARGIN_TOP - _AXIS_SPACE - legend_height)
    total_height = _MARGIN_TOP + plot_height + _AXIS_SPACE + legend_height
    frame = _Frame(
        start, end, _MARGIN_LEFT, _MARGIN_TOP, width - _MARGIN_LEFT - _MARGIN_RIGHT, plot_height
    )
    title = _label(words, "title")
    description = desc or _trend_description(points, markers, words, start, end, top_grade)
    parts = [
        _svg_open(cid, width, total_height),
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(description)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{total_height}" fill="#ffffff"/>',
        *_radiotherapy_bands(frame, markers, words),
        *_grade_axis(frame, top_grade, words),
        *_date_axis(frame),
        *_event_lines(frame, markers, words),
    ]
    if not any(points.values()):
        parts.append(
            f'<text x="{_num(frame.left + frame.width / 2)}" '
            f'y="{_num(frame.top + frame.height / 2)}" text-anchor="middle" font-size="13" '
            f'fill="#555555" {_FONT}>{escape(_label(words, "empty"))}</text>'
        )
    count = len(points)
    for index, (code, pts) in enumerate(points.items()):
        offset = (index - (count - 1) / 2) * 1.5 if count > 1 else 0.0
        parts += _series_marks(frame, index, code, pts, words, top_grade, offset, style)
    parts += _legend_marks(legend, words, frame.top + frame.height + _AXIS_SPACE + 8)
    parts.append("</svg>")
    return "\n".join(parts)


class _Frame:
    """The plot area and its scales."""

    def __init__(
        self, start: date, end: date, left: float, top: float, width: float, height: float
    ) -> None:
        self.start, self.end = start, end
        self.left, self.top, self.width, self.height = left, top, width, height
        self.days = max((end - start).days, 1)

    def x(self, day: date) -> float:
        """Horizontal position of a date."""
        return self.left + (day - self.start).days / self.days * self.width

    def y(self, grade: float, top_grade: int) -> float:
        """Vertical position of a grade."""
        return self.top + self.height * (1 - grade / top_grade)

    def contains(self, day: date) -> bool:
        """True when the date is inside the chart's period."""
        return self.start <= day <= self.end


def _clean_points(
    code: str, points: Sequence[tuple[date, int | float | None]], start: date, end: date
) -> list[tuple[date, int | float]]:
    kept = []
    for day, grade in points:
        if grade is None or not start <= day <= end:
            continue
        if isinstance(grade, bool) or not isinstance(grade, int | float) or grade < 0:
            raise ValueError(f"{code}: grade must be a number >= 0, got {grade!r}")
        kept.append((day, grade))
    return sorted(kept, key=lambda point: point[0])


def _svg_open(cid: str, width: int, height: int) -> str:
    return (
        f'<svg xmlns="{SVG_NS}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" id="{cid}">'
    )


def _grade_axis(frame: _Frame, top_grade: int, words: Mapping[str, str]) -> list[str]:
    parts = []
    for grade in range(top_grade + 1):
        y = _num(frame.y(grade, top_grade))
        parts.append(
            f'<line x1="{_num(frame.left)}" y1="{y}" x2="{_num(frame.left + frame.width)}" '
            f'y2="{y}" stroke="#dddddd" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_num(frame.left - 8)}" y="{y}" dy="4" text-anchor="end" font-size="11" '
            f'fill="#333333" {_FONT}>{grade}</text>'
        )
    middle = _num(frame.top + frame.height / 2)
    parts.append(
        f'<text x="12" y="{middle}" text-anchor="middle" font-size="11" fill="#333333" '
        f'transform="rotate(-90 12 {middle})" {_FONT}>{escape(_label(words, "grade"))}</text>'
    )
    return parts


def _date_ticks(frame: _Frame) -> list[date]:
    label_width = 72 if frame.start.year != frame.end.year else 44
    most = max(2, int(frame.width // label_width))
    for step in (1, 2, 7, 14, 28, 56, 91, 182, 364, 728):
        if frame.days // step + 1 <= most:
            break
    return [frame.start + timedelta(days=k * step) for k in range(frame.days // step + 1)]


def _date_axis(frame: _Frame) -> list[str]:
    bottom = _num(frame.top + frame.height)
    parts = [
        f'<line x1="{_num(frame.left)}" y1="{bottom}" x2="{_num(frame.left + frame.width)}" '
        f'y2="{bottom}" stroke="#333333" stroke-width="1"/>'
    ]
    same_year = frame.start.year == frame.end.year
    for day in _date_ticks(frame):
        x = _num(frame.x(day))
        text = day.strftime("%m-%d") if same_year else day.isoformat()
        parts.append(
            f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{_num(frame.top + frame.height + 4)}" '
            'stroke="#333333" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{x}" y="{_num(frame.top + frame.height + 16)}" text-anchor="middle" '
            f'font-size="10" fill="#333333" {_FONT}>{escape(text)}</text>'
        )
    return parts


def _radiotherapy_runs(markers: Sequence[Marker]) -> list[tuple[date, date, str]]:
    """Radiotherapy marker dates joined into (first, last, label) runs."""
    days = sorted({(d, label) for d, label, kind in markers if kind == "radiotherapy"})
    runs: list[tuple[date, date, str]] = []
    for day, label in days:
        if runs and (day - runs[-1][1]).days <= RADIOTHERAPY_GAP_DAYS:
            runs[-1] = (runs[-1][0], day, runs[-1][2])
        else:
            runs.append((day, day, label))
    return runs


def _radiotherapy_bands(
    frame: _Frame, markers: Sequence[Marker], words: Mapping[str, str]
) -> list[str]:
    parts = []
    for first, last, label in _radiotherapy_runs(markers):
        if last < frame.start or first > frame.end:
            continue
        left = frame.x(max(first, frame.start))
        right = frame.x(min(last + timedelta(days=1), frame.end))
        name = label or _label(words, "radiotherapy")
        parts.append(
            f'<rect class="radiotherapy" x="{_num(left)}" y="{_num(frame.top)}" '
            f'width="{_num(max(right - left, 2))}" height="{_num(frame.height)}" '
            f'fill="#F0E442" fill-opacity="0.25">'
            f"<title>{escape(f'{name}: {first.isoformat()} – {last.isoformat()}')}</title></rect>"
        )
        parts.append(
            f'<text x="{_num(left + 3)}" y="{_num(frame.top + 11)}" font-size="10" '
            f'fill="#6b5e00" {_FONT}>{escape(name)}</text>'
        )
    return parts


def _event_lines(frame: _Frame, markers: Sequence[Marker], words: Mapping[str, str]) -> list[str]:
    parts = []
    for day, label, kind in sorted(markers, key=lambda m: (m[0], m[2], m[1])):
        if kind == "radiotherapy" or not frame.contains(day):
            continue
        x = _num(frame.x(day))
        infusion = kind == "infusion"
        dash = "4 3" if infusion else "1 3"
        name = label or _label(words, kind)
        parts.append(
            f"<g class={quoteattr(f'marker {kind}')}>"
            f"<title>{escape(f'{name}: {day.isoformat()}')}</title>"
            f'<line x1="{x}" y1="{_num(frame.top)}" x2="{x}" y2="{_num(frame.top + frame.height)}" '
            f'stroke="#7f7f7f" stroke-width="1" stroke-dasharray="{dash}"/>'
            + (
                f'<path d="M{x} {_num(frame.top + frame.height)} l-4 7 h8 z" fill="#7f7f7f"/>'
                if infusion
                else ""
            )
            + "</g>"
        )
    return parts


def _series_marks(
    frame: _Frame,
    index: int,
    code: str,
    points: list[tuple[date, int | float]],
    words: Mapping[str, str],
    top_grade: int,
    offset: float,
    style: str,
) -> list[str]:
    if not points:
        return []
    colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
    name = _label(words, code)
    coords = [(frame.x(d), frame.y(g, top_grade) + offset) for d, g in points]
    path = f"M{_num(coords[0][0])} {_num(coords[0][1])}"
    for x1, y1 in coords[1:]:
        path += f" H{_num(x1)} V{_num(y1)}" if style == "step" else f" L{_num(x1)} {_num(y1)}"
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    parts = [
        f'<g class="series" data-symptom={quoteattr(code)}>',
        f"<title>{escape(name)}</title>",
        f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>',
    ]
    for (day, grade), (x, y) in zip(points, coords, strict=True):
        parts.append(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3.5" fill="{colour}">'
            f"<title>{escape(f'{name} {day.isoformat()}: {_num(grade)}')}</title></circle>"
        )
    parts.append("</g>")
    return parts


def _legend_layout(
    codes: list[str], words: Mapping[str, str], width: int
) -> dict[str, tuple[int, float]]:
    """(row, x) of each legend entry, wrapping to the chart width."""
    layout: dict[str, tuple[int, float]] = {}
    row, x = 0, float(_MARGIN_LEFT)
    for code in codes:
        entry = 28 + _text_width(_label(words, code), 11) + 16
        if x + entry > width - _MARGIN_RIGHT and x > _MARGIN_LEFT:
            row, x = row + 1, float(_MARGIN_LEFT)
        layout[code] = (row, x)
        x += entry
    return layout


def _legend_marks(
    layout: Mapping[str, tuple[int, float]], words: Mapping[str, str], top: float
) -> list[str]:
    parts = []
    for index, (code, (row, x)) in enumerate(layout.items()):
        y = top + row * _LEGEND_ROW + 6
        colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<g class="legend-entry"><line x1="{_num(x)}" y1="{_num(y)}" x2="{_num(x + 22)}" '
            f'y2="{_num(y)}" stroke="{colour}" stroke-width="2"{dash_attr}/>'
            f'<text x="{_num(x + 28)}" y="{_num(y)}" dy="4" font-size="11" fill="#222222" '
            f"{_FONT}>{escape(_label(words, code))}</text></g>"
        )
    return parts


def _trend_description(
    points: Mapping[str, list[tuple[date, int | float]]],
    markers: Sequence[Marker],
    words: Mapping[str, str],
    start: date,
    end: date,
    top_grade: int,
) -> str:
    sentences = [
        _label(words, "range").format(top=top_grade, start=start.isoformat(), end=end.isoformat())
    ]
    for code, pts in points.items():
        name = _label(words, code)
        if not pts:
            sentences.append(_label(words, "no_reports").format(name=name))
            continue
        peak = max(pts, key=lambda p: (p[1], -p[0].toordinal()))
        last = pts[-1]
        sentences.append(
            _label(words, "series").format(
                name=name, count=len(pts), noun=_label(words, "report" if len(pts) == 1 else "reports"),
                peak=_num(peak[1]), peak_date=peak[0].isoformat(),
                last=_num(last[1]), last_date=last[0].isoformat(),
            )
        )  # fmt: skip
    infusions = sorted(d for d, _, kind in markers if kind == "infusion" and start <= d <= end)
    if infusions:
        dates = ", ".join(d.isoformat() for d in infusions)
        sentences.append(_label(words, "dates").format(name=_label(words, "infusion"), dates=dates))
    for first, last, _ in _radiotherapy_runs(markers):
        if last >= start and first <= end:
            sentences.append(
                _label(words, "run").format(
                    name=_label(words, "radiotherapy"),
                    first=first.isoformat(),
                    last=last.isoformat(),
                )
            )
    return " ".join(sentences)


# --------------------------------------------------------------------------- bar chart

Bar = tuple[str, float | None] | tuple[str, float | None, str]


def bar_chart_svg(
    bars: Sequence[Bar],
    *,
    title: str,
    desc: str | None = None,
    unit: str = "",
    width: int = 480,
    bar_height: int = 22,
    max_value: float | None = None,
    decimals: int = 0,
    missing: str = "n/a",
    chart_id: str = "bars",
) -> str:
    """Horizontal bar chart: (label, value[, tone]) with tone red/amber/green/neutral.

    A None value shows ``missing`` and no bar. Values are printed with ``decimals`` and
    ``unit`` (e.g. "%"); the scale runs from 0 to ``max_value`` (default: the largest value).
    """
    rows = [_bar_row(bar) for bar in bars]
    values = [v for _, v, _ in rows if v is not None]
    top = max_value if max_value is not None else max(values, default=0.0)
    scale = top if top > 0 else 1.0
    label_width = max([_text_width(label, 12) for label, _, _ in rows] + [0.0]) + 12
    value_space = _text_width(_format_value(scale, decimals, unit), 11) + 12
    plot_left = 8 + label_width
    plot_width = max(width - plot_left - value_space - 8, 40)
    gap = 8
    height = 8 + len(rows) * (bar_height + gap) + 8
    cid = _safe_id(chart_id)
    description = desc or "; ".join(
        f"{label}: {missing if v is None else _format_value(v, decimals, unit)}"
        for label, v, _ in rows
    )
    parts = [
        _svg_open(cid, width, height),
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(description or title)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for index, (label, value, tone) in enumerate(rows):
        y = 8 + index * (bar_height + gap)
        middle = _num(y + bar_height / 2)
        text = missing if value is None else _format_value(value, decimals, unit)
        length = 0.0 if value is None else min(value / scale, 1.0) * plot_width
        parts.append(
            f'<g class="bar"><title>{escape(f"{label}: {text}")}</title>'
            f'<text x="{_num(plot_left - 8)}" y="{middle}" dy="4" text-anchor="end" '
            f'font-size="12" fill="#222222" {_FONT}>{escape(label)}</text>'
            f'<rect x="{_num(plot_left)}" y="{y}" width="{_num(length)}" height="{bar_height}" '
            f'fill="{TONES[tone]}"/>'
            f'<text x="{_num(plot_left + length + 6)}" y="{middle}" dy="4" font-size="11" '
            f'fill="#222222" {_FONT}>{escape(text)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _bar_row(bar: Bar) -> tuple[str, float | None, str]:
    label, value = str(bar[0]), bar[1]
    tone = bar[2] if len(bar) > 2 else "neutral"  # type: ignore[misc]
    if tone not in TONES:
        raise ValueError(f"{label}: tone must be one of {', '.join(TONES)}, not {tone!r}")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or value < 0
    ):
        raise ValueError(f"{label}: value must be a number >= 0 or None, got {value!r}")
    return label, None if value is None else float(value), tone


def _format_value(value: float, decimals: int, unit: str) -> str:
    return f"{value:.{decimals}f}{unit}"
