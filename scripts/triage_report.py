"""Triage figures on the reply case table, by category (issue 10).

    .venv/bin/python scripts/triage_report.py [--cases tests/unit/data/reply_cases.yaml] [--fail-under]

Per category: cases, red recall (reds rated red), priority accuracy, intent accuracy; then the
total against the targets (red recall 100%, priority >= 95%, intent >= 95%). With --fail-under
the exit status is 1 when a target is missed. Cases without a category are counted as "core".
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.domain.replies import ReplyContext, parse_reply  # noqa: E402
from app.domain.triage import TriageContext, triage  # noqa: E402

DEFAULT_CASES = ROOT / "tests" / "unit" / "data" / "reply_cases.yaml"
TARGETS = {"red_recall": 1.0, "priority": 0.95, "intent": 0.95}


def score(case: dict[str, Any]) -> tuple[str, str]:
    """(intent, priority) the parser and the rules give one case."""
    parsed = parse_reply(case["text"], context=ReplyContext(**case.get("context", {})))
    context = TriageContext(**case.get("triage_context", {}))
    result = triage(parsed, previous_grades=case.get("previous"), context=context)
    return parsed.intent, result.priority


def figures(cases: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Counts and rates per category, plus "TOTAL"."""
    tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for case in cases:
        intent, priority = score(case)
        for group in (case.get("category", "core"), "TOTAL"):
            row = tally[group]
            row["cases"] += 1
            row["priority_ok"] += priority == case["priority"]
            row["intent_ok"] += intent == case["intent"]
            if case["priority"] == "red":
                row["reds"] += 1
                row["reds_found"] += priority == "red"
    return {
        group: {
            "cases": row["cases"],
            "reds": row["reds"],
            "red_recall": row["reds_found"] / row["reds"] if row["reds"] else 1.0,
            "priority": row["priority_ok"] / row["cases"],
            "intent": row["intent_ok"] / row["cases"],
        }
        for group, row in tally.items()
    }


def render(table: dict[str, dict[str, float]]) -> str:
    """The figures as a plain-text table, categories first, TOTAL last."""
    lines = [
        f"{'category':<18}{'cases':>7}{'reds':>6}{'red recall':>12}{'priority':>10}{'intent':>9}"
    ]
    for group in [*sorted(g for g in table if g != "TOTAL"), "TOTAL"]:
        row = table[group]
        lines.append(
            f"{group:<18}{row['cases']:>7}{row['reds']:>6}{row['red_recall']:>12.1%}"
            f"{row['priority']:>10.1%}{row['intent']:>9.1%}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the figures; with --fail-under, exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--fail-under", action="store_true")
    args = parser.parse_args(argv)
    cases = yaml.safe_load(args.cases.read_text(encoding="utf-8"))
    table = figures(cases)
    print(render(table))
    total = table["TOTAL"]
    missed = [name for name, target in TARGETS.items() if total[name] < target]
    verdict = "targets met" if not missed else "targets missed: " + ", ".join(missed)
    print(f"\ntargets: red recall 100%, priority >= 95%, intent >= 95% -> {verdict}")
    return 1 if missed and args.fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
