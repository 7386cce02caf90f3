"""All CSS, JavaScript and fonts are served by the app itself (no CDN, no external fonts)."""

from __future__ import annotations

import re
from pathlib import Path

from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["'](?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//"""
)


def test_pages_load_assets_from_the_app_only(english_nurse: FlaskClient) -> None:
    html = english_nurse.get("/").get_data(as_text=True)
    assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert assets and all(url.startswith("/static/") for url in assets), assets
    for url in assets:
        assert english_nurse.get(url).status_code == 200


def test_no_external_urls_in_templates_and_static_files() -> None:
    files = [*(ROOT / "templates").rglob("*.html"), *(ROOT / "app" / "static").rglob("*.*")]
    assert files
    offenders = [
        str(path.relative_to(ROOT))
        for path in files
        if path.suffix in (".html", ".css", ".js") and EXTERNAL.search(path.read_text("utf-8"))
    ]
    assert offenders == []


def test_no_inline_scripts_so_the_csp_can_forbid_them() -> None:
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text("utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert " style=" not in text, path
