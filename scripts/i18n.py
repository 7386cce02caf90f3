"""Keep the gettext catalogs complete: extract, update, fill from fragments, compile, check.

Usage: python scripts/i18n.py [update|check|compile]

Developers write strings with gettext/_() and put the Chinese wording for their new strings in
translations/fragments/<feature>.json ({"English msgid": "中文"}); `update` extracts every string,
updates translations/{zh,en}, fills empty Chinese entries from the fragments, copies the msgid
into empty English entries, and compiles. `check` fails when any entry lacks a translation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
POT = TRANSLATIONS / "messages.pot"
FRAGMENTS = TRANSLATIONS / "fragments"
LOCALES = ("zh", "en")


def _pybabel(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", *args], check=True, cwd=ROOT)


def extract() -> None:
    """Extract every translatable string from app/, jobs/ and templates/."""
    _pybabel("extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "--no-location",
             "--sort-output", "-o", str(POT), "app", "jobs", "templates")  # fmt: skip


def update_catalogs() -> None:
    """Create or update each locale's catalog from the template."""
    for locale in LOCALES:
        po = _po_path(locale)
        if po.exists():
            _pybabel("update", "-i", str(POT), "-d", str(TRANSLATIONS), "-l", locale,
                     "--no-fuzzy-matching", "--ignore-obsolete")  # fmt: skip
        else:
            _pybabel("init", "-i", str(POT), "-d", str(TRANSLATIONS), "-l", locale)


def fill_from_fragments() -> None:
    """Fill empty entries: Chinese from the fragments, English from the msgid."""
    fragments = _load_fragments()
    for locale in LOCALES:
        catalog = _read(locale)
        for message in catalog:
            if not message.id or _translated(message.string):
                continue
            if locale == "en":
                message.string = (
                    (message.id[0], message.id[1]) if message.pluralizable else message.id
                )
                continue
            singular = message.id[0] if message.pluralizable else message.id
            if singular in fragments:
                text = fragments[singular]
                message.string = (text,) if message.pluralizable else text
        _write(locale, catalog)


def missing() -> dict[str, list[str]]:
    """Entries with no translation, per locale."""
    result: dict[str, list[str]] = {}
    for locale in LOCALES:
        catalog = _read(locale)
        gaps = [
            str(m.id[0] if m.pluralizable else m.id)
            for m in catalog
            if m.id and (not _translated(m.string) or m.fuzzy)
        ]
        if gaps:
            result[locale] = gaps
    return result


def compile_catalogs() -> None:
    """Compile .po to .mo for every locale."""
    _pybabel("compile", "-d", str(TRANSLATIONS))


def _translated(string: object) -> bool:
    if isinstance(string, (tuple, list)):
        return all(bool(s) for s in string)
    return bool(string)


def _load_fragments() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(FRAGMENTS.glob("*.json")):
        merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def _po_path(locale: str) -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"


def _read(locale: str) -> Catalog:
    with _po_path(locale).open("rb") as handle:
        return read_po(handle, locale=locale)


def _write(locale: str, catalog: Catalog) -> None:
    with _po_path(locale).open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False)


def main(argv: list[str]) -> int:
    """Run the requested step (default: update)."""
    command = argv[1] if len(argv) > 1 else "update"
    if command == "update":
        extract()
        update_catalogs()
        fill_from_fragments()
        compile_catalogs()
    elif command == "compile":
        compile_catalogs()
    if command in ("update", "check"):
        gaps = missing()
        for locale, ids in gaps.items():
            print(f"{locale}: {len(ids)} untranslated", *[f"  {i}" for i in ids[:50]], sep="\n")
        return 1 if gaps and command == "check" else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
