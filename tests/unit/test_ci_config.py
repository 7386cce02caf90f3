"""CI runs the slow process tests on PostgreSQL too: nothing deselects them (issue 17)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _target(makefile: str, name: str) -> str:
    """The recipe lines of one Makefile target."""
    match = re.search(rf"^{name}:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert match, f"no {name} target"
    return match.group(1)


def test_the_postgresql_pass_deselects_no_marker() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

    assert "make test-postgres" in ci
    recipe = _target(makefile, "test-postgres")
    assert "python -m pytest $(PYTEST_ARGS)" in recipe
    assert not re.search(r"pytest\b.*\s-m\s", recipe.replace("python -m pytest", "pytest"))
    assert "slow" not in recipe and "slow" not in ci


def test_no_configuration_skips_slow_tests() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    addopts = re.search(r'^addopts = "(.*)"', pyproject, re.M)

    assert addopts and "-m" not in addopts.group(1).split()
