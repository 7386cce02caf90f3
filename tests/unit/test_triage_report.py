"""scripts/triage_report.py: figures by category, targets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "triage_report.py"
spec = importlib.util.spec_from_file_location("triage_report", SCRIPT)
assert spec is not None and spec.loader is not None
triage_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(triage_report)


def test_figures_count_red_recall_priority_and_intent_by_category():
    cases = [
        {"category": "a", "text": "吐血了", "intent": "symptom_report", "priority": "red"},
        {"category": "a", "text": "好的", "intent": "confirm", "priority": "green"},
        {
            "category": "b",
            "text": "好的",
            "intent": "opt_out",
            "priority": "red",
        },  # wrong on purpose
    ]
    table = triage_report.figures(cases)
    assert table["a"] == {"cases": 2, "reds": 1, "red_recall": 1.0, "priority": 1.0, "intent": 1.0}
    assert table["b"]["red_recall"] == 0.0 and table["b"]["intent"] == 0.0
    assert table["TOTAL"]["cases"] == 3
    assert "TOTAL" in triage_report.render(table).splitlines()[-1]


def test_the_project_table_meets_the_targets(capsys):
    assert triage_report.main(["--fail-under"]) == 0
    assert "targets met" in capsys.readouterr().out
