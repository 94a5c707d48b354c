"""The warehouse schema as an ordered list of forward migrations.

A file is at version N when migrations 1..N have been applied; ``schema_migrations`` records
each with the time it ran. :func:`migrate` applies the missing ones in order, each in its own
transaction, so a fresh file and an older file both end at :data:`CURRENT_VERSION`.
Never edit a released migration: append a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Migration", "MIGRATIONS", "CURRENT_VERSION"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_V1 = (
    """
    CREATE TABLE series (
        unique_id      VARCHAR PRIMARY KEY,
        domain         VARCHAR NOT NULL
                       CHECK (domain IN ('market', 'seismic', 'geodetic', 'hydro', 'satellite')),
        name           VARCHAR NOT NULL,
        variable       VARCHAR,
        unit           VARCHAR,
        frequency      VARCHAR NOT NULL,
        region         VARCHAR,
        lat            DOUBLE,
        lon            DOUBLE,
        source         VARCHAR,
        licence        VARCHAR,
        classification VARCHAR NOT NULL DEFAULT 'public'
                       CHECK (classification IN ('public', 'internal', 'confidential', 'secret')),
        batch_id       VARCHAR
    )
    """,
    """
    CREATE TABLE observations (
        unique_id VARCHAR NOT NULL,
        ds        TIMESTAMP NOT NULL,
        y         DOUBLE NOT NULL,
        batch_id  VARCHAR NOT NULL,
        PRIMARY KEY (unique_id, ds)
    )
    """,
    """
    CREATE TABLE ingest_batches (
        batch_id      VARCHAR PRIMARY KEY,
        source        VARCHAR NOT NULL,
        format        VARCHAR NOT NULL,
        location      VARCHAR NOT NULL,
        fetched_at    TIMESTAMP NOT NULL,
        row_count     BIGINT,
        rows_changed  BIGINT,
        checksum      VARCHAR NOT NULL,
        status        VARCHAR NOT NULL CHECK (status IN ('committed', 'quarantined', 'failed')),
        error         VARCHAR
    )
    """,
    """
    CREATE TABLE runs (
        run_id      VARCHAR PRIMARY KEY,
        kind        VARCHAR NOT NULL,
        started_at  TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        status      VARCHAR NOT NULL CHECK (status IN ('running', 'success', 'failed')),
        row_counts  JSON,
        error       VARCHAR,
        as_of       TIMESTAMP  -- replay clock: the run saw only data earlier than this
    )
    """,
    """
    CREATE TABLE forecasts (
        run_id    VARCHAR NOT NULL,
        unique_id VARCHAR NOT NULL,
        ds        TIMESTAMP NOT NULL,
        model     VARCHAR NOT NULL,
        cutoff    TIMESTAMP NOT NULL,
        mean      DOUBLE,
        q05 DOUBLE, q10 DOUBLE, q25 DOUBLE, q50 DOUBLE, q75 DOUBLE, q90 DOUBLE, q95 DOUBLE,
        PRIMARY KEY (unique_id, cutoff, model, ds)
    )
    """,
    """
    CREATE TABLE anomaly_scores (
        run_id    VARCHAR NOT NULL,
        unique_id VARCHAR NOT NULL,
        ds        TIMESTAMP NOT NULL,
        detector  VARCHAR NOT NULL,
        raw_score DOUBLE NOT NULL,
        score     DOUBLE NOT NULL CHECK (score BETWEEN 0 AND 1),
        PRIMARY KEY (unique_id, ds, detector)
    )
    """,
    """
    CREATE TABLE alerts (
        alert_id   VARCHAR PRIMARY KEY,
        run_id     VARCHAR NOT NULL,
        unique_id  VARCHAR NOT NULL,
        domain     VARCHAR NOT NULL,
        region     VARCHAR,
        hazard     VARCHAR NOT NULL,
        level      VARCHAR NOT NULL CHECK (level IN ('blue', 'yellow', 'orange', 'red')),
        status     VARCHAR NOT NULL,
        ds         TIMESTAMP NOT NULL,
        score      DOUBLE,
        evidence   JSON NOT NULL,
        opened_at  TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE judgments (
        judgment_id    VARCHAR PRIMARY KEY,
        alert_id       VARCHAR NOT NULL,
        run_id         VARCHAR NOT NULL,
        writer         VARCHAR NOT NULL,
        model          VARCHAR,
        prompt_version VARCHAR,
        evidence_hash  VARCHAR NOT NULL,
        label          VARCHAR NOT NULL,
        text_en        VARCHAR NOT NULL,
        text_zh        VARCHAR NOT NULL,
        checks         JSON,
        created_at     TIMESTAMP NOT NULL
    )
    """,
    "CREATE SEQUENCE audit_seq START 1",
    """
    CREATE TABLE audit_log (
        audit_id BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
        at_time  TIMESTAMP NOT NULL,
        actor    VARCHAR NOT NULL,
        action   VARCHAR NOT NULL,
        target   VARCHAR,
        detail   JSON
    )
    """,
)

# Version 2: what the scoring cycle needs to be idempotent and to keep its grades, and the
# earthquake catalog as events of its own (the daily series are derived from it).
_V2 = (
    """
    CREATE TABLE risk_grades (
        run_id    VARCHAR NOT NULL,
        unique_id VARCHAR NOT NULL,
        ds        TIMESTAMP NOT NULL,
        level     VARCHAR NOT NULL CHECK (level IN ('none', 'blue', 'yellow', 'orange', 'red')),
        score     DOUBLE NOT NULL,
        evidence  JSON NOT NULL,
        PRIMARY KEY (unique_id, ds)
    )
    """,
    """
    CREATE TABLE series_state (
        unique_id    VARCHAR PRIMARY KEY,
        fingerprint  VARCHAR NOT NULL,
        run_id       VARCHAR NOT NULL,
        processed_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE events (
        source     VARCHAR NOT NULL,
        event_id   VARCHAR NOT NULL,
        time       TIMESTAMP NOT NULL,
        lat        DOUBLE NOT NULL,
        lon        DOUBLE NOT NULL,
        depth_km   DOUBLE,
        magnitude  DOUBLE NOT NULL,
        batch_id   VARCHAR NOT NULL,
        PRIMARY KEY (source, event_id)
    )
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "base tables: series, observations, ledger, runs, results, audit", _V1),
    Migration(2, "risk grades, per-series cycle state, earthquake events", _V2),
)

CURRENT_VERSION = max(m.version for m in MIGRATIONS)
