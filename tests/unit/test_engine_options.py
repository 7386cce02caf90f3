"""DB_SESSION_SETTINGS: PostgreSQL sessions start with jit = off and no parallel workers by
default; other databases are untouched; `none` sends nothing (PgBouncer)."""

from __future__ import annotations

import pytest

from config import DEFAULT_SESSION_SETTINGS, engine_options, session_settings

PG = "postgresql+psycopg://cadence@db.example/cadence"
DEFAULTS = ("jit=off", "max_parallel_workers_per_gather=0")


def test_the_default_turns_jit_and_parallel_workers_off() -> None:
    assert session_settings(DEFAULT_SESSION_SETTINGS) == DEFAULTS


def test_unset_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_SESSION_SETTINGS", raising=False)
    assert session_settings() == DEFAULTS


def test_settings_are_read_with_spaces_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_SESSION_SETTINGS", "jit=off, work_mem=8MB")
    assert session_settings() == ("jit=off", "work_mem=8MB")


def test_none_sends_nothing() -> None:
    assert session_settings("none") == ()


@pytest.mark.parametrize("raw", ["jit", "jit=off -c x=1", "jit=off;drop", "JIT=off"])
def test_anything_but_name_value_items_is_refused_with_the_setting_named(raw: str) -> None:
    with pytest.raises(ValueError, match="DB_SESSION_SETTINGS"):
        session_settings(raw)


def test_postgresql_connections_start_with_the_settings() -> None:
    options = engine_options(PG, {"pool_pre_ping": True}, DEFAULTS)
    assert options == {
        "pool_pre_ping": True,
        "connect_args": {"options": "-c jit=off -c max_parallel_workers_per_gather=0"},
    }


def test_options_in_the_url_are_kept_before_the_settings() -> None:
    url = PG + "?options=-csearch_path%3Dtest_abc"
    options = engine_options(url, {}, ("jit=off",))
    assert options["connect_args"]["options"] == "-csearch_path=test_abc -c jit=off"


def test_options_in_connect_args_are_kept() -> None:
    given = {"connect_args": {"options": "-c statement_timeout=5000", "connect_timeout": 3}}
    options = engine_options(PG, given, ("jit=off",))
    assert options["connect_args"] == {
        "options": "-c statement_timeout=5000 -c jit=off",
        "connect_timeout": 3,
    }
    assert given["connect_args"]["options"] == "-c statement_timeout=5000"  # not changed in place


def test_no_settings_send_nothing_for_pgbouncer() -> None:
    assert engine_options(PG, {"pool_pre_ping": True}, ()) == {"pool_pre_ping": True}


def test_sqlite_is_untouched() -> None:
    assert engine_options("sqlite:///x.sqlite3", {}, DEFAULTS) == {}
