"""Server-side SVG charts: well-formed, escaped, accessible, deterministic, markers in place."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from app.domain import charts

NS = {"svg": charts.SVG_NS}
START, END = date(2025, 3, 1), date(2025, 4, 30)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{{{charts.SVG_NS}}}svg"
    return root


def weekdays(first: date, count: int) -> list[date]:
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def sample(**kwargs) -> str:
    series = {
        "dysphagia": [(date(2025, 3, 3), 0), (date(2025, 4, 7), 2), (date(2025, 3, 20), 1)],
        "diarrhea": [(date(2025, 3, 6), 2), (date(2025, 3, 10), None), (date(2025, 5, 9), 3)],
    }
    markers = [
        (date(2025, 3, 1), "Cycle 1", "infusion"),
        (date(2025, 3, 22), "Cycle 2", "infusion"),
        (date(2025, 2, 1), "before the period", "infusion"),
        *[(d, "Radiotherapy", "radiotherapy") for d in weekdays(date(2025, 3, 31), 20)],
        (date(2025, 4, 20), "CT scan", "assessment"),
    ]
    options = {"start": START, "end": END, "labels": {"dysphagia": "Dysphagia", "diarrhea": "腹泻"}}
    options.update(kwargs)
    return charts.trend_chart_svg(series, markers, **options)


def test_trend_chart_is_well_formed_and_accessible() -> None:
    root = parse(sample())
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby").split()
    title = root.find(f"svg:title[@id='{title_id}']", NS)
    desc = root.find(f"svg:desc[@id='{desc_id}']", NS)
    assert title is not None and title.text == "Symptom grades over time"
    assert desc is not None
    assert "Dysphagia: 3 reports, highest 2 on 2025-04-07, latest 2 on 2025-04-07." in desc.text
    assert "腹泻: 1 report" in desc.text
    assert "Infusion: 2025-03-01, 2025-03-22." in desc.text
    assert "Radiotherapy: 2025-03-31 to 2025-04-25." in desc.text


def test_trend_chart_has_no_script_or_external_resource() -> None:
    svg = sample()
    assert "<script" not in svg and "href" not in svg and "url(" not in svg
    assert svg.count("http") == 1  # the SVG namespace only
    assert "<foreignObject" not in svg


def test_trend_chart_is_deterministic() -> None:
    assert sample() == sample()


def test_one_series_per_symptom_with_points_in_the_period() -> None:
    root = parse(sample())
    groups = root.findall("svg:g[@class='series']", NS)
    assert [g.get("data-symptom") for g in groups] == ["dysphagia", "diarrhea"]
    dysphagia, diarrhoea = groups
    assert len(dysphagia.findall("svg:circle", NS)) == 3
    assert len(diarrhoea.findall("svg:circle", NS)) == 1  # None and out-of-period left out
    titles = [c.find("svg:title", NS).text for c in dysphagia.findall("svg:circle", NS)]
    assert titles == [
        "Dysphagia 2025-03-03: 0",
        "Dysphagia 2025-03-20: 1",
        "Dysphagia 2025-04-07: 2",
    ]


def test_points_sit_on_their_date_and_grade() -> None:
    root = parse(sample(width=720, height=320))
    circle = root.find("svg:g[@data-symptom='diarrhea']/svg:circle", NS)
    plot_width = 720 - 48 - 16
    expected_x = 48 + (date(2025, 3, 6) - START).days / (END - START).days * plot_width
    assert float(circle.get("cx")) == pytest.approx(expected_x, abs=0.06)
    zero = root.find("svg:text[.='0']", NS)
    three = root.find("svg:text[.='3']", NS)
    grade_2_y = float(zero.get("y")) + (float(three.get("y")) - float(zero.get("y"))) * 2 / 3
    assert float(circle.get("cy")) == pytest.approx(grade_2_y, abs=1.0)  # series offset <= 0.75


def test_step_and_line_styles() -> None:
    step = parse(sample()).find("svg:g[@data-symptom='dysphagia']/svg:path", NS).get("d")
    line = parse(sample(style="line")).find("svg:g[@data-symptom='dysphagia']/svg:path", NS)
    assert " H" in step and " V" in step and " L" not in step
    assert " L" in line.get("d") and " H" not in line.get("d")
    with pytest.raises(ValueError, match="style"):
        sample(style="bars")


def test_infusions_are_marked_inside_the_period_only() -> None:
    root = parse(sample())
    infusions = root.findall("svg:g[@class='marker infusion']", NS)
    assert [g.find("svg:title", NS).text for g in infusions] == [
        "Cycle 1: 2025-03-01",
        "Cycle 2: 2025-03-22",
    ]
    first_line = infusions[0].find("svg:line", NS)
    assert first_line.get("x1") == first_line.get("x2") == "48"
    assert infusions[0].find("svg:path", NS) is not None  # the tick under the axis
    others = root.findall("svg:g[@class='marker assessment']", NS)
    assert [g.find("svg:title", NS).text for g in others] == ["CT scan: 2025-04-20"]


def test_radiotherapy_fractions_form_one_shaded_band() -> None:
    root = parse(sample())
    bands = root.findall("svg:rect[@class='radiotherapy']", NS)
    assert len(bands) == 1
    assert bands[0].find("svg:title", NS).text == "Radiotherapy: 2025-03-31 – 2025-04-25"
    plot_width = 720 - 48 - 16
    days = (END - START).days
    left = 48 + (date(2025, 3, 31) - START).days / days * plot_width
    right = 48 + (date(2025, 4, 26) - START).days / days * plot_width
    assert float(bands[0].get("x")) == pytest.approx(left, abs=0.06)
    assert float(bands[0].get("width")) == pytest.approx(right - left, abs=0.11)


def test_two_radiotherapy_courses_weeks_apart_are_two_bands() -> None:
    markers = [(d, "", "radiotherapy") for d in weekdays(date(2025, 3, 3), 5)]
    markers += [(d, "", "radiotherapy") for d in weekdays(date(2025, 4, 7), 5)]
    root = parse(charts.trend_chart_svg({}, markers, start=START, end=END))
    bands = root.findall("svg:rect[@class='radiotherapy']", NS)
    assert [b.find("svg:title", NS).text for b in bands] == [
        "Radiotherapy: 2025-03-03 – 2025-03-07",
        "Radiotherapy: 2025-04-07 – 2025-04-11",
    ]


def test_all_text_is_escaped() -> None:
    nasty = 'Dysphagia <script>alert("x")</script> & "quotes"'
    svg = charts.trend_chart_svg(
        {"dysphagia": [(START, 1)], 'x"><script>': [(START, 2)]},
        [(START, "<b>Cycle 1</b> & more", "infusion"), (END, "x", '"><script>')],
        start=START,
        end=END,
        labels={"dysphagia": nasty, "title": "Trend <1>"},
        chart_id='bad id"<>',
    )
    assert "<script" not in svg and "<b>" not in svg
    root = parse(svg)
    assert root.find("svg:title", NS).text == "Trend <1>"
    legend_texts = [t.text for t in root.findall("svg:g[@class='legend-entry']/svg:text", NS)]
    assert nasty in legend_texts
    infusion = root.find("svg:g[@class='marker infusion']/svg:title", NS)
    assert infusion.text == "<b>Cycle 1</b> & more: 2025-03-01"
    assert root.get("id") == "bad-id---"


def test_grade_axis_grows_to_four_when_needed() -> None:
    def axis_labels(svg: str) -> list[str]:
        root = parse(svg)
        return [t.text for t in root.findall("svg:text[@text-anchor='end']", NS)]

    assert axis_labels(sample()) == ["0", "1", "2", "3"]
    four = charts.trend_chart_svg({"fever": [(START, 4)]}, start=START, end=END)
    assert axis_labels(four) == ["0", "1", "2", "3", "4"]
    assert axis_labels(sample(max_grade=4)) == ["0", "1", "2", "3", "4"]


def test_empty_chart_says_so_and_keeps_its_size() -> None:
    root = parse(charts.trend_chart_svg({}, [], start=START, end=END, height=300))
    assert root.get("height") == "300"
    texts = [t.text for t in root.iter(f"{{{charts.SVG_NS}}}text")]
    assert "No symptom reports in this period" in texts
    translated = charts.trend_chart_svg(
        {}, start=START, end=END, labels={"empty": "此期间无症状报告", "title": "症状趋势"}
    )
    assert "此期间无症状报告" in translated and "<title" in translated


def test_legend_wraps_and_chart_keeps_the_requested_height() -> None:
    series = {f"symptom_{i}": [(START, 1)] for i in range(12)}
    root = parse(charts.trend_chart_svg(series, start=START, end=END, width=400, height=360))
    assert root.get("height") == "360"
    entries = root.findall("svg:g[@class='legend-entry']/svg:line", NS)
    assert len(entries) == 12
    rows = {e.get("y1") for e in entries}
    assert len(rows) > 1
    assert all(float(e.get("x2")) <= 400 for e in entries)


def test_date_axis_ticks_fit_and_show_years_across_new_year() -> None:
    root = parse(charts.trend_chart_svg({}, start=date(2024, 11, 1), end=date(2025, 6, 1)))
    labels = [t.text for t in root.findall("svg:text[@text-anchor='middle'][@font-size='10']", NS)]
    assert 2 <= len(labels) <= 10
    assert labels[0] == "2024-11-01"


def test_trend_chart_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="before start"):
        charts.trend_chart_svg({}, start=END, end=START)
    with pytest.raises(ValueError, match="grade must be a number"):
        charts.trend_chart_svg({"nausea": [(START, "2")]}, start=START, end=END)
    with pytest.raises(ValueError, match="grade must be a number"):
        charts.trend_chart_svg({"nausea": [(START, -1)]}, start=START, end=END)


# --------------------------------------------------------------------------- bar chart


def bars_svg(**kwargs) -> str:
    data = [("Red", 3, "red"), ("Amber", 6, "amber"), ("Green", 12, "green"), ("P-0007", None)]
    options = {"title": "Alerts by level", "width": 480}
    options.update(kwargs)
    return charts.bar_chart_svg(data, **options)


def test_bar_chart_well_formed_with_proportional_bars() -> None:
    root = parse(bars_svg())
    assert root.find("svg:title", NS).text == "Alerts by level"
    assert root.find("svg:desc", NS).text == "Red: 3; Amber: 6; Green: 12; P-0007: n/a"
    rects = root.findall("svg:g[@class='bar']/svg:rect", NS)
    widths = [float(r.get("width")) for r in rects]
    assert widths[3] == 0
    assert widths[0] * 4 == pytest.approx(widths[2], abs=0.2)
    assert widths[1] * 2 == pytest.approx(widths[2], abs=0.2)
    assert [r.get("fill") for r in rects] == [
        charts.TONES["red"],
        charts.TONES["amber"],
        charts.TONES["green"],
        charts.TONES["neutral"],
    ]
    assert bars_svg() == bars_svg()


def test_bar_chart_units_decimals_and_fixed_scale() -> None:
    root = parse(
        charts.bar_chart_svg(
            [("Overall", 87.5), ("P-0001", 100.0)],
            title="Response rate",
            unit="%",
            decimals=1,
            max_value=100,
        )
    )
    values = [t.text for t in root.findall("svg:g[@class='bar']/svg:text", NS)][1::2]
    assert values == ["87.5%", "100.0%"]
    widths = [float(r.get("width")) for r in root.findall("svg:g[@class='bar']/svg:rect", NS)]
    assert widths[0] / widths[1] == pytest.approx(0.875, abs=0.01)


def test_bar_chart_escapes_and_refuses_bad_values() -> None:
    svg = charts.bar_chart_svg([("<i>P & Q</i>", 1)], title="A <b>title</b>")
    assert "<i>" not in svg and "<b>" not in svg
    assert parse(svg).find("svg:title", NS).text == "A <b>title</b>"
    with pytest.raises(ValueError, match="value must be a number >= 0"):
        charts.bar_chart_svg([("x", -1)], title="t")
    with pytest.raises(ValueError, match="tone must be one of"):
        charts.bar_chart_svg([("x", 1, "purple")], title="t")


def test_empty_bar_chart_is_valid() -> None:
    root = parse(charts.bar_chart_svg([], title="Nothing yet"))
    assert root.findall("svg:g[@class='bar']", NS) == []
