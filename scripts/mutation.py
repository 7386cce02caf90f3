"""Mutation testing of the safety-critical modules (mutmut, pinned): run, then score per module.

    python scripts/mutation.py run [GROUP ...]   # mutmut on those groups (default: all), then report
    python scripts/mutation.py run --fresh GROUP  # re-score a group after changing its tests
    python scripts/mutation.py run --survivors GROUP  # re-run only last run's survivors
    python scripts/mutation.py run --only 'Dispatcher._record_*' --only _match GROUP  # some functions only
    python scripts/mutation.py report [GROUP ...] # per-group score and the surviving mutants

mutmut's configuration (modules, copied files, test selection) is [tool.mutmut] in pyproject.toml;
results are cached in mutants/ (delete it after changing tests that mutmut already ran). A group
is a module, or the safety-critical functions of a large module (mutmut's mutant-name patterns),
with the unit-test files that exercise it: mutmut collects only those (CADENCE_MUTATION_TESTS,
read by tests/conftest.py), so each mutant runs the relevant tests, not all of tests/unit.
``--only`` restricts a run (and a report) to some of a group's functions, named as in GROUPS
(``Dispatcher.claim``, ``_match``) or by fnmatch patterns over those names (``Dispatcher._record_*``):
a large integration group can then be run in parts, e.g. the survivor-prone functions first.
Equivalent mutants are listed with their reasons in docs/testing.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parents[1]
# read by tests/conftest.py: only these test files are collected (mutmut then maps and runs them)
MUTATION_TESTS_ENV = "CADENCE_MUTATION_TESTS"
MUTMUT = Path(sys.executable).with_name("mutmut")

# mutmut's verdicts that count as killed (mutmut.stats.status_by_exit_code names them). A mutant
# no test covers ("no tests") counts against the score, like a survivor.
KILLED = {"killed", "timeout", "caught by type check"}
# mutmut's child exits 255 when its test runner raised (e.g. pytest could not select a test id):
# mutmut calls that a "timeout", but no test ran, so it is no kill; reported as an error.
RUNNER_ERROR = 255


@dataclass(frozen=True)
class Group:
    """Mutants of one safety-critical module (or the named functions of one)."""

    name: str
    meta: str
    patterns: tuple[str, ...] = field(default=("*",))
    tests: tuple[str, ...] = ()  # the test files that exercise it (empty: all of tests/unit)

    def functions(self) -> list[str]:
        """The function names the patterns were made from (``_functions``; empty: whole module)."""
        names = []
        for pattern in self.patterns:
            name = pattern.removesuffix("__mutmut_*")
            if name.startswith("xǁ"):
                names.append(name.removeprefix("xǁ").replace("ǁ", "."))
            elif name.startswith("x_"):
                names.append(name.removeprefix("x_"))
        return names

    def only(self, names: list[str]) -> Group:
        """The same group restricted to the functions matching ``names`` (fnmatch patterns)."""
        chosen = [f for f in self.functions() if any(fnmatch.fnmatch(f, n) for n in names)]
        if not chosen:
            raise ValueError(f"{self.name}: no function matches {', '.join(names)}")
        return replace(self, patterns=_functions(*chosen))

    def mutant_patterns(self) -> list[str]:
        """mutmut mutant-name patterns (module path as dotted name + function patterns)."""
        module = self.meta.removesuffix(".py").replace("/", ".")
        return [f"{module}.{pattern}" for pattern in self.patterns]


def _functions(*names: str) -> tuple[str, ...]:
    """mutmut's mutant names of functions (``x_name``) and methods (``xǁClassǁmethod``)."""
    return tuple(
        f"xǁ{name.replace('.', 'ǁ')}__mutmut_*" if "." in name else f"x_{name}__mutmut_*"
        for name in names
    )


def _unit(*names: str) -> tuple[str, ...]:
    """Paths of unit-test files ``tests/unit/test_<name>.py``."""
    return tuple(f"tests/unit/test_{name}.py" for name in names)


def _integration(*names: str) -> tuple[str, ...]:
    """Paths of integration-test files ``tests/integration/test_<name>.py``."""
    return tuple(f"tests/integration/test_{name}.py" for name in names)


