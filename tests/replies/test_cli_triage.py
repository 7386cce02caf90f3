"""`flask triage classify`, `flask oncall ...` and `flask alerts escalate`."""

from __future__ import annotations

import json
import subprocess
import sys

from flask import Flask

from app.extensions import db
from app.models import OnCallShift
from tests.integration.sms_support import ROOT


def test_classify_prints_one_json_object_per_input_line(app_ctx: Flask) -> None:
    lines = ["发烧38.5度", "1", "", "I can't swallow water or even my spit", "TD", "拉了五六次"]
    result = app_ctx.test_cli_runner().invoke(
        args=["triage", "classify", "--lang", "auto"], input="\n".join(lines) + "\n"
    )
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.output.splitlines()]
    assert [o["text"] for o in objects] == lines
    assert set(objects[0]) == {"text", "intent", "symptoms", "temperature_c", "priority", "reasons"}
    assert (objects[0]["priority"], objects[0]["temperature_c"]) == ("red", 38.5)
    assert objects[1]["intent"] == "confirm"
    assert objects[2]["priority"] == "none"
    assert objects[3]["priority"] == "red"
    assert {"code": "dysphagia", "grade": 4} in objects[3]["symptoms"]
    assert objects[4]["intent"] == "opt_out"
    assert objects[5]["priority"] == "amber"


def test_explain_shows_every_step_from_text_to_priority(app_ctx: Flask) -> None:
    runner = app_ctx.test_cli_runner()
    result = runner.invoke(args=["triage", "explain", "--json", "我爸發骚了，眼睛发黄"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    steps = {step["step"]: step["text"] for step in report["steps"]}
    assert steps["traditional_to_simplified"] == "我爸发骚了,眼睛发黄"
    assert steps["homophone_typos"] == "我发烧了,眼睛发黄"
    entries = {m["entry"] for m in report["matches"]}
    assert {"symptoms.fever", "flags.jaundice"} <= entries
    assert any(r.startswith("jaundice: ") for r in report["rules_fired"])
    assert report["priority"] == "red" and report["safety_net"] is None
    text = runner.invoke(args=["triage", "explain", "腿上青了一大块"]).output
    assert "safety net:  safety_net: clinical words not understood" in text
    assert "priority:    amber" in text


def test_classify_honours_the_language_option(app_ctx: Flask) -> None:
    result = app_ctx.test_cli_runner().invoke(
        args=["triage", "classify", "--lang", "en"], input="fever 101F\n"
    )
    (line,) = result.output.splitlines()
    assert json.loads(line)["priority"] == "red"
    bad = app_ctx.test_cli_runner().invoke(args=["triage", "classify", "--lang", "fr"])
    assert bad.exit_code != 0


def test_classify_works_as_a_real_command_on_stdin() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "triage", "classify"],
        input="胸口痛\n好的\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    first, second = (json.loads(x) for x in completed.stdout.splitlines())
    assert first["priority"] == "red" and first["symptoms"][0]["code"] == "chest_pain"
    assert second["intent"] == "confirm"


def test_the_rota_can_be_set_listed_and_queried(app_ctx: Flask) -> None:
    runner = app_ctx.test_cli_runner()
    added = runner.invoke(
        args=[
            "oncall",
            "add",
            "--role",
            "clinician",
            "--name",
            "Dr Zhang",
            "--phone",
            "13900000001",
            "--days",
            "mon-fri",
            "--hours",
            "08:00-17:00",
        ]
    )
    assert added.exit_code == 0, added.output
    night = runner.invoke(
        args=[
            "oncall",
            "add",
            "--role",
            "clinician",
            "--name",
            "Dr Night",
            "--phone",
            "+8613900000009",
            "--days",
            "daily",
            "--hours",
            "17:00-08:00",
        ]
    )
    assert night.exit_code == 0, night.output
    listed = runner.invoke(args=["oncall", "list", "--json"])
    rows = json.loads(listed.output)
    assert [(r["name"], r["weekdays"], r["hours"]) for r in rows] == [
        ("Dr Zhang", "mon,tue,wed,thu,fri", "08:00-17:00"),
        ("Dr Night", "mon,tue,wed,thu,fri,sat,sun", "17:00-08:00"),
    ]
    day = runner.invoke(args=["oncall", "who", "--at", "2026-03-02T10:00"]).output
    assert "Dr Zhang +8613900000001 (rota)" in day and "Dr Night" not in day.split("\n")[0]
    night_time = runner.invoke(args=["oncall", "who", "--at", "2026-03-03T02:00"]).output
    assert night_time.splitlines()[0].startswith("clinician") and "Dr Night" in night_time
    assert "investigator Dr Night" in " ".join(night_time.split())  # falls back to a clinician
    bad = runner.invoke(
        args=[
            "oncall",
            "add",
            "--role",
            "clinician",
            "--name",
            "X",
            "--phone",
            "12345",
            "--days",
            "daily",
        ]
    )
    assert bad.exit_code != 0 and "phone" in bad.output
    first_id = rows[0]["id"]
    assert runner.invoke(args=["oncall", "remove", str(first_id)]).exit_code == 0
    assert db.session.get(OnCallShift, first_id) is None


def test_escalate_runs_one_pass(app_ctx: Flask) -> None:
    result = app_ctx.test_cli_runner().invoke(args=["alerts", "escalate"])
    assert result.exit_code == 0 and "escalated 0" in result.output
