"""The read queries behind the dashboard pages and ``ews metrics`` (read-only, bounded).

Every function takes a :class:`~warehouse.store.Warehouse` (the dashboard passes a read
snapshot, see :mod:`warehouse.snapshots`) and returns a polars frame or plain values. Long
tables are paged (``limit``/``offset``, with a matching ``count_*``) and series are cut to a
window, so no page ever loads a whole table. Tables that later issues add (backtests, model
registry, LLM calls, ...) are read only when present; :func:`optional_table` says which.
Parameters are bound; table names come only from constants in this module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import polars as pl

from core.errors import WarehouseError
from core.vocabulary import LEVEL_NAMES
from warehouse.store import Warehouse

__all__ = [
    "LEVEL_ORDER",
    "has_table",
    "table_columns",
    "series_levels",
    "open_alert_counts",
    "newest_alerts",
    "count_alerts",
    "alerts_page",
    "alert_row",
    "alert_judgments",
    "alert_cap_messages",
    "alert_transitions",
    "alert_feedback",
    "data_freshness",
    "series_catalog",
    "series_classifications",
    "series_history",
    "series_forecast",
    "series_grades",
    "newest_grade",
    "series_scores",
    "seismic_events",
    "count_runs",
    "runs_page",
    "count_batches",
    "batches_page",
    "count_audit",
    "audit_page",
    "audit_actions",
    "forecast_models",
    "optional_table",
    "OPTIONAL_TABLES",
    "operations_metrics",
    "full_table_row_counts",
]

LEVEL_ORDER = LEVEL_NAMES  # none, then the warning levels mildest first (core.vocabulary)

#: Tables other issues add, by what the Models and Operations pages show from them. The first
#: name that exists is read (names are code constants, never user input).
OPTIONAL_TABLES: dict[str, tuple[str, ...]] = {
    "backtests": ("backtest_metrics", "backtests", "model_backtests"),
    "model_choice": ("model_selection", "model_choices", "chosen_models"),
    "registry": ("model_registry", "vertical_models", "models"),
    "llm_calls": ("llm_calls", "llm_requests", "judgment_calls"),
    "injections": ("blocked_injections", "injection_blocks", "llm_blocked"),
}

_LEVEL_RANK = "CASE {col} WHEN 'red' THEN 4 WHEN 'orange' THEN 3 WHEN 'yellow' THEN 2 WHEN 'blue' THEN 1 ELSE 0 END"


def has_table(wh: Warehouse, name: str) -> bool:
    return bool(wh._execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])[0][0])


def table_columns(wh: Warehouse, name: str) -> list[str]:
    rows = wh._execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position", [name]
    )
    return [r[0] for r in rows]


# -- overview ----------------------------------------------------------------------------
def series_levels(wh: Warehouse) -> pl.DataFrame:
    """Every series with its location and current level (highest open alert, else none)."""
    rank = _LEVEL_RANK.format(col="a.level")
    return wh._frame(
        "WITH open_alerts AS ("
        f"  SELECT a.unique_id, a.level, a.score, a.ds, {rank} AS rank FROM alerts a "
        "   WHERE a.status = 'open' "
        "   QUALIFY row_number() OVER (PARTITION BY a.unique_id ORDER BY rank DESC, a.ds DESC) = 1) "
        "SELECT s.unique_id, s.name, s.domain, s.region, s.lat, s.lon, s.unit, s.frequency, "
        "coalesce(o.level, 'none') AS level, coalesce(o.rank, 0) AS rank, o.score, o.ds AS alert_ds "
        "FROM series s LEFT JOIN open_alerts o USING (unique_id) ORDER BY s.domain, s.unique_id"
    )


def open_alert_counts(wh: Warehouse) -> pl.DataFrame:
    """Open alerts counted by domain and level."""
    return wh._frame(
        "SELECT domain, level, count(*) AS alerts FROM alerts WHERE status = 'open' "
        "GROUP BY domain, level ORDER BY domain, level"
    )


def newest_alerts(wh: Warehouse, limit: int = 10) -> pl.DataFrame:
    return wh._frame(
        "SELECT a.alert_id, a.level, a.status, a.unique_id, s.name, a.region, a.hazard, a.ds, "
        "a.score, a.updated_at FROM alerts a LEFT JOIN series s USING (unique_id) "
        "ORDER BY a.updated_at DESC, a.alert_id LIMIT ?",
        [limit],
    )


def _alert_filter(
    statuses: Sequence[str] | None, levels: Sequence[str] | None, domain: str | None
) -> tuple[str, list[Any]]:
    sql = " WHERE 1 = 1"
    params: list[Any] = []
    if statuses:
        sql += " AND a.status IN (SELECT unnest(?))"
        params.append(list(statuses))
    if levels:
        sql += " AND a.level IN (SELECT unnest(?))"
        params.append(list(levels))
    if domain:
        sql += " AND a.domain = ?"
        params.append(domain)
    return sql, params


def count_alerts(
    wh: Warehouse,
    *,
    statuses: Sequence[str] | None = None,
    levels: Sequence[str] | None = None,
    domain: str | None = None,
) -> int:
    where, params = _alert_filter(statuses, levels, domain)
    return wh._execute("SELECT count(*) FROM alerts a" + where, params)[0][0]


def alerts_page(
    wh: Warehouse,
    *,
    statuses: Sequence[str] | None = None,
    levels: Sequence[str] | None = None,
    domain: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> pl.DataFrame:
    """One page of alerts, most severe and newest first."""
    where, params = _alert_filter(statuses, levels, domain)
    rank = _LEVEL_RANK.format(col="a.level")
    release = "a.release_state" if "release_state" in table_columns(wh, "alerts") else "NULL"
    return wh._frame(
        f"SELECT a.alert_id, a.level, a.status, {release} AS release_state, a.unique_id, s.name, "
        "a.domain, a.region, a.hazard, a.ds, a.score, a.opened_at, a.updated_at "
        f"FROM alerts a LEFT JOIN series s USING (unique_id){where} "
        f"ORDER BY (a.status = 'open') DESC, {rank} DESC, a.updated_at DESC, a.alert_id "
        "LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )


def alert_row(wh: Warehouse, alert_id: str) -> dict[str, Any] | None:
    rows = wh._frame(
        "SELECT a.*, s.name, s.unit, s.source, s.licence FROM alerts a "
        "LEFT JOIN series s USING (unique_id) WHERE a.alert_id = ?",
        [alert_id],
    )
    return rows.to_dicts()[0] if rows.height else None


def alert_judgments(wh: Warehouse, alert_id: str) -> pl.DataFrame:
    return wh._frame("SELECT * FROM judgments WHERE alert_id = ? ORDER BY created_at DESC, judgment_id", [alert_id])


def alert_cap_messages(wh: Warehouse, alert_id: str) -> pl.DataFrame:
    """CAP messages rendered for the alert (empty when the CAP builder has not run)."""
    if not has_table(wh, "cap_messages"):
        return pl.DataFrame()
    return wh._frame(
        "SELECT identifier, msg_type, status, sent, valid, xml, created_at "
        "FROM cap_messages WHERE alert_id = ? ORDER BY created_at DESC",
        [alert_id],
    )


def alert_transitions(wh: Warehouse, alert_id: str) -> pl.DataFrame:
    if not has_table(wh, "alert_transitions"):
        return pl.DataFrame()
    return wh._frame(
        "SELECT at_time, action, actor, from_status, to_status, from_level, to_level, "
        "from_release, to_release, reason FROM alert_transitions WHERE alert_id = ? "
        "ORDER BY transition_id",
        [alert_id],
    )


def alert_feedback(wh: Warehouse, alert_id: str) -> pl.DataFrame:
    if not has_table(wh, "feedback"):
        return pl.DataFrame()
    return wh._frame(
        "SELECT at_time, user_name, verdict, note FROM feedback WHERE alert_id = ? ORDER BY feedback_id", [alert_id]
    )


def data_freshness(wh: Warehouse) -> pl.DataFrame:
    """Per source: newest observation, last batch loaded, and the source monitor's view."""
    frame = wh._frame(
        "SELECT s.source, count(DISTINCT s.unique_id) AS series, max(o.newest) AS newest_observation, "
        "max(b.fetched_at) AS last_loaded FROM series s "
        "LEFT JOIN (SELECT unique_id, max(ds) AS newest FROM observations GROUP BY unique_id) o "
        "USING (unique_id) LEFT JOIN ingest_batches b ON b.batch_id = s.batch_id "
        "GROUP BY s.source ORDER BY newest_observation DESC NULLS LAST"
    )
    if has_table(wh, "source_status"):
        status = wh._frame(
            "SELECT source AS feed, kind, last_success_at, last_error_at, last_error, "
            "last_data_time FROM source_status ORDER BY source"
        )
        if status.height:
            return pl.concat([frame, status], how="diagonal_relaxed")
    return frame


