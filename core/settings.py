"""Configuration in one place: ``$EWS_HOME/ews.toml`` plus ``EWS_*`` environment overrides.

Resolution order (last wins):
1. the documented defaults in :data:`DEFAULT_TOML` (``ews init`` writes them out);
2. ``$EWS_HOME/ews.toml`` if present;
3. environment variables ``EWS_<SECTION>__<KEY>`` (e.g. ``EWS_FORECAST__MAX_CONTEXT=500``).

``EWS_HOME`` itself (default ``./ews-home``) says where the engine keeps its state. An unknown
section or key is an error, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import ConfigError

__all__ = [
    "DEFAULT_TOML",
    "DEMO_AS_OF",
    "Settings",
    "ForecastSettings",
    "AnomalySettings",
    "RiskSettings",
    "CycleSettings",
    "AlertSettings",
    "RuntimeSettings",
    "load_settings",
    "resolve_home",
]

DEFAULT_TOML = """\
# EWS settings. Every key is optional: delete a line to get the default back.
# Any key can be overridden from the environment as EWS_<SECTION>__<KEY>,
# e.g. EWS_FORECAST__MAX_CONTEXT=500 or EWS_RISK__BLUE=0.9.

[paths]
# Relative paths are relative to EWS_HOME.
warehouse = "warehouse.duckdb"   # the DuckDB file
raw = "raw"                      # landing copies of every ingested file
models = "models"                # model weights and fitted state
alerts = "alerts"                # exported CAP messages
logs = "logs"
# Folder of bundled sample data; empty = the data/ folder shipped with the project.
sample_data = ""

[forecast]
# Steps ahead per series frequency (pandas offset alias).
horizon = { h = 48, D = 14, B = 10, "W-FRI" = 8, "W-SUN" = 8, MS = 6 }
# Most recent observations a model sees per series (older history is kept, not fitted).
max_context = 1000
# Worker processes for statsforecast (the machine has 2 cores).
n_jobs = 2

[anomaly]
# Sliding-window length per frequency for the subsequence detector.
window = { h = 24, D = 7, B = 5, "W-FRI" = 4, "W-SUN" = 4, MS = 12 }
# Isolation forest size and seed (fixed seed: reruns give the same scores).
iforest_trees = 100
seed = 0
# Observations needed before a series is scored at all.
min_history = 60

[risk]
# Calibrated score (0..1, the share of the series' own history that was less abnormal)
# at or above which each level starts. An empirical calibration over n points tops out at
# n/(n+1), so red at 0.998 needs about 500 scored points of history.
blue = 0.97
yellow = 0.99
orange = 0.995
red = 0.998
# A level holds only if at least persistence_k of the last persistence_n steps reached it.
persistence_k = 2
persistence_n = 3

[cycle]
# Replay clock: when set (ISO date, e.g. "2011-03-12"), every cycle sees only observations
# up to the end of that day, as if run then: drills, training and back-checks of known
# events. Empty = live (all data). `ews demo` writes "2011-03-12" (the day after the
# Tohoku earthquake) into a fresh home's ews.toml; delete the line to go live.
as_of = ""

[alerts]
# Issuing-unit code used in message identifiers (GB/T 35965.1: code + _YYYYMMDDhhmmss).
issuer = "EWS0000000000"
# Levels that are released without a duty officer's approval.
auto_release = ["blue", "yellow"]

[runtime]
# Threads for numeric libraries (torch, BLAS); match the cores you have.
threads = 2
"""


#: The replay date `ews demo` writes into a fresh home: the day after the 2011-03-11
#: Tohoku M9.1 earthquake, which the bundled Japan catalog, tide gauge and markets cover.
DEMO_AS_OF = "2011-03-12"


@dataclass(frozen=True)
class PathSettings:
    warehouse: str
    raw: str
    models: str
    alerts: str
    logs: str
    sample_data: str


@dataclass(frozen=True)
class ForecastSettings:
    horizon: dict[str, int]
    max_context: int
    n_jobs: int


@dataclass(frozen=True)
class AnomalySettings:
    window: dict[str, int]
    iforest_trees: int
    seed: int
    min_history: int


@dataclass(frozen=True)
class RiskSettings:
    blue: float
    yellow: float
    orange: float
    red: float
    persistence_k: int
    persistence_n: int

    def thresholds(self) -> dict[str, float]:
        return {"blue": self.blue, "yellow": self.yellow, "orange": self.orange, "red": self.red}


@dataclass(frozen=True)
class CycleSettings:
    as_of: str

    def as_of_time(self) -> datetime | None:
        """End of the replay day (exclusive bound), or None when live."""
        if not self.as_of:
            return None
        return datetime.fromisoformat(self.as_of) + timedelta(days=1)


@dataclass(frozen=True)
class AlertSettings:
    issuer: str
    auto_release: list[str]


@dataclass(frozen=True)
class RuntimeSettings:
    threads: int


_SECTIONS = {
    "paths": PathSettings,
    "forecast": ForecastSettings,
    "anomaly": AnomalySettings,
    "risk": RiskSettings,
    "cycle": CycleSettings,
    "alerts": AlertSettings,
    "runtime": RuntimeSettings,
}


@dataclass(frozen=True)
class Settings:
    """Every configurable value of the engine, resolved once and passed in."""

    home: Path
    paths: PathSettings
    forecast: ForecastSettings
    anomaly: AnomalySettings
    risk: RiskSettings
    cycle: CycleSettings
    alerts: AlertSettings
    runtime: RuntimeSettings

    def path(self, name: str) -> Path:
        """Absolute location of one of the ``[paths]`` entries."""
        value = Path(getattr(self.paths, name))
        return value if value.is_absolute() else self.home / value

    @property
    def warehouse_path(self) -> Path:
        return self.path("warehouse")

    @property
    def config_file(self) -> Path:
        return self.home / "ews.toml"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The engine's state folder: the argument, else ``$EWS_HOME``, else ``./ews-home``."""
    chosen = home if home is not None else os.environ.get("EWS_HOME", "ews-home")
    return Path(chosen).expanduser().resolve()


