"""Translations: complete catalogs, dates in the user's locale and the clinic time zone."""

from __future__ import annotations

import importlib.util
from datetime import UTC, date, datetime
from pathlib import Path

from flask import Flask
from flask_babel import force_locale

from app.web.helpers import clinic_today
from app.web.templating import fmt_date, fmt_datetime, fmt_day_weekday, fmt_window

ROOT = Path(__file__).resolve().parents[2]


def _i18n_script():
    spec = importlib.util.spec_from_file_location("cadence_i18n", ROOT / "scripts" / "i18n.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_catalog_message_has_a_translation() -> None:
    gaps = _i18n_script().missing()
    assert gaps == {}, f"untranslated messages: {gaps}"


def test_the_web_fragment_covers_the_web_strings() -> None:
    import json

    from babel.messages.pofile import read_po

    fragment = json.loads((ROOT / "translations" / "fragments" / "web.json").read_text("utf-8"))
    with (ROOT / "translations" / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="zh")
    for english, chinese in fragment.items():
        message = catalog.get(english) or next(
            (m for m in catalog if m.pluralizable and m.id[0] == english), None
        )
        assert message is not None, f"fragment entry not in the catalog: {english}"
        text = message.string[0] if message.pluralizable else message.string
        assert text == chinese


def test_dates_follow_the_locale(app: Flask) -> None:
    day = date(2026, 3, 2)
    with app.test_request_context():
        with force_locale("zh"):
            assert fmt_date(day) == "2026年3月2日"
            assert fmt_day_weekday(day) == "3月2日周一"
        with force_locale("en"):
            assert fmt_date(day) == "Mar 2, 2026"
            assert fmt_day_weekday(day) == "Mon, Mar 2"
            window = fmt_window(date(2031, 3, 3), date(2031, 3, 10)).replace("\u2009", " ")
            assert window == "Mar 3 – 10, 2031"
            this_year = clinic_today().year
            window = fmt_window(date(this_year, 3, 3), date(this_year, 3, 10))
            assert window.replace("\u2009", " ") == "Mar 3 – 10"
        with force_locale("zh"):
            assert (
                fmt_window(date(2031, 3, 3), date(2031, 3, 10)) == "2031年3月3日\u2009–\u200910日"
            )


def test_times_are_shown_in_the_clinic_time_zone(app: Flask) -> None:
    moment = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 07:30 on 2 March in Shanghai
    with app.test_request_context():
        with force_locale("en"):
            assert "Mar 2, 2026" in fmt_datetime(moment)
            assert "7:30" in fmt_datetime(moment)
        with force_locale("zh"):
            assert "2026年3月2日" in fmt_datetime(moment)
