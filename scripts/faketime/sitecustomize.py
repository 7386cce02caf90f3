"""Loaded by every Python process of `make test-faketime` (PYTHONPATH): a time.sleep that works
under libfaketime 0.9.10 (Debian bookworm).

With FAKETIME_DONT_FAKE_MONOTONIC=1 (needed: with a faked monotonic clock, timed waits on locks
and events hang) libfaketime breaks clock_nanosleep(TIMER_ABSTIME), which Python's time.sleep
uses: it fails with EINVAL. This sleep waits in select() against the real monotonic clock instead.
Never used outside that make target.
"""

from __future__ import annotations

import select
import time


def _sleep(seconds: float) -> None:
    """Sleep ``seconds`` by the monotonic clock (select timeouts are relative, not faked)."""
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