GROUPS: dict[str, Group] = {
    group.name: group
    for group in (
        Group("webhook-signature", "app/sms/webhook_security.py", tests=_unit("webhook_security")),
        Group(
            "triage",
            "app/domain/triage.py",
            tests=_unit(
                "triage",
                "triage_classify",
                "triage_conditions",
                "triage_report",
                "triage_transformations",
                "reply_cases",
            ),
        ),
        Group(
            "replies-opt-out",
            "app/domain/replies.py",
            _functions(
                "_simple_intent",
                "_whole_match",
                "_strip_polite",
                "_is_confirmation",
                "WholeSet.matches",
                "_whole_set",
                "_build_intents",
            ),
            tests=_unit("opt_out_phrases", "opt_out_mechanics", "replies", "reply_cases"),
        ),
        Group(
            "reminders-quiet-hours-budget",
            "app/domain/reminders.py",
            # quiet hours, the daily budget and merging (issue 17), not the policy file's parser
            # or the texts' building blocks
            _functions(
                "local_datetime",
                "in_quiet_hours",
                "move_out_of_quiet_hours",
                "half_day",
                "merge_half_days",
                "merge_messages",
                "apply_daily_budget",
                "_with_local_day",
                "_entry_time",
                "_fit_day",
                "_merge_all",
                "avoid_duplicate_bodies",
                "_place_without_duplicate",
                "_clash",
                "plan_messages",
            ),
            tests=_unit("reminders", "reminder_policy", "protocol"),
        ),
        Group(
            "working-days", "app/domain/working_days.py", tests=_unit("working_days", "calendar")
        ),
        Group(
            "checkins-grading",
            "app/domain/checkins.py",
            # PRO-CTCAE grading and what it hands to triage (issue 17), not the questionnaire
            # loader or the compact-reply parser
            _functions(
                "Question.level",
                "_is_positive",
                "composite_grade",
                "grade_answers",
                "_grade_item",
                "_level",
                "_grade_temperature",
                "fever_grade",
                "_grade_yes_no",
                "grades_by_symptom",
                "to_parsed_reply",
                "_mention",
                "triage_answers",
            ),
            tests=_unit("checkins"),
        ),
        Group(
            "calendar",
            "app/domain/calendar.py",
            # the holiday and cascade rules (issue 17): placing an event on a working day, the
            # closures and their decisions, moving an event and what follows it
            _functions(
                "_Context.works",
                "_Context.next_working_day",
                "_Context.place",
                "_Context._choose",
                "_Context._latest",
                "_Context.latest_working_day",
                "_Context.closure_around",
                "_Context.is_make_up_day",
                "_Context._nearest",
                "_window",
                "_nominal",
                "_closure_for",
                "_decided",
                "flag_decisions",
                "_closure_checked",
                "_refresh_closures",
                "waiting_decisions",
                "record_decision",
                "_Working.add",
                "_Working.set",
                "_Working.cancel",
                "_Working.children",
                "_Working.result",
                "_movable",
                "_cascade",
                "_follow",
                "reschedule",
                "_check_reschedule",
                "_previous_given_infusion",
            ),
            tests=_unit("calendar", "calendar_clinical"),
        ),
        Group(
            "dispatch",
            "app/services/messaging/dispatch.py",
            # the outbox claim, the outcome recording and the reconciler (issue 17), not the
            # settings, timings and run loop around them
            _functions(
                "Dispatcher.claim",
                "Dispatcher._too_late",
                "Dispatcher._quiet_until",
                "Dispatcher.record_many",
                "Dispatcher._record_sent_together",
                "Dispatcher._update_sent",
                "Dispatcher.record",
                "Dispatcher._move",
                "Dispatcher._record_sent",
                "Dispatcher._record_retry",
                "Dispatcher._record_ambiguous",
                "Dispatcher._record_terminal",
                "Dispatcher._record_blocked",
                "Dispatcher._record_expired",
                "Dispatcher._record_quiet",
                "Dispatcher._record_limited",
                "Dispatcher._record_release",
                "due_query",
                "_pages_first",
                "_blocked",
                "_quiet",
                "_answer_outcome",
                "_among",
                "_with_claim_history",
                "_sent_values",
                "_settled_by_callback",
                "_expire_leases",
                "_reconcile_one",
                "_match",
            ),
            tests=_integration(
                "dispatch",
                "dispatch_outcomes",
                "receipt_checks",
                "sms_frequency",
                "sms_batching",
                "contacts",
            ),
        ),
        Group(
            "status-callbacks",
            "app/services/messaging/status_callbacks.py",
            tests=_integration(
                "dispatch_callbacks", "status_callback_rules", "contacts", "aliyun_mns"
            ),
        ),
    )
}


