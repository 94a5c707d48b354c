"""Settings: one file plus EWS_* overrides, with errors that name the fix."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.settings import DEFAULT_TOML, Settings, load_settings


def test_defaults_match_the_documented_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    documented = tomllib.loads(DEFAULT_TOML)
    assert settings.risk.blue == documented["risk"]["blue"]
    assert settings.forecast.horizon["B"] == documented["forecast"]["horizon"]["B"]
    assert settings.warehouse_path == tmp_path / "warehouse.duckdb"


def test_file_then_environment_override(tmp_path: Path) -> None:
    (tmp_path / "ews.toml").write_text("[forecast]\nmax_context = 300\nhorizon = { D = 30 }\n")
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


# --- every documented key reaches a field ---------------------------------------------------
# load_settings builds each section from the keys its dataclass declares, so a key of the default
# file (or of a user's ews.toml, which may only use documented keys) with no field would be
# accepted and then dropped without a word. These tests walk every key instead of a sample.

DOCUMENTED = tomllib.loads(DEFAULT_TOML)
KEYS = [(section, key) for section, values in DOCUMENTED.items() for key in values]


def _unmapped_keys(documented: dict[str, dict[str, Any]], settings: Settings) -> list[str]:
    """Sections and keys of a parsed ews.toml that no settings field takes."""
    unmapped = []
    for section, values in documented.items():
        target = getattr(settings, section, None)
        if section == "regions" and target is not None:
            continue  # keys are region ids the user names (RegionSettings.tables)
        if target is None or not dataclasses.is_dataclass(target):
            unmapped.append(f"[{section}]")
            continue
        names = {f.name for f in dataclasses.fields(target)}
        unmapped += [f"{section}.{key}" for key in values if key not in names]
    return unmapped


def _changed(value: Any) -> Any:
    """A different value of the same type (what a user might write instead of the default)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, value[0]] if value else ["x"]
    if isinstance(value, dict):
        if not value:
            return {"x": 1}
        first = next(iter(value))
        return {first: _changed(value[first])}
    raise TypeError(f"no changed value for {value!r}")


