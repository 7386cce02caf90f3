"""Re-plan every patient in several processes (``sms plan --all --workers N``).

Each worker is a forked copy of the calling process (same app, settings and clock) with its own
database connections; it re-plans a disjoint share of the patients exactly as ``replan_all``
does (one transaction per patient, a failure rolled back and reported, unchanged patients
skipped), so no two processes ever write the same patient's rows. The shares are blocks of
neighbouring ids dealt round-robin: patients enrolled together share dates, and so rendered
bodies in a worker's planning run, and the blocks spread old and new patients over the workers.

On PostgreSQL the workers plan and write at the same time. SQLite has one writer at a time: the
workers' planning and rendering (most of a plan's CPU) overlap, their writes take turns (each
transaction waits for the file's write lock, SQLite's busy timeout). Forking needs a POSIX
system; elsewhere, or with one worker, the run stays in this process.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue as queue_module
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from app.extensions import db
from app.services.messaging import reminders

logger = logging.getLogger(__name__)

# Neighbouring ids a worker takes at a time (its planning run's rendered bodies are shared by
# patients enrolled together; small enough that shares stay even).
BLOCK = 50
# How often the parent looks for a worker that died without reporting (seconds).
POLL_SECONDS = 1.0

TOTALS = ("patients", "created", "cancelled", "failed", "skipped")


def shares(ids: Sequence[int], workers: int, block: int = BLOCK) -> list[list[int]]:
    """Split ``ids`` into at most ``workers`` disjoint shares: blocks of ``block`` ids (fewer
    when there are not enough for every worker) dealt in turn."""
    block = max(1, min(block, -(-len(ids) // workers)))
    dealt: list[list[int]] = [[] for _ in range(workers)]
    for number, start in enumerate(range(0, len(ids), block)):
        dealt[number % workers].extend(ids[start : start + block])
    return [share for share in dealt if share]


def can_fork() -> bool:
    """True when worker processes can be forked here (POSIX)."""
    return "fork" in multiprocessing.get_all_start_methods()


def _in_memory_database() -> bool:
    """True for an in-memory SQLite database (it lives in this process: no worker sees it)."""
    url = db.engine.url
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def replan_all_in_workers(
    *,
    workers: int,
    now: datetime,
    source: str,
    on_failure: reminders.ReplanFailure | None = None,
    progress: Callable[[int], None] | None = None,
    skip_unchanged: bool = True,
) -> dict[str, int]:
    """``reminders.replan_all`` split over ``workers`` processes; the same totals.

    ``progress`` is told of each patient done by any worker (in this process). A worker that
    dies without reporting counts its patients not reported as done as failed. One worker, an
    in-memory database or no ``fork``: the run stays in this process. Before forking, the
    caller's session is closed (anything uncommitted rolled back) and its pool emptied.
    """
    ids = reminders.patient_ids_to_replan()
    parts = shares(ids, max(1, workers))
    if len(parts) <= 1 or not can_fork() or _in_memory_database():
        return reminders.replan_patients(
            ids,
            now=now,
            source=source,
            on_failure=on_failure,
            progress=progress,
            skip_unchanged=skip_unchanged,
        )
    # No connection may cross the fork: a child using (or closing) the parent's would break it.
    db.session.remove()
    db.engine.dispose()
    context = multiprocessing.get_context("fork")
    channel: Any = context.Queue()
    processes = [
        context.Process(
            target=_work,
            args=(number, part, channel, now, source, on_failure, skip_unchanged),
            name=f"replan-worker-{number}",
        )
        for number, part in enumerate(parts)
    ]
    for process in processes:
        process.start()
    try:
        return _collect(processes, parts, channel, progress)
    finally:
        for process in processes:
            process.join()


def _collect(
    processes: Sequence[Any],
    parts: Sequence[Sequence[int]],
    channel: Any,
    progress: Callable[[int], None] | None,
) -> dict[str, int]:
    """Read the workers' progress and totals until each reported or died; the sum."""
    totals = dict.fromkeys(TOTALS, 0)
    done = [0] * len(processes)
    waiting = set(range(len(processes)))
    while waiting:
        try:
            kind, number, value = channel.get(timeout=POLL_SECONDS)
        except queue_module.Empty:
            for number in sorted(waiting):
                if not processes[number].is_alive() and channel.empty():
                    lost = len(parts[number]) - done[number]
                    logger.error(
                        "re-plan worker %s ended (exit code %s) without reporting: "
                        "%s patient(s) counted as failed",
                        number,
                        processes[number].exitcode,
                        lost,
                    )
                    totals["failed"] += lost
                    waiting.discard(number)
            continue
        if kind == "done":
            done[number] += value
            if progress is not None:
                progress(value)
        else:
            for name in TOTALS:
                totals[name] += value[name]
            waiting.discard(number)
    return totals


def _work(
    number: int,
    ids: Sequence[int],
    channel: Any,
    now: datetime,
    source: str,
    on_failure: reminders.ReplanFailure | None,
    skip_unchanged: bool,
) -> None:
    """One worker (a forked child): re-plan ``ids``, report each patient and the totals."""
    db.engine.dispose(close=False)  # this process's own connections from here on
    try:
        totals = reminders.replan_patients(
            ids,
            now=now,
            source=source,
            on_failure=on_failure,
            progress=lambda count: channel.put(("done", number, count)),
            skip_unchanged=skip_unchanged,
        )
        channel.put(("totals", number, totals))
    finally:
        db.session.remove()
        db.engine.dispose()
