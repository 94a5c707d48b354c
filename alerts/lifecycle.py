"""Alert decisions from risk grades (pure: frames in, frames out; the caller passes the time).

One alert follows one series through an episode: it opens when the series' newest grade
reaches blue or above, is updated when the level or the triggering observation changes, and
is resolved when the newest grade falls back to none. Its id is stable for the episode
(series + the time the episode's first graded observation was made), so a rerun on the same
grades produces the same rows and the warehouse sees no change.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import polars as pl

from core.frames import Domain

__all__ = ["HAZARD_BY_DOMAIN", "plan_alerts", "ALERT_COLUMNS"]

#: What an alert on a series of each domain warns about.
HAZARD_BY_DOMAIN: dict[str, str] = {
    Domain.MARKET.value: "market_risk",
    Domain.SEISMIC.value: "earthquake",
    Domain.GEODETIC.value: "ground_deformation",
    Domain.HYDRO.value: "hydrological_extreme",
    Domain.SATELLITE.value: "climate_anomaly",
}

ALERT_COLUMNS = (
    "alert_id", "unique_id", "domain", "region", "hazard", "level", "status", "ds",
    "score", "evidence", "opened_at", "updated_at",
)


def _alert_id(unique_id: str, opened_ds: datetime) -> str:
    digest = hashlib.sha256(f"{unique_id}|{opened_ds.isoformat()}".encode()).hexdigest()
    return f"a_{digest[:16]}"


def plan_alerts(latest: pl.DataFrame, open_alerts: pl.DataFrame, *, now: datetime) -> pl.DataFrame:
    """Alert rows to upsert, given each series' newest grade and the alerts still open.

    ``latest``: unique_id, ds, level, score, evidence, domain, region (one row per series).
    ``open_alerts``: rows of the alerts table whose status is not ``resolved``.
    Returns rows with :data:`ALERT_COLUMNS`; unchanged alerts are returned unchanged, so the
    caller's upsert leaves them alone.
    """
    open_by_series = {row["unique_id"]: row for row in open_alerts.iter_rows(named=True)}
    rows = []
    for grade in latest.iter_rows(named=True):
        current = open_by_series.pop(grade["unique_id"], None)
        active = grade["level"] != "none"
        if current is None and not active:
            continue
        if current is None:
            rows.append({
                "alert_id": _alert_id(grade["unique_id"], grade["ds"]),
                "unique_id": grade["unique_id"],
                "domain": grade["domain"],
                "region": grade["region"],
                "hazard": HAZARD_BY_DOMAIN[grade["domain"]],
                "level": grade["level"],
                "status": "open",
                "ds": grade["ds"],
                "score": grade["score"],
                "evidence": grade["evidence"],
                "opened_at": now,
                "updated_at": now,
            })
            continue
        row = {c: current[c] for c in ALERT_COLUMNS}
        if not active:
            row.update(status="resolved", ds=grade["ds"], score=grade["score"],
                       evidence=grade["evidence"], updated_at=now)
        elif (grade["level"], grade["ds"]) != (current["level"], current["ds"]):
            row.update(level=grade["level"], ds=grade["ds"], score=grade["score"],
                       evidence=grade["evidence"], updated_at=now)
        rows.append(row)
    schema = {
        "alert_id": pl.Utf8, "unique_id": pl.Utf8, "domain": pl.Utf8, "region": pl.Utf8,
        "hazard": pl.Utf8, "level": pl.Utf8, "status": pl.Utf8, "ds": pl.Datetime("us"),
        "score": pl.Float64, "evidence": pl.Utf8, "opened_at": pl.Datetime("us"),
        "updated_at": pl.Datetime("us"),
    }
    return pl.DataFrame(rows, schema=schema)