# -- series pages ------------------------------------------------------------------------
def series_classifications(wh: Warehouse) -> dict[str, str]:
    """unique_id -> classification (public ... secret), for the dashboard's clearance filter."""
    return {str(u): str(c) for u, c in wh._execute("SELECT unique_id, classification FROM series")}


def series_catalog(wh: Warehouse, domains: Sequence[str]) -> pl.DataFrame:
    return wh._frame(
        "SELECT unique_id, name, domain, variable, unit, frequency, region, source, licence "
        "FROM series WHERE domain IN (SELECT unnest(?)) ORDER BY region, unique_id",
        [list(domains)],
    )


def series_history(
    wh: Warehouse, unique_id: str, *, points: int = 1500, before: datetime | None = None
) -> pl.DataFrame:
    """The newest ``points`` observations of one series (earlier than ``before`` if given)."""
    return wh._frame(
        "SELECT ds, y FROM (SELECT ds, y FROM observations WHERE unique_id = ? "
        "AND ds < coalesce(?, 'infinity'::TIMESTAMP) ORDER BY ds DESC LIMIT ?) ORDER BY ds",
        [unique_id, before, points],
    )


def series_forecast(wh: Warehouse, unique_id: str) -> pl.DataFrame:
    """The forecast from the series' newest cutoff (one model per row and step)."""
    return wh._frame(
        "SELECT * FROM forecasts WHERE unique_id = ? QUALIFY cutoff = max(cutoff) OVER () ORDER BY model, ds",
        [unique_id],
    )


