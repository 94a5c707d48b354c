"""Settings: one file plus EWS_* overrides, with errors that name the fix."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import DEFAULT_TOML, load_settings


def test_defaults_match_the_documented_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    documented = tomllib.loads(DEFAULT_TOML)
    assert settings.risk.blue == documented["risk"]["blue"]
    assert settings.forecast.horizon["B"] == documented["forecast"]["horizon"]["B"]
    assert settings.warehouse_path == tmp_path / "warehouse.duckdb"


def test_file_then_environment_override(tmp_path: Path) -> None:
    (tmp_path / "ews.toml").write_text('[forecast]\nmax_context = 300\nhorizon = { D = 30 }\n')
    settings = load_settings(tmp_path, environ={"EWS_FORECAST__MAX_CONTEXT": "200"})
    assert settings.forecast.max_context == 200
    assert settings.forecast.horizon["D"] == 30
    assert settings.forecast.horizon["MS"] == 6  # untouched keys of a table keep their default


def test_ews_home_from_environment(tmp_path: Path) -> None:
    settings = load_settings(environ={"EWS_HOME": str(tmp_path / "h")})
    assert settings.home == tmp_path / "h"


def test_unknown_key_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    (tmp_path / "ews.toml").write_text("[risk]\nblu = 0.9\n")
    with pytest.raises(ConfigError, match=r"(?s)unknown key 'blu' in \[risk\].*known keys: blue"):
        load_settings(tmp_path, environ={})


def test_wrong_type_names_value_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"forecast.max_context = 'lots' is not a int"):
        load_settings(tmp_path, environ={"EWS_FORECAST__MAX_CONTEXT": "lots"})


def test_thresholds_must_rise(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must rise within"):
        load_settings(tmp_path, environ={"EWS_RISK__RED": "0.5"})


def test_broken_toml_points_at_the_file(tmp_path: Path) -> None:
    (tmp_path / "ews.toml").write_text("[risk\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(tmp_path, environ={})
