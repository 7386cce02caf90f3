"""DB_JIT_OFF: PostgreSQL connections start with jit = off; other databases are untouched."""

from __future__ import annotations

from config import engine_options

PG = "postgresql+psycopg://cadence@db.example/cadence"


def test_postgresql_connections_get_jit_off() -> None:
    options = engine_options(PG, {"pool_pre_ping": True}, jit_off=True)
    assert options == {"pool_pre_ping": True, "connect_args": {"options": "-c jit=off"}}


def test_options_in_the_url_are_kept_before_jit_off() -> None:
    url = PG + "?options=-csearch_path%3Dtest_abc"
    options = engine_options(url, {}, jit_off=True)
    assert options["connect_args"]["options"] == "-csearch_path=test_abc -c jit=off"


def test_options_in_connect_args_are_kept() -> None:
    given = {"connect_args": {"options": "-c statement_timeout=5000", "connect_timeout": 3}}
    options = engine_options(PG, given, jit_off=True)
    assert options["connect_args"] == {
        "options": "-c statement_timeout=5000 -c jit=off",
        "connect_timeout": 3,
    }
    assert given["connect_args"]["options"] == "-c statement_timeout=5000"  # not changed in place


def test_turned_off_sends_nothing_for_pgbouncer() -> None:
    assert engine_options(PG, {"pool_pre_ping": True}, jit_off=False) == {"pool_pre_ping": True}


def test_sqlite_is_untouched() -> None:
    assert engine_options("sqlite:///x.sqlite3", {}, jit_off=True) == {}