def series_grades(wh: Warehouse, unique_id: str, *, since: datetime | None = None) -> pl.DataFrame:
    """Graded points (level above none = an anomaly mark) since ``since``."""
    return wh._frame(
        "SELECT ds, level, score FROM risk_grades WHERE unique_id = ? "
        "AND ds >= coalesce(?, '-infinity'::TIMESTAMP) ORDER BY ds",
        [unique_id, since],
    )


def newest_grade(wh: Warehouse, unique_id: str) -> dict[str, Any] | None:
    """The series' newest graded point with its evidence (JSON text): ``ds, level, score,
    evidence, run_id``; None when it was never graded."""
    frame = wh._frame(
        "SELECT ds, level, score, CAST(evidence AS VARCHAR) AS evidence, run_id FROM risk_grades "
        "WHERE unique_id = ? ORDER BY ds DESC LIMIT 1",
        [unique_id],
    )
    return frame.row(0, named=True) if frame.height else None


def series_scores(
    wh: Warehouse, unique_id: str, *, detector: str = "ensemble", since: datetime | None = None
) -> pl.DataFrame:
    return wh._frame(
        "SELECT ds, score FROM anomaly_scores WHERE unique_id = ? AND detector = ? "
        "AND ds >= coalesce(?, '-infinity'::TIMESTAMP) ORDER BY ds",
        [unique_id, detector, since],
    )