@dataclass
class Score:
    """Killed / survived / not run counts of one group, and its survivors."""

    killed: int = 0
    timeouts: int = 0  # of the killed: stopped by mutmut's time limit, no test failed
    not_run: int = 0
    survivors: list[tuple[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # the mutants not run yet

    @property
    def tested(self) -> int:
        """Mutants with a verdict."""
        return self.killed + len(self.survivors)

    def percent(self) -> float:
        """Killed as a share of the mutants with a verdict."""
        return 100.0 * self.killed / self.tested if self.tested else 0.0


def score(group: Group) -> Score:
    """Read mutmut's verdicts for one group from mutants/<module>.meta."""
    meta = ROOT / "mutants" / (group.meta + ".meta")
    result = Score()
    if not meta.exists():
        return result
    codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    patterns = group.mutant_patterns()
    for key, code in sorted(codes.items()):
        if not any(fnmatch.fnmatch(key, p) for p in patterns):
            continue
        status = status_by_exit_code[code]
        if code == RUNNER_ERROR:
            result.survivors.append((key, "error (no test ran)"))
        elif status in KILLED:
            result.killed += 1
            result.timeouts += status == "timeout"
        elif status == "not checked":
            result.not_run += 1
            result.pending.append(key)
        else:
            result.survivors.append((key, status))
    return result


def report(groups: list[Group]) -> int:
    """Print each group's score and its survivors; 0 when every group was run."""
    missing = 0
    print(f"{'group':32} {'killed':>7} {'tested':>7} {'score':>7} {'not run':>8} {'timeout':>8}")
    for group in groups:
        s = score(group)
        missing += s.tested == 0
        print(
            f"{group.name:32} {s.killed:7} {s.tested:7} {s.percent():6.1f}% {s.not_run:8}"
            f" {s.timeouts:8}"
        )
    for group in groups:
        for key, status in score(group).survivors:
            print(f"{status}: {key}   (see: mutmut show {key})")
    return 1 if missing else 0


def test_selection(groups: list[Group]) -> list[str]:
    """The test files mutmut should collect for these groups (empty: every selected test)."""
    if any(not group.tests for group in groups):
        return []
    return sorted({path for group in groups for path in group.tests})


def forget(groups: list[Group]) -> None:
    """Drop the groups' mutated modules, their verdicts and the test map from mutants/.

    mutmut then regenerates just those modules (the others are kept: it skips a file whose
    mutated copy is newer than its source) and maps the tests again, so the groups are
    re-scored from scratch without regenerating the ~11,700 mutants of every module.
    """
    mutants = ROOT / "mutants"
    for group in groups:
        (mutants / group.meta).unlink(missing_ok=True)
        (mutants / (group.meta + ".meta")).unlink(missing_ok=True)
    (mutants / "mutmut-stats.json").unlink(missing_ok=True)


def run(
    groups: list[Group],
    max_children: int,
    fresh: bool = False,
    survivors: bool = False,
    remap: bool = False,
    pending: bool = False,
) -> int:
    """Run mutmut on the groups' mutants, then report.

    mutmut re-runs every mutant it is named, so each run re-scores the groups' mutants; with
    ``survivors`` only those that survived the last run (after adding tests), with ``fresh``
    the modules are regenerated and the tests mapped again first.
    """
    if fresh:
        forget(groups)
    elif remap:
        # map the tests again, e.g. on PostgreSQL (TEST_DATABASE_URL): the PostgreSQL-only
        # paths (SKIP LOCKED claims, the recorder thread) have no covering test on SQLite
        (ROOT / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    if survivors or pending:
        # a leading "*" keeps mutmut from looking up the tests of a function it mapped none to
        patterns = [
            key if status == "survived" else f"*{key}"
            for g in groups
            for key, status in score(g).survivors
        ]
        if pending:  # and those an interrupted run did not reach
            patterns += [key for g in groups for key in score(g).pending]
        if not patterns:
            print("no survivors to re-run")
            return report(groups)
    else:
        patterns = [p for g in groups for p in g.mutant_patterns()]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    selection = test_selection(groups)
    if selection:
        env[MUTATION_TESTS_ENV] = " ".join(selection)
        print(f"tests run per mutant come from: {', '.join(selection)}")
    command = [str(MUTMUT), "run", "--max-children", str(max_children), *patterns]
    completed = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if completed.returncode != 0:
        print(f"mutmut ended with exit code {completed.returncode}", file=sys.stderr)
    return report(groups) or completed.returncode


def main(argv: list[str] | None = None) -> int:
    """Command line: run or report, on all groups or the named ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("groups", nargs="*", metavar="GROUP", help=", ".join(GROUPS))
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument(
        "--fresh", action="store_true", help="re-score the groups: drop their cached verdicts first"
    )
    parser.add_argument(
        "--survivors", action="store_true", help="re-run only the mutants that survived last time"
    )
    parser.add_argument(
        "--pending",
        action="store_true",
        help="go on with an interrupted run: its survivors and the mutants it did not reach",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FUNCTION_PATTERN",
        help="only these functions of the groups (names as in GROUPS, fnmatch patterns; repeatable)",
    )
    parser.add_argument(
        "--remap",
        action="store_true",
        help="map tests to functions again (e.g. with TEST_DATABASE_URL set: one child then)",
    )
    args = parser.parse_intermixed_args(argv)  # `run --max-children 1 GROUP` (the Makefile)
    unknown = [name for name in args.groups if name not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    groups = [GROUPS[name] for name in args.groups] or list(GROUPS.values())
    if args.only:
        try:
            groups = [group.only(args.only) for group in groups]
        except ValueError as error:
            parser.error(str(error))
    if args.action == "report":
        return report(groups)
    return run(groups, args.max_children, args.fresh, args.survivors, args.remap, args.pending)


if __name__ == "__main__":
    sys.exit(main())
