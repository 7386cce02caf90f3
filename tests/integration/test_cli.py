"""The Flask CLI: calendar preview (no database), patients enrol/list, demo."""

from __future__ import annotations

import itertools
import json
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.extensions import db
from app.models import CalendarEvent, Patient, utcnow

PD1 = ("sintilimab", "camrelizumab")
CHEMO = ("paclitaxel", "docetaxel", "irinotecan")
JSON_FIELDS = {
    "date",
    "kind",
    "phase",
    "cycle",
    "window_start",
    "window_end",
    "moved_from",
    "flags",
    "drugs",
    "title_en",
}


def _preview(app: Flask, *args: str) -> list[dict]:
    result = app.test_cli_runner().invoke(args=["calendar", "preview", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _infusion_dates(events: list[dict], phase: str | None = None) -> list[date]:
    return [
        date.fromisoformat(e["date"])
        for e in events
        if e["kind"] == "infusion" and (phase is None or e["phase"] == phase)
    ]


@pytest.mark.parametrize(("pd1", "chemo"), list(itertools.product(PD1, CHEMO)))
def test_preview_two_year_calendar_for_each_arm(app_ctx: Flask, pd1: str, chemo: str) -> None:
    events = _preview(app_ctx, "--pd1", pd1, "--chemo", chemo, "--start", "2026-03-02")
    assert all(set(e) >= JSON_FIELDS for e in events)
    induction = [e for e in events if e["kind"] == "infusion" and e["phase"] == "induction"]
    assert len(induction) == 4
    assert all(any(chemo in d.lower() for d in e["drugs"]) for e in induction)
    assert all(any(pd1 in d.lower() for d in e["drugs"]) for e in induction)
    maintenance = [e for e in events if e["kind"] == "infusion" and e["phase"] == "maintenance"]
    assert all(not any(chemo in d.lower() for d in e["drugs"]) for e in maintenance)
    dates = _infusion_dates(events)
    assert dates[0] == date(2026, 3, 2)
    span = dates[-1] - dates[0]
    assert timedelta(days=2 * 365) <= span <= timedelta(days=2 * 365 + 120)
    gaps = [(b - a).days for a, b in itertools.pairwise(dates)]
    assert min(gaps) >= 18 and max(gaps) <= 28
    premeds = [e for e in events if e["kind"] == "premedication"]
    if chemo == "irinotecan":
        assert premeds == []
    else:
        assert len([p for p in premeds if p["phase"] == "induction"]) >= 4
    assert [e["date"] for e in events] == sorted(e["date"] for e in events)


def test_preview_with_delay_moves_later_cycles(app_ctx: Flask) -> None:
    base = _preview(app_ctx, "--pd1", "sintilimab", "--chemo", "docetaxel", "--start", "2026-03-02")
    delayed = _preview(
        app_ctx,
        "--pd1",
        "sintilimab",
        "--chemo",
        "docetaxel",
        "--start",
        "2026-03-02",
        "--delay",
        "2:7",
    )
    before, after = _infusion_dates(base), _infusion_dates(delayed)
    assert after[0] == before[0]
    assert after[1] == before[1] + timedelta(days=7)
    assert after[2] - after[1] >= timedelta(days=18)
    assert after[-1] > before[-1]
    c2 = next(e for e in delayed if e["kind"] == "infusion" and e["cycle"] == 2)
    assert "rescheduled" in c2["flags"] or "outside_window" in c2["flags"]


def test_preview_with_salvage_adds_radiotherapy_on_working_days(app_ctx: Flask) -> None:
    events = _preview(
        app_ctx,
        "--pd1",
        "camrelizumab",
        "--chemo",
        "paclitaxel",
        "--start",
        "2026-03-02",
        "--salvage-start",
        "2026-09-21",
    )
    fractions = [e for e in events if e["kind"] == "radiotherapy" and e["status"] != "cancelled"]
    assert 25 <= len(fractions) <= 28
    # 2026-10-01..07 is the National Day holiday: no fraction then, none on weekends
    fraction_days = [date.fromisoformat(e["date"]) for e in fractions]
    assert all(d.weekday() < 5 or d == date(2026, 10, 10) for d in fraction_days)
    assert not any(date(2026, 10, 1) <= d <= date(2026, 10, 7) for d in fraction_days)
    salvage_chemo = [e for e in events if e["kind"] == "infusion" and e["phase"] == "salvage"]
    assert len(salvage_chemo) == 5


def test_preview_table_is_readable(app_ctx: Flask) -> None:
    result = app_ctx.test_cli_runner().invoke(
        args=[
            "calendar",
            "preview",
            "--pd1",
            "sintilimab",
            "--chemo",
            "irinotecan",
            "--start",
            "2026-09-28",
        ]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["date", "day", "phase"]
    assert "Induction cycle 1" in result.output
    # the first infusion's labs fall in the National Day holiday and say where they moved from
    assert "moved from" in result.output
    assert lines[-1].endswith("events")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pd1", "aspirin", "--chemo", "docetaxel", "--start", "2026-03-02"], "aspirin"),
        (["--pd1", "sintilimab", "--chemo", "docetaxel", "--start", "2026-13-02"], "YYYY-MM-DD"),
        (
            [
                "--pd1",
                "sintilimab",
                "--chemo",
                "docetaxel",
                "--start",
                "2026-03-02",
                "--delay",
                "x",
            ],
            "CYCLE:DAYS",
        ),
        (
            [
                "--pd1",
                "sintilimab",
                "--chemo",
                "docetaxel",
                "--start",
                "2026-03-02",
                "--delay",
                "99:7",
            ],
            "no infusion for cycle 99",
        ),
    ],
)
def test_preview_bad_input_gives_clear_error(app_ctx: Flask, args: list[str], message: str) -> None:
    result = app_ctx.test_cli_runner().invoke(args=["calendar", "preview", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_preview_with_malformed_protocol_file_names_file_and_field(
    app_ctx: Flask, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("code: X\nchoices: 5\n", encoding="utf-8")
    result = app_ctx.test_cli_runner().invoke(
        args=["calendar", "preview", "--protocol", str(bad), "--start", "2026-03-02"]
    )
    assert result.exit_code != 0
    assert "bad.yaml" in result.output


def test_patients_enrol_and_list(app_ctx: Flask) -> None:
    runner = app_ctx.test_cli_runner()
    today = utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date()
    start, consent = (today + timedelta(days=3)).isoformat(), today.isoformat()
    recurrence = (today - timedelta(days=30)).isoformat()
    ok = runner.invoke(
        args=[
            "patients", "enrol", "--study-id", "JSCH-200", "--initials", "ab",
            "--phone", "139 0000 1234", "--pd1", "camrelizumab", "--chemo", "irinotecan",
            "--start", start, "--consent-date", consent, "--locale", "en",
            "--recurrence", recurrence,
        ]
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "enrolled JSCH-200" in ok.output
    bad = runner.invoke(
        args=[
            "patients", "enrol", "--study-id", "JSCH-201", "--initials", "cd",
            "--phone", "555", "--pd1", "camrelizumab", "--chemo", "irinotecan",
            "--start", start, "--consent-date", consent,
        ]
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "phone" in bad.output
    listing = runner.invoke(args=["patients", "list"])
    assert "JSCH-200" in listing.output and "JSCH-201" not in listing.output
    assert "1234" in listing.output and "13900001234" not in listing.output


def test_demo_is_idempotent(app_ctx: Flask) -> None:
    runner = app_ctx.test_cli_runner()
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    patients = db.session.scalar(select(func.count(Patient.id)))
    events = db.session.scalar(select(func.count(CalendarEvent.id)))
    assert patients >= 5
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    assert db.session.scalar(select(func.count(Patient.id))) == patients
    assert db.session.scalar(select(func.count(CalendarEvent.id))) == events
    assert "demo on-call rota ready (3 new entries)" in first.output
    assert "demo on-call rota ready (0 new entries)" in second.output
    salvage = db.session.scalar(select(Patient).where(Patient.status == "salvage"))
    assert salvage is not None
    assert any(e.kind == "radiotherapy" for e in salvage.events)