def seismic_events(
    wh: Warehouse,
    *,
    lat: float,
    lon: float,
    radius_deg: float,
    start: datetime,
    end: datetime,
    min_magnitude: float,
    limit: int = 5000,
) -> pl.DataFrame:
    """Catalog events within ``radius_deg`` of a point, newest first, at most ``limit``."""
    return wh._frame(
        "SELECT time, lat, lon, depth_km, magnitude, source FROM events "
        "WHERE time >= ? AND time < ? AND magnitude >= ? "
        "AND abs(lat - ?) <= ? AND abs(lon - ?) <= ? ORDER BY time DESC LIMIT ?",
        [start, end, min_magnitude, lat, radius_deg, lon, radius_deg, limit],
    )


# -- data and audit ----------------------------------------------------------------------
def count_runs(wh: Warehouse) -> int:
    return wh._execute("SELECT count(*) FROM runs")[0][0]


def runs_page(wh: Warehouse, *, limit: int = 50, offset: int = 0) -> pl.DataFrame:
    return wh._frame(
        "SELECT run_id, kind, status, started_at, finished_at, "
        "date_diff('millisecond', started_at, finished_at) / 1000.0 AS seconds, as_of, "
        "row_counts, error FROM runs ORDER BY started_at DESC, run_id LIMIT ? OFFSET ?",
        [limit, offset],
    )


def count_batches(wh: Warehouse, *, status: str | None = None) -> int:
    return wh._execute("SELECT count(*) FROM ingest_batches WHERE status = coalesce(?, status)", [status])[0][0]


def batches_page(wh: Warehouse, *, status: str | None = None, limit: int = 50, offset: int = 0) -> pl.DataFrame:
    return wh._frame(
        "SELECT batch_id, source, format, location, fetched_at, row_count, rows_changed, checksum, "
        "status, error FROM ingest_batches WHERE status = coalesce(?, status) "
        "ORDER BY fetched_at DESC, batch_id LIMIT ? OFFSET ?",
        [status, limit, offset],
    )


def _audit_filter(
    actor: str | None, action: str | None, since: datetime | None, until: datetime | None, text: str | None
) -> tuple[str, list[Any]]:
    sql = " WHERE at_time >= coalesce(?, '-infinity'::TIMESTAMP) AND at_time < coalesce(?, 'infinity'::TIMESTAMP)"
    params: list[Any] = [since, until]
    if actor:
        sql += " AND actor = ?"
        params.append(actor)
    if action:
        sql += " AND action = ?"
        params.append(action)
    if text:
        sql += " AND (coalesce(target, '') || ' ' || coalesce(detail::VARCHAR, '')) ILIKE ?"
        params.append(f"%{text}%")
    return sql, params


def count_audit(
    wh: Warehouse,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
) -> int:
    where, params = _audit_filter(actor, action, since, until, text)
    return wh._execute("SELECT count(*) FROM audit_log" + where, params)[0][0]


