"""DB_POOL_SIZE / DB_MAX_OVERFLOW size each process's connection pool (README "Scaling")."""

from __future__ import annotations

import pytest

from config import pool_options


def test_unset_leaves_sqlalchemys_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DB_POOL_SIZE", raising=False)
    monkeypatch.delenv("DB_MAX_OVERFLOW", raising=False)
    assert pool_options() == {}


def test_set_values_reach_the_engine_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "0")
    assert pool_options() == {"pool_size": 3, "max_overflow": 0}


def test_a_non_number_is_refused_with_the_setting_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "many")
    with pytest.raises(ValueError, match="DB_POOL_SIZE"):
        pool_options()
