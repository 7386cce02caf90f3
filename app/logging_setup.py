"""One logging set-up for the web and jobs processes (same format, level from LOG_LEVEL)."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines are noise in the console (alembic lists its plugins at import).
QUIET_LOGGERS = ("alembic.runtime.plugins",)


def configure_logging(level: str | int | None = None) -> None:
    """Log INFO and above to stderr in LOG_FORMAT, unless logging is already configured."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(_level(level))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _level(level: str | int | None) -> int:
    """A logging level from a name or number; INFO when unset."""
    if level in (None, ""):
        return logging.INFO
    if isinstance(level, int):
        return level
    value = logging.getLevelName(str(level).strip().upper())
    if not isinstance(value, int):
        raise ValueError(
            f"LOG_LEVEL={level!r} is not a logging level: use DEBUG, INFO, WARNING or ERROR"
        )
    return value
