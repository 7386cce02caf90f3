"""`python -m jobs`: run the scheduler until SIGTERM / SIGINT (or `--once`: every job once)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from types import FrameType

from apscheduler.schedulers import SchedulerNotRunningError

from app import create_app
from app.configuration import ConfigurationError, check_queue_mode
from app.logging_setup import configure_logging
from app.sms.privacy import install_log_masking
from jobs.schedule import build_scheduler, job_specs

logger = logging.getLogger("cadence.jobs")
EXIT_CONFIGURATION = 78  # EX_CONFIG: systemd's Restart= does not help until the settings change


def main(argv: list[str] | None = None) -> int:
    """Start the scheduler process; return its exit code."""
    parser = argparse.ArgumentParser(prog="python -m jobs", description=__doc__)
    parser.add_argument("--once", action="store_true", help="run every job once, then exit")
    parser.add_argument("--list", action="store_true", help="print the schedule and exit")
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("LOG_LEVEL"))
    install_log_masking()
    try:
        app = create_app()
        check_queue_mode(app.config)
    except ConfigurationError as exc:
        logger.critical("jobs process not started: %d configuration problem(s)", len(exc.problems))
        return EXIT_CONFIGURATION
    stop = threading.Event()
    if args.list:
        for spec in job_specs(app.config):
            print(f"{spec.id:<14} {spec.trigger}  misfire_grace_time={spec.misfire_grace_time}s")
        return 0
    if args.once:
        for spec in job_specs(app.config):
            spec.func(app, stop)
        return 0
    scheduler = build_scheduler(app, stop)

    def shut_down(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %s: finishing running jobs, then stopping", signum)
        stop.set()
        with contextlib.suppress(SchedulerNotRunningError):
            scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    logger.info("jobs process started: %s", ", ".join(s.id for s in job_specs(app.config)))
    scheduler.start()
    logger.info("jobs process stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
