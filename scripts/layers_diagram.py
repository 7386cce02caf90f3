"""Print the layers of the import contracts in pyproject.toml as a text diagram.

docs/architecture.md embeds this output; tests/unit/test_architecture.py checks it is current.
Run: .venv/bin/python scripts/layers_diagram.py
"""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def contracts(path: Path = PYPROJECT) -> dict[str, dict]:
    """The import-linter contracts by id."""
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _short(layer: str, prefix: str) -> str:
    """A layer expression without the common prefix, siblings spaced out."""
    names = [name.strip().removeprefix(prefix) for name in layer.split("|")]
    return "  |  ".join(names)


def _boxes(rows: list[str]) -> list[str]:
    """Rows in boxes of one width, an arrow between them (each may import those below)."""
    width = max(len(row) for row in rows) + 4
    lines: list[str] = []
    for index, row in enumerate(rows):
        lines += ["+" + "-" * width + "+", "|  " + row.ljust(width - 2) + "|"]
        lines.append("+" + "-" * width + "+")
        if index < len(rows) - 1:
            lines.append(" " * (width // 2) + "|")
            lines.append(" " * (width // 2) + "v")
    return lines


def diagram(path: Path = PYPROJECT) -> str:
    """The application layers, then the service layers (with conversations' own layers)."""
    found = contracts(path)
    application = [_short(layer, "") for layer in found["application-layers"]["layers"]]
    inner = found["conversation-layers"]["layers"]
    services = []
    for layer in found["service-layers"]["layers"]:
        row = _short(layer, "app.services.")
        if row == "conversations":
            row += ":  " + "  over  ".join(f"[ {_short(part, '')} ]" for part in inner)
        services.append(row)
    lines = [
        "Application (top to bottom)",
        *_boxes(application),
        "",
        "app.services (top to bottom)",
        *_boxes(services),
        "",
        "A layer may import the layers below it, never one above; names joined by '|'",
        "are independent features of one layer and do not import each other.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(diagram())