def audit_page(
    wh: Warehouse,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> pl.DataFrame:
    where, params = _audit_filter(actor, action, since, until, text)
    return wh._frame(
        "SELECT audit_id, at_time, actor, action, target, detail::VARCHAR AS detail "
        f"FROM audit_log{where} ORDER BY audit_id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )


def audit_actions(wh: Warehouse) -> tuple[list[str], list[str]]:
    """Distinct actors and actions (the audit page's filter choices)."""
    actors = [r[0] for r in wh._execute("SELECT DISTINCT actor FROM audit_log ORDER BY 1")]
    actions = [r[0] for r in wh._execute("SELECT DISTINCT action FROM audit_log ORDER BY 1")]
    return actors, actions


# -- models ------------------------------------------------------------------------------
def forecast_models(wh: Warehouse) -> pl.DataFrame:
    """Per series: the model(s) behind its newest forecast, the cutoff and the run."""
    return wh._frame(
        "SELECT f.unique_id, s.name, s.frequency, f.model, f.cutoff, any_value(f.run_id) AS run_id, "
        "count(*) AS steps FROM forecasts f LEFT JOIN series s USING (unique_id) "
        "GROUP BY f.unique_id, s.name, s.frequency, f.model, f.cutoff "
        "QUALIFY f.cutoff = max(f.cutoff) OVER (PARTITION BY f.unique_id) "
        "ORDER BY f.unique_id, f.model"
    )


def optional_table(wh: Warehouse, what: str, *, limit: int = 500) -> tuple[str | None, pl.DataFrame]:
    """(table name, its newest rows) for one of :data:`OPTIONAL_TABLES`, or (None, empty)."""
    for name in OPTIONAL_TABLES[what]:
        if has_table(wh, name):
            return name, wh._frame(f"SELECT * FROM {name} LIMIT ?", [limit])
    return None, pl.DataFrame()


# -- operations (the dashboard page and `ews metrics` share these figures) ---------------------
def operations_metrics(wh: Warehouse, *, now: datetime) -> pl.DataFrame:
    """Monitoring figures as rows ``name, labels (JSON), value, type, help``.

    Each series (name and labels) appears once: counts that land on the same labels (several
    stored check layouts giving one verdict) are added up, which Prometheus requires.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def add(name: str, value: float | None, help_text: str, metric_type: str = "gauge", **labels: Any) -> None:
        if value is None:
            return
        key = (name, json.dumps(labels, sort_keys=True))
        if key in rows:
            if metric_type != "counter":
                raise RuntimeError(f"internal error: gauge {name} {key[1]} computed twice")
            rows[key]["value"] += float(value)
            return
        rows[key] = {"name": name, "labels": key[1], "value": float(value), "type": metric_type, "help": help_text}

    for kind, status, n in wh._execute("SELECT kind, status, count(*) FROM runs GROUP BY 1, 2 ORDER BY 1, 2"):
        add(
            "ews_runs_total",
            n,
            "Runs recorded in the warehouse, by kind and status.",
            "counter",
            kind=kind,
            status=status,
        )
    for kind, seconds, started, status in wh._execute(
        "SELECT kind, date_diff('millisecond', started_at, finished_at) / 1000.0, started_at, status "
        "FROM runs QUALIFY row_number() OVER (PARTITION BY kind ORDER BY started_at DESC) = 1"
    ):
        add("ews_last_run_duration_seconds", seconds, "Duration of the newest run of each kind.", kind=kind)
        add(
            "ews_last_run_age_seconds",
            (now - started).total_seconds(),
            "Seconds since the newest run of each kind started.",
            kind=kind,
        )
        add(
            "ews_last_run_failed",
            1.0 if status == "failed" else 0.0,
            "1 when the newest run of each kind failed.",
            kind=kind,
        )
    for status, n in wh._execute("SELECT status, count(*) FROM ingest_batches GROUP BY 1 ORDER BY 1"):
        add("ews_ingest_batches_total", n, "Ingested batches in the ledger, by status.", "counter", status=status)
    for source, newest in wh._execute(
        "SELECT s.source, max(o.ds) FROM series s JOIN observations o USING (unique_id) GROUP BY 1 ORDER BY 1"
    ):
        add(
            "ews_source_newest_observation_age_seconds",
            (now - newest).total_seconds(),
            "Seconds between now and the newest observation of each source.",
            source=source,
        )
    if has_table(wh, "source_status"):
        for source, success in wh._execute("SELECT source, last_success_at FROM source_status ORDER BY 1"):
            if success is not None:
                add(
                    "ews_feed_last_success_age_seconds",
                    (now - success).total_seconds(),
                    "Seconds since each network feed last loaded successfully.",
                    feed=source,
                )
    for domain, level, n in wh._execute(
        "SELECT domain, level, count(*) FROM alerts WHERE status = 'open' GROUP BY 1, 2 ORDER BY 1, 2"
    ):
        add("ews_alerts_open", n, "Open alerts by domain and level.", domain=domain, level=level)
    # forecast accuracy drift: how often new observations fell outside the 90% band, recently
    # versus over each series' whole scored history (forecast_interval detector raw scores > 1).
    for detector, n, recent in wh._execute(
        "SELECT detector, count(*), avg(score) FILTER (WHERE ds >= (SELECT max(ds) FROM anomaly_scores) "
        "- INTERVAL 90 DAY) FROM anomaly_scores GROUP BY 1 ORDER BY 1"
    ):
        add("ews_anomaly_scores_total", n, "Stored anomaly scores by detector.", "counter", detector=detector)
        add(
            "ews_anomaly_score_recent_mean",
            recent,
            "Mean calibrated score over the newest 90 days (drift: above 0.5 = unusual lately).",
            detector=detector,
        )
    for writer, label_ok, n in wh._execute(
        "SELECT writer, label IS NOT NULL AND label <> '', count(*) FROM judgments GROUP BY 1, 2 ORDER BY 1, 2"
    ):
        add(
            "ews_judgments_total",
            n,
            "Judgments by writer and whether they carry the AI label.",
            "counter",
            writer=writer,
            labelled=str(bool(label_ok)).lower(),
        )
    for checks, n in wh._execute("SELECT checks::VARCHAR, count(*) FROM judgments GROUP BY 1 ORDER BY 1"):
        verdict = _check_verdict(checks)
        add(
            "ews_judgment_checks_total",
            n,
            "Judgments by the verdict of their grounding checks.",
            "counter",
            verdict=verdict,
        )
    if has_table(wh, "deliveries"):
        for state, n in wh._execute("SELECT state, count(*) FROM deliveries GROUP BY 1 ORDER BY 1"):
            add("ews_deliveries", n, "Deliveries by state (pending = backlog, dead = dead letters).", state=state)
    if has_table(wh, "outbox"):
        backlog = wh._execute("SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0]
        add("ews_outbox_unpublished", backlog, "Outbox events not yet rendered and published.")
    name, calls = optional_table(wh, "llm_calls", limit=100_000)
    if name and "latency_ms" in calls.columns and calls.height:
        add(
            "ews_llm_latency_ms_p50",
            cast("float | None", calls["latency_ms"].median()),
            "Median LLM call latency.",
            table=name,
        )
        add("ews_llm_latency_ms_p95", calls["latency_ms"].quantile(0.95), "95th percentile LLM latency.", table=name)
    name, blocked = optional_table(wh, "injections", limit=100_000)
    if name:
        add("ews_blocked_injections_total", blocked.height, "Prompt injections blocked.", "counter", table=name)
    if has_table(wh, "review_inbox_applied"):
        for outcome, n in wh._execute("SELECT outcome, count(*) FROM review_inbox_applied GROUP BY 1 ORDER BY 1"):
            add(
                "ews_review_actions_total",
                n,
                "Dashboard review actions applied or refused.",
                "counter",
                outcome=outcome,
            )
    schema = {"name": pl.Utf8, "labels": pl.Utf8, "value": pl.Float64, "type": pl.Utf8, "help": pl.Utf8}
    return pl.DataFrame(list(rows.values()), schema=schema)


# -- the dashboard benchmark's naive peer ------------------------------------------------
def full_table_row_counts(wh: Warehouse, tables: Sequence[str]) -> dict[str, int]:
    """Row count of each of ``tables``, found by reading the whole table into a frame: what a
    page would cost without paging and caching (benchmarks/dashboard_pages.py times it).
    Not for the pages themselves. Each name must be a table of this warehouse."""
    known = set(wh.tables())
    unknown = [t for t in tables if t not in known]
    if unknown:
        raise WarehouseError(
            f"no table {unknown[0]!r} in warehouse {wh.path}",
            fix="name tables the migrations create (warehouse/migrations.py)",
        )
    return {t: wh._frame(f"SELECT * FROM {t}").height for t in tables}


def _check_verdict(checks: str | None) -> str:
    """One word for a judgment's checks JSON: passed, failed, or unchecked."""
    if not checks:
        return "unchecked"
    try:
        data = json.loads(checks)
    except ValueError:
        return "unchecked"
    if isinstance(data, dict):
        if "passed" in data:
            return "passed" if data["passed"] else "failed"
        values = [v for v in data.values() if isinstance(v, bool)]
        if values:
            return "passed" if all(values) else "failed"
        return "passed" if data else "unchecked"
    return "unchecked"