def _merge(base: dict[str, Any], update: dict[str, Any], origin: str) -> None:
    for section, values in update.items():
        if section not in base:
            raise ConfigError(
                f"{origin}: unknown section [{section}]",
                fix=f"use one of {', '.join(f'[{s}]' for s in base)}",
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table of keys")
        for key, value in values.items():
            if key not in base[section]:
                raise ConfigError(
                    f"{origin}: unknown key {key!r} in [{section}]",
                    fix=f"known keys: {', '.join(base[section])}",
                )
            base[section][key] = _coerce(section, key, value, base[section][key], origin)


def _coerce(section: str, key: str, value: Any, default: Any, origin: str) -> Any:
    """Bring an override to the default's type, or explain why it cannot be."""
    want = type(default)
    if isinstance(value, str) and want is not str:
        try:
            value = json.loads(value) if want in (dict, list, bool) else want(value)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{origin}: {section}.{key} = {value!r} is not a {want.__name__}",
                fix=f"give a {want.__name__} like the default {json.dumps(default)}",
            ) from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise ConfigError(
            f"{origin}: {section}.{key} = {value!r} is a {type(value).__name__}, "
            f"expected {want.__name__}",
            fix=f"give a {want.__name__} like the default {json.dumps(default)}",
        )
    if want is dict:
        merged = dict(default)
        merged.update(value)
        return merged
    return value


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith("EWS_") or "__" not in name:
            continue
        section, _, key = name[4:].partition("__")
        out.setdefault(section.lower(), {})[key.lower()] = value
    return out


def load_settings(
    home: str | os.PathLike[str] | None = None, *, environ: dict[str, str] | None = None
) -> Settings:
    """Resolve the settings for ``home`` (see the module docstring for the order)."""
    environ = dict(os.environ) if environ is None else environ
    if home is None and "EWS_HOME" in environ:
        home = environ["EWS_HOME"]
    root = resolve_home(home)
    values = tomllib.loads(DEFAULT_TOML)
    config = root / "ews.toml"
    if config.exists():
        try:
            user = tomllib.loads(config.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{config} is not valid TOML: {exc}",
                fix="correct the line named above, or delete the file and run `ews init`",
            ) from None
        _merge(values, user, str(config))
    _merge(values, _env_overrides(environ), "environment")
    sections = {}
    for name, cls in _SECTIONS.items():
        known = {f.name for f in fields(cls)}
        sections[name] = cls(**{k: v for k, v in values[name].items() if k in known})
    settings = Settings(home=root, **sections)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    risk = settings.risk
    ladder = [risk.blue, risk.yellow, risk.orange, risk.red]
    if not all(0.0 < t < 1.0 for t in ladder) or ladder != sorted(ladder):
        raise ConfigError(
            f"risk thresholds must rise within (0, 1) from blue to red, got {ladder}",
            fix="set [risk] blue < yellow < orange < red, e.g. 0.97, 0.99, 0.995, 0.998",
        )
    if not 1 <= risk.persistence_k <= risk.persistence_n:
        raise ConfigError(
            f"persistence_k={risk.persistence_k} must be between 1 and "
            f"persistence_n={risk.persistence_n}",
            fix="set [risk] persistence_k <= persistence_n",
        )
    if settings.cycle.as_of:
        try:
            datetime.fromisoformat(settings.cycle.as_of)
        except ValueError:
            raise ConfigError(
                f"[cycle] as_of = {settings.cycle.as_of!r} is not an ISO date",
                fix='write a date such as "2011-03-12", or "" for live',
            ) from None
    for level in settings.alerts.auto_release:
        if level not in ("blue", "yellow", "orange", "red"):
            raise ConfigError(
                f"[alerts] auto_release names unknown level {level!r}",
                fix="list levels among blue, yellow, orange, red",
            )
