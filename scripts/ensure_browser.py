"""Make sure Debian's chromium and CJK fonts are present for the browser tests (installs as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CJK_FONT_DIR = Path("/usr/share/fonts/opentype/noto")


E2E = Path(__file__).resolve().parent.parent / "tests" / "e2e"


def ensure_axe() -> int:
    """Install the pinned axe-core (tests/e2e/package-lock.json) with `npm ci` when missing."""
    if (E2E / "node_modules" / "axe-core" / "axe.min.js").exists():
        return 0
    if not shutil.which("npm"):
        print("Browser tests need npm (Debian package 'npm') to install axe-core.", file=sys.stderr)
        return 1
    command = ["npm", "ci", "--no-audit", "--no-fund"]
    return subprocess.run(command, cwd=E2E, check=False).returncode


def main() -> int:
    """Install chromium, fonts-noto-cjk (apt-get) and axe-core (npm) when missing."""
    if ensure_axe() != 0:
        return 1
    missing = [
        p for p, ok in (("chromium", CHROMIUM.exists()), ("fonts-noto-cjk", _has_cjk())) if not ok
    ]
    if not missing:
        return 0
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            f"Browser tests need {' and '.join(missing)}: run "
            f"'sudo apt-get install -y {' '.join(missing)}' and try again.",
            file=sys.stderr,
        )
        return 1
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    return 0


def _has_cjk() -> bool:
    return any(CJK_FONT_DIR.glob("NotoSansCJK*")) or any(
        Path("/usr/share/fonts").rglob("NotoSansCJK*")
    )


if __name__ == "__main__":
    sys.exit(main())