def _toml(value: Any) -> str:
    """``value`` as a TOML value (inline tables for dicts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def test_every_key_of_the_default_file_is_a_field_and_every_field_a_key(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert _unmapped_keys(DOCUMENTED, settings) == []
    sections = [f.name for f in dataclasses.fields(Settings) if f.name != "home"]
    assert sorted(sections) == sorted(DOCUMENTED)
    # [regions] is keyed by the user's region ids (none by default), all held in one field
    assert settings.regions.tables == DOCUMENTED["regions"] == {}
    for section in (s for s in sections if s != "regions"):
        fields = {f.name for f in dataclasses.fields(getattr(settings, section))}
        assert fields == set(DOCUMENTED[section]), section  # a field with no key cannot be set by a user
        for key, value in DOCUMENTED[section].items():
            assert getattr(getattr(settings, section), key) == value, f"{section}.{key}"


def test_the_checker_finds_a_key_or_section_without_a_field(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    written = {"risk": {"blue": 0.9, "bleu": 0.9}, "forecast": {"max_context": 300}, "nowhere": {"a": 1}}
    assert _unmapped_keys(written, settings) == ["risk.bleu", "[nowhere]"]


def test_the_default_file_written_as_a_users_ews_toml_loads_to_the_defaults(tmp_path: Path) -> None:
    default = load_settings(tmp_path / "bare", environ={})
    (tmp_path / "init").mkdir()
    (tmp_path / "init" / "ews.toml").write_text(DEFAULT_TOML, encoding="utf-8")  # what `ews init` writes
    written = load_settings(tmp_path / "init", environ={})
    for section in DOCUMENTED:
        assert getattr(written, section) == getattr(default, section), section


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k}" for s, k in KEYS])
def test_each_key_set_in_a_users_file_reaches_its_field_or_is_refused(tmp_path: Path, section: str, key: str) -> None:
    """A changed value either shows in the field or is refused with a ConfigError (a check that
    read it); a key that is dropped would do neither."""
    default = DOCUMENTED[section][key]
    value = _changed(default)
    (tmp_path / "ews.toml").write_text(f"[{section}]\n{key} = {_toml(value)}\n", encoding="utf-8")
    try:
        settings = load_settings(tmp_path, environ={})
    except ConfigError:
        return
    expected = {**default, **value} if isinstance(default, dict) else value
    assert getattr(getattr(settings, section), key) == expected


# [regions] takes any id as a key; its entries are checked in tests/test_regions.py
@pytest.mark.parametrize("section", sorted(set(DOCUMENTED) - {"regions"}))
def test_an_unknown_key_in_any_section_of_a_users_file_is_an_error_naming_it(tmp_path: Path, section: str) -> None:
    (tmp_path / "ews.toml").write_text(f"[{section}]\nno_such_key = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"unknown key 'no_such_key' in \[{section}\]"):
        load_settings(tmp_path, environ={})


def test_an_unknown_section_or_environment_key_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "ews.toml").write_text("[riks]\nblue = 0.9\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown section \[riks\]"):
        load_settings(tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"environment: unknown key 'blu' in \[risk\]"):
        load_settings(tmp_path / "other", environ={"EWS_RISK__BLU": "0.9"})


# --- [markets]: the market's field model ----------------------------------------------------


def test_markets_defaults_name_the_composite_its_segments_and_the_library_ladder(tmp_path: Path) -> None:
    from hazards.market_signals import DEFAULT_LADDER

    markets = load_settings(tmp_path, environ={}).markets
    assert markets.enabled and markets.region == "US"
    assert markets.composite_uid == "us_stress_composite"
    assert [markets.segment_uid(s) for s in markets.segments] == ["us_stress_equity", "us_stress_bonds", "us_stress_fx"]
    assert markets.ladder_rungs() == DEFAULT_LADDER
    assert markets.targets == {"us_recession": 365, "sp500_bear": 0}
    assert (markets.horizon_days, markets.episode_gap_days, markets.events_file) == (365, 365, "")
    ids = [i["unique_id"] for i in markets.indicators]
    assert ids == ["sp500_monthly", "sp500_monthly", "dgs10", "t10y2y"] + [
        "jpy_per_usd",
        "gbp_per_usd",
        "eur_per_usd",
        "cad_per_usd",
        "chf_per_usd",
    ]


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ("ladder = { red = [1.5, true] }", r"ladder red = \[1.5, True\] is not a warning level with"),
        ("ladder = { purple = [0.5, true] }", "ladder purple"),
        ("ladder = { blue = [0.6, false] }", r"shares \[0.6, 0.5, 0.5, 0.75\] must rise"),
        ("targets = { us_recession = -1 }", "is not an announcement lag in days"),
        ('composite_id = "US stress"', "is not a series id stem"),
        ("horizon_days = 0", "horizon_days = 0 is not a number of days"),
        ("indicators = []", "indicators is empty"),
        (
            'indicators = [{ name = "x", unique_id = "dgs10", transform = "vol", segment = "bonds" }]',
            r"(?s)transform 'vol' is unknown.*level, inverted, volatility, drawdown",
        ),
        (
            'indicators = [{ name = "x", unique_id = "dgs10", transform = "volatility", segment = "bonds" }]',
            "volatility needs window >= 2",
        ),
        (
            'indicators = [{ name = "x", unique_id = "dgs10", segment = "bonds" }]',
            r"lacks text key\(s\) \['transform'\]",
        ),
        (
            'indicators = [{ name = "x", unique_id = "a", transform = "level", segment = "s" },'
            ' { name = "x", unique_id = "b", transform = "level", segment = "s" }]',
            "repeat",
        ),
        ('indicators = [{ name = "x", unique_id = "a", transform = "level", segment = "composite" }]', "share"),
    ],
)
def test_markets_settings_refuse_what_the_model_cannot_use(tmp_path: Path, toml: str, match: str) -> None:
    (tmp_path / "ews.toml").write_text(f"[markets]\n{toml}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as err:
        load_settings(tmp_path, environ={})
    assert err.value.fix  # every refusal says what to write instead


def test_markets_indicators_from_the_environment(tmp_path: Path) -> None:
    one = '[{"name": "stress", "unique_id": "stlfsi4", "transform": "level", "segment": "money"}]'
    markets = load_settings(tmp_path, environ={"EWS_MARKETS__INDICATORS": one, "EWS_MARKETS__ENABLED": "false"}).markets
    assert not markets.enabled and markets.segments == ["money"] and markets.segment_uid("money") == "us_stress_money"


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ('[backtest]\nreselect_every = "weekly"\n', r"reselect_every = 'weekly' is not a period(?s:.*)\"7d\""),
        ('[backtest]\nreselect_every = "7"\n', r"reselect_every = '7' is not a period"),
        ("[scoring]\nrecent_window = -1\n", r"recent_window = -1 is negative"),
        ("[cycle]\nchunk_series = -1\n", r"chunk_series = -1 is negative"),
        ("[cycle]\nworkers = 0\n", r"workers = 0 is not a number of processes"),
    ],
)
def test_cycle_scale_settings_refuse_what_the_cycle_cannot_use(tmp_path: Path, toml: str, match: str) -> None:
    (tmp_path / "ews.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_settings(tmp_path, environ={})


def test_reselect_every_reads_hours_days_and_weeks(tmp_path: Path) -> None:
    periods = {"12h": timedelta(hours=12), "7d": timedelta(days=7), "2w": timedelta(days=14), "0d": timedelta(0)}
    for text, period in periods.items():
        settings = load_settings(tmp_path, environ={"EWS_BACKTEST__RESELECT_EVERY": text})
        assert settings.backtest.reselect_period() == period
