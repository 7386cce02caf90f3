"""Where an inbound message's time and SQL go: per message, per pipeline step (in-process).

Used by bench/bench_webhook.py (``--breakdown N``) on its seeded database, and runnable alone:

    python bench/inbound_breakdown.py --database-url sqlite:////tmp/x.sqlite3 --messages 300

Drives N messages of the benchmark's mix straight through ``replies.receive`` (no HTTP, no
signature check) in one process and measures each pipeline step by wrapping it: store, load
(sender, check-in, events), parse, triage (treatment context, previous grades), decide, apply
(less what is listed under it), alert writes, audit writes, the on-call page (outbox rows),
and the page hand-off (kick_dispatch: waking the sender thread). SQL statements are counted
with a SQLAlchemy ``before_cursor_execute`` listener and commits with a ``commit`` listener,
each charged to the innermost step running in that thread; what no step covers is "rest" (the
final claim's commit, session bookkeeping). Statements of the background page sender are
counted apart (they are not on the request's path).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

STEPS = (
    "store", "load", "parse", "triage", "decide", "apply", "alert", "audit", "page", "hand-off",
    "rest",
)  # fmt: skip


@dataclass
class Tally:
    """Statements, commits and seconds per step, for one category of messages."""

    messages: int = 0
    seconds: float = 0.0
    statements: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    commits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    step_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))


class Profiler:
    """A stack of running steps per thread; listeners charge SQL to the innermost one."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.tally = Tally()
        self.background_statements = 0
        self.request_thread: int | None = None

    def stack(self) -> list[list[Any]]:
        if not hasattr(self.local, "stack"):
            self.local.stack = []
        return self.local.stack

    def current(self) -> str:
        stack = self.stack()
        return stack[-1][0] if stack else "rest"

    def on_statement(self, *_args: Any) -> None:
        if threading.get_ident() != self.request_thread:
            self.background_statements += 1
            return
        self.tally.statements[self.current()] += 1

    def on_commit(self, *_args: Any) -> None:
        if threading.get_ident() == self.request_thread:
            self.tally.commits[self.current()] += 1

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` timed as step ``name`` (exclusive of the steps it calls)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != self.request_thread:
                return function(*args, **kwargs)
            stack = self.stack()
            frame = [name, time.perf_counter(), 0.0]
            stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                stack.pop()
                spent = time.perf_counter() - frame[1]
                self.tally.step_seconds[name] += spent - frame[2]
                if stack:
                    stack[-1][2] += spent

        return timed


@contextmanager
def instrumented(profiler: Profiler, engine: Any) -> Iterator[None]:
    """Wrap the pipeline's steps and listen to the engine while the block runs."""
    from sqlalchemy import event

    from app.services.alerts import escalation
    from app.services.conversations.inbound import replies
    from app.services.shared import audit

    # the writer module (absent before issue 10 item 9: then replies is its own writer)
    apply = _optional("app.services.conversations.inbound.apply") or replies
    targets = [
        (replies, "store", "store"),
        (replies, "load_context", "load"),
        (replies, "parse_reply", "parse"),
        (replies, "triage_message", "triage"),
        (replies, "decide", "decide"),
        (replies, "apply", "apply"),
        (apply, "create_alert", "alert"),
        (apply, "page_for_new_red", "page"),
        (escalation, "page_for_new_red", "page"),
        (audit, "record", "audit"),
        (replies, "kick_dispatch", "hand-off"),
        # the names of the pipeline before issue 10 item 9 (for before/after figures)
        (replies, "match_sender", "load"),
        (replies, "triage", "triage"),
        (replies, "create_alert", "alert"),
        (replies, "page_for_new_red", "page"),
    ]
    saved = []
    for module, attribute, step in targets:
        if hasattr(module, attribute):
            original = getattr(module, attribute)
            saved.append((module, attribute, original))
            setattr(module, attribute, profiler.wrap(step, original))
    event.listen(engine, "before_cursor_execute", profiler.on_statement)
    event.listen(engine, "commit", profiler.on_commit)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", profiler.on_statement)
        event.remove(engine, "commit", profiler.on_commit)
        for module, attribute, original in saved:
            setattr(module, attribute, original)


def _optional(name: str) -> Any:
    """The module ``name``, or None when this version of the code has none."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def run(app: Any, forms: list[tuple[str, dict[str, str]]], warm: int = 30) -> dict[str, Tally]:
    """Receive every (category, form) in ``app``; a Tally per category and one for all.

    The first ``warm`` forms are received unmeasured (vocabularies, OpenCC and pinyin tables
    load on first use, statements compile once).
    """
    from app.clock import utcnow
    from app.extensions import db
    from app.services.conversations.inbound.replies import receive

    tallies: dict[str, Tally] = {}
    with app.app_context():
        engine = db.engine
        for _, form in forms[:warm]:
            receive(form, utcnow())
            db.session.remove()
        for category, form in forms[warm:]:
            profiler = Profiler()
            profiler.request_thread = threading.get_ident()
            with instrumented(profiler, engine):
                started = time.perf_counter()
                receive(form, utcnow())
                elapsed = time.perf_counter() - started
            db.session.remove()
            for key in (category, "all"):
                _add(tallies.setdefault(key, Tally()), profiler.tally, elapsed)
    return tallies


def _add(total: Tally, one: Tally, elapsed: float) -> None:
    total.messages += 1
    total.seconds += elapsed
    covered = sum(one.step_seconds.values())
    for step, value in one.statements.items():
        total.statements[step] += value
    for step, value in one.commits.items():
        total.commits[step] += value
    for step, value in one.step_seconds.items():
        total.step_seconds[step] += value
    total.step_seconds["rest"] += max(0.0, elapsed - covered)


def report(tallies: dict[str, Tally]) -> list[str]:
    """Lines: per category, per message: ms, statements and commits by step."""
    lines = [
        "per inbound message (in-process, no HTTP): mean ms / SQL statements / commits by step"
    ]
    header = f"{'category':<14}{'msgs':>5}{'ms':>8}{'SQL':>6}{'commits':>8}  " + "  ".join(
        f"{step}" for step in STEPS
    )
    lines.append(header)
    for category, tally in sorted(tallies.items(), key=lambda kv: kv[0] == "all"):
        n = tally.messages or 1
        statements = sum(tally.statements.values()) / n
        commits = sum(tally.commits.values()) / n
        cells = []
        for step in STEPS:
            ms = tally.step_seconds.get(step, 0.0) * 1000 / n
            sql = tally.statements.get(step, 0) / n
            cells.append(f"{step} {ms:.1f}ms/{sql:.1f}")
        lines.append(
            f"{category:<14}{tally.messages:>5}{tally.seconds * 1000 / n:>8.1f}{statements:>6.1f}"
            f"{commits:>8.2f}  " + "  ".join(cells)
        )
    return lines
