"""The layers hold: the domain stays pure, the import contracts in pyproject.toml are kept and
catch upward imports, and app has no import cycles.

The contracts are run with import-linter's command (`lint-imports`, as in `make lint`); grimp
builds the graph from every import statement, including those inside functions.
"""

from __future__ import annotations

import ast
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "app" / "domain"
FORBIDDEN = {"flask", "flask_sqlalchemy", "sqlalchemy", "twilio", "apscheduler", "flask_babel"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_domain_imports_no_framework() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, "app/domain has no modules"
    offenders = {
        str(f.relative_to(DOMAIN)): sorted(_imported_roots(f) & FORBIDDEN)
        for f in files
        if _imported_roots(f) & FORBIDDEN
    }
    assert offenders == {}


def test_domain_does_not_import_app_layers() -> None:
    for path in DOMAIN.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("app.services", "app.web", "app.models")), path


ROOT = Path(__file__).resolve().parents[2]
layers_diagram = runpy.run_path(str(ROOT / "scripts" / "layers_diagram.py"))
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def run_lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """Run `lint-imports` with the pyproject.toml of ``project`` on its packages."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(project / "pyproject.toml")],
        cwd=project,
        env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_project(target: Path) -> Path:
    """A copy of the importable code and the contracts, to break on purpose."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "static", "protocols")
    for package in ("app", "jobs"):
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def add_function_level_import(module: Path, statement: str) -> None:
    """Append a function whose body imports ``statement`` (the kind that dodges cycles)."""
    with module.open("a", encoding="utf-8") as handle:
        handle.write(f"\n\ndef _sneaky() -> None:\n    {statement}  # noqa\n")


def strongly_connected(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Groups of modules that import each other in a circle (Tarjan's algorithm)."""
    edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return circles


def test_the_import_contracts_are_kept() -> None:
    result = run_lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        (
            "app/services/shared/audit.py",
            "from app.services.messaging import outbox",
            "Services in layers",
        ),
        (
            "app/services/alerts/alerts.py",
            "from app.services.conversations.checkins import sessions",
            "Services in layers",
        ),
        (
            "app/services/schedule/patients.py",
            "from app.services.alerts import oncall",
            "Services in layers",
        ),
        (
            "app/services/conversations/checkins/sessions.py",
            "from app.services.conversations.inbound import replies",
            "Conversations: inbound SMS",
        ),
        ("app/services/messaging/dispatch.py", "from app.web import helpers", "Services import"),
        ("app/domain/calendar.py", "import sqlalchemy", "The domain is pure"),
    ],
)
def test_a_function_level_upward_import_breaks_a_contract(
    tmp_path: Path, module: str, statement: str, contract: str
) -> None:
    project = copy_project(tmp_path)
    assert run_lint_imports(project).returncode == 0
    add_function_level_import(project / module, statement)
    result = run_lint_imports(project)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract in broken, result.stdout


def test_no_import_cycles_among_app_modules() -> None:
    graph = grimp.build_graph("app", "jobs", include_external_packages=False, cache_dir=None)
    assert strongly_connected(graph, set(graph.modules)) == []


def test_the_cycle_finder_sees_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    package = tmp_path / "circle_fixture"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circle_fixture import b\n")
    (package / "b.py").write_text("def late() -> None:\n    from circle_fixture import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("circle_fixture", cache_dir=None)
    finally:
        sys.path.remove(str(tmp_path))
    assert strongly_connected(graph, set(graph.modules)) == [
        ["circle_fixture.a", "circle_fixture.b"]
    ]


def test_the_layers_diagram_in_the_docs_matches_the_contracts() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    embedded = doc.split("<!-- layers:begin -->")[1].split("<!-- layers:end -->")[0]
    assert embedded.strip() == f"```text\n{layers_diagram['diagram']()}\n```"


def function_level_app_imports(path: Path) -> list[str]:
    """Imports of app or jobs modules written inside a function of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.ImportFrom)
                    and (inner.module or "").startswith(("app", "jobs"))
                ) or (
                    isinstance(inner, ast.Import)
                    and any(alias.name.startswith(("app.", "jobs")) for alias in inner.names)
                ):
                    found.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    return found


def test_no_function_level_imports_outside_the_app_factory() -> None:
    files = [p for p in sorted((ROOT / "app").rglob("*.py")) if p != ROOT / "app" / "__init__.py"]
    files += sorted((ROOT / "jobs").rglob("*.py"))
    assert [hit for path in files for hit in function_level_app_imports(path)] == []
