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

# Version 6 (alerts that go out right, issue 6): who changed an alert and why, the review
# gate's state, silences, analyst feedback, the publication outbox, CAP messages, recipients
# and their deliveries, data-gap notices, and the operator switches of the LLM path.
_V6 = (
    # pending = awaits a duty officer; released = may go out; rejected = held back by a
    # duty officer; suppressed = held by a silence or by stale/gapped data.
    "ALTER TABLE alerts ADD COLUMN release_state VARCHAR DEFAULT 'pending'",
    "ALTER TABLE alerts ADD COLUMN expires_at TIMESTAMP",
    # why a human should look (e.g. the LLM judgment failed its checks), NULL when none
    "ALTER TABLE alerts ADD COLUMN review_flag VARCHAR",
    "CREATE SEQUENCE transition_seq START 1",
    """
    CREATE TABLE alert_transitions (
        transition_id BIGINT PRIMARY KEY DEFAULT nextval('transition_seq'),
        alert_id      VARCHAR NOT NULL,
        at_time       TIMESTAMP NOT NULL,
        action        VARCHAR NOT NULL,
        actor         VARCHAR NOT NULL,  -- a user name, or the job that decided (cycle, relay)
        from_status   VARCHAR,
        to_status     VARCHAR,
        from_level    VARCHAR,
        to_level      VARCHAR,
        from_release  VARCHAR,
        to_release    VARCHAR,
        reason        VARCHAR,
        run_id        VARCHAR
    )
    """,
    """
    CREATE TABLE silences (
        silence_id VARCHAR PRIMARY KEY,
        alert_id   VARCHAR,            -- the alert it was created from (may be NULL)
        hazard     VARCHAR NOT NULL,   -- matcher: hazard + region (NULL region = any)
        region     VARCHAR,
        owner      VARCHAR NOT NULL,
        reason     VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        until      TIMESTAMP NOT NULL,
        lifted_at  TIMESTAMP,
        lifted_by  VARCHAR
    )
    """,
    "CREATE SEQUENCE feedback_seq START 1",
    """
    CREATE TABLE feedback (
        feedback_id BIGINT PRIMARY KEY DEFAULT nextval('feedback_seq'),
        alert_id    VARCHAR NOT NULL,
        unique_id   VARCHAR NOT NULL,  -- snapshot of the alert when judged, so thresholds
        level       VARCHAR NOT NULL,  -- can be re-evaluated after the alert moves on
        score       DOUBLE,
        user_name   VARCHAR NOT NULL,
        at_time     TIMESTAMP NOT NULL,
        verdict     VARCHAR NOT NULL CHECK (verdict IN ('confirmed', 'false_alarm')),
        note        VARCHAR
    )
    """,
    """
    CREATE TABLE outbox (
        event_id     VARCHAR PRIMARY KEY,
        alert_id     VARCHAR NOT NULL,
        msg_type     VARCHAR NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
        snapshot     JSON NOT NULL,     -- the alert row as released
        created_at   TIMESTAMP NOT NULL,
        created_by   VARCHAR NOT NULL,
        reason       VARCHAR,
        identifier   VARCHAR,           -- the CAP identifier once rendered
        published_at TIMESTAMP
    )
    """,
    """
    CREATE TABLE cap_messages (
        identifier  VARCHAR PRIMARY KEY,
        event_id    VARCHAR NOT NULL UNIQUE,
        alert_id    VARCHAR NOT NULL,
        msg_type    VARCHAR NOT NULL,
        status      VARCHAR NOT NULL CHECK (status IN ('Actual', 'Exercise', 'Test')),
        sent        VARCHAR NOT NULL,   -- CAP dateTime with offset, as written
        refs        VARCHAR,            -- CAP references (earlier messages), space separated
        level       VARCHAR NOT NULL,
        hazard      VARCHAR NOT NULL,
        region      VARCHAR,
        xml         VARCHAR NOT NULL,
        valid       BOOLEAN NOT NULL,
        created_at  TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE recipients (
        recipient_id VARCHAR PRIMARY KEY,
        name         VARCHAR NOT NULL,
        channel      VARCHAR NOT NULL CHECK (channel IN ('folder', 'webhook')),
        target       VARCHAR NOT NULL,
        regions      JSON NOT NULL,     -- [] = every region
        hazards      JSON NOT NULL,     -- [] = every hazard
        indicators   JSON NOT NULL,     -- unique_id glob patterns; [] = every series
        min_level    VARCHAR NOT NULL CHECK (min_level IN ('blue', 'yellow', 'orange', 'red')),
        active       BOOLEAN NOT NULL DEFAULT true,
        created_at   TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE deliveries (
        delivery_id     VARCHAR PRIMARY KEY,
        identifier      VARCHAR NOT NULL,
        recipient_id    VARCHAR NOT NULL,
        state           VARCHAR NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMP NOT NULL,
        last_error      VARCHAR,
        created_at      TIMESTAMP NOT NULL,
        finished_at     TIMESTAMP,
        UNIQUE (identifier, recipient_id)
    )
    """,
    """
    CREATE TABLE data_gap_notices (
        notice_id   VARCHAR PRIMARY KEY,
        unique_id   VARCHAR NOT NULL,
        hazard      VARCHAR NOT NULL,
        region      VARCHAR,
        kind        VARCHAR NOT NULL CHECK (kind IN ('stale', 'gap')),
        detail      JSON NOT NULL,
        first_seen  TIMESTAMP NOT NULL,
        last_seen   TIMESTAMP NOT NULL,
        run_id      VARCHAR NOT NULL,
        resolved_at TIMESTAMP
    )
    """,
    """
    CREATE TABLE llm_controls (
        name   VARCHAR PRIMARY KEY,   -- 'path' (on/off), 'revoked:<base_url>', 'key_fingerprint'
        value  JSON NOT NULL,
        set_by VARCHAR NOT NULL,
        set_at TIMESTAMP NOT NULL
    )
    """,
)

# Version 3: ingestion state. A watermark per network source advances in the same transaction
# as the batch it came with; source_status keeps per-source freshness for `ews status`.
_V3 = (
    """
    CREATE TABLE source_watermarks (
        source     VARCHAR PRIMARY KEY,
        watermark  VARCHAR NOT NULL,
        batch_id   VARCHAR,
        updated_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE source_status (
        source          VARCHAR PRIMARY KEY,
        kind            VARCHAR NOT NULL,
        last_attempt_at TIMESTAMP,
        last_success_at TIMESTAMP,
        last_error_at   TIMESTAMP,
        last_error      VARCHAR,
        last_data_time  TIMESTAMP,
        last_batch_id   VARCHAR,
        rows_last       BIGINT
    )
    """,
)

# Version 7 (dashboard, issue 7): which review-inbox actions the warehouse has applied. The
# dashboard queues actions in the control store while the engine holds this file; each is
# applied in one transaction with its row here, so a re-drain never applies an action twice.
_V7 = (
    """
    CREATE TABLE review_inbox_applied (
        action_id  VARCHAR PRIMARY KEY,
        kind       VARCHAR NOT NULL,
        action     VARCHAR NOT NULL,
        alert_id   VARCHAR,
        actor      VARCHAR NOT NULL,
        acted_at   TIMESTAMP NOT NULL,
        applied_at TIMESTAMP NOT NULL,
        outcome    VARCHAR NOT NULL CHECK (outcome IN ('applied', 'refused')),
        message    VARCHAR
    )
    """,
)

# Version 4 (forecasting): vertical-model registry, backtest results per run, per-series model
# selections with their reasons, and threshold exceedance probabilities from forecasts.
_V4 = (
    """
    CREATE TABLE models (
        model_id        VARCHAR PRIMARY KEY,
        kind            VARCHAR NOT NULL,
        base            VARCHAR NOT NULL,
        domain          VARCHAR NOT NULL,
        training_series JSON NOT NULL,
        batch_ids       JSON NOT NULL,
        data_hash       VARCHAR NOT NULL,
        steps           INTEGER NOT NULL,
        validation      JSON NOT NULL,
        path            VARCHAR NOT NULL,
        created_at      TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE backtest_results (
        run_id      VARCHAR NOT NULL,
        unique_id   VARCHAR NOT NULL,
        model       VARCHAR NOT NULL,
        horizon     INTEGER NOT NULL,
        windows     INTEGER NOT NULL,
        points      INTEGER NOT NULL,
        mase        DOUBLE,
        smape       DOUBLE,
        wql         DOUBLE,
        coverage_80 DOUBLE,
        coverage_90 DOUBLE,
        members     JSON,
        last_cutoff TIMESTAMP,
        created_at  TIMESTAMP NOT NULL,
        PRIMARY KEY (run_id, unique_id, model)
    )
    """,
    """
    CREATE TABLE model_selections (
        run_id          VARCHAR NOT NULL,
        unique_id       VARCHAR NOT NULL,
        model           VARCHAR NOT NULL,
        backtest_run_id VARCHAR,
        criterion       VARCHAR NOT NULL,
        score           DOUBLE,
        runner_up       VARCHAR,
        runner_up_score DOUBLE,
        baseline_score  DOUBLE,
        windows         INTEGER NOT NULL,
        members         JSON,
        reason          VARCHAR NOT NULL,
        decided_at      TIMESTAMP NOT NULL,
        PRIMARY KEY (run_id, unique_id)
    )
    """,
    """
    CREATE TABLE exceedance (
        run_id          VARCHAR NOT NULL,
        unique_id       VARCHAR NOT NULL,
        cutoff          TIMESTAMP NOT NULL,
        ds              TIMESTAMP NOT NULL,
        threshold       VARCHAR NOT NULL,
        model           VARCHAR NOT NULL,
        threshold_value DOUBLE NOT NULL,
        direction       VARCHAR NOT NULL CHECK (direction IN ('above', 'below')),
        p_step_exceed   DOUBLE NOT NULL CHECK (p_step_exceed BETWEEN 0 AND 1),
        p_path_cross    DOUBLE NOT NULL CHECK (p_path_cross BETWEEN 0 AND 1),
        PRIMARY KEY (unique_id, cutoff, threshold, ds)
    )
    """,
)

# Version 8 (issue 14): each series' physical bounds (null = unbounded), from its catalogue
# entry or parser defaults; forecasts of a bounded series stay inside them. Rows of an older
# file keep their values and get null bounds until their source is ingested again.
_V8 = (
    "ALTER TABLE series ADD COLUMN lower_bound DOUBLE",
    "ALTER TABLE series ADD COLUMN upper_bound DOUBLE",
)

# Version 9 (issue 22): free-form facts a source states about a series (a JSON object as
# text, e.g. the fitted rates and seasonal terms in a SOPAC .neu header); null for rows of an
# older file and for sources that state none.
_V9 = ("ALTER TABLE series ADD COLUMN attributes VARCHAR",)

# Version 10 (issue 22): when a series' values become known, an ISO 8601 duration after each
# value's period ends (core.availability). Rows of an older file keep their values and get
# null, which reads as the default of their variable until their source is ingested again.
_V10 = ("ALTER TABLE series ADD COLUMN available_after VARCHAR",)

# Version 11 (issue 20): a run row names the process that holds it (pid, host, the process's
# start time where the system tells it), so the next writer can mark the row of a process
# that died `aborted`. DuckDB cannot alter a CHECK constraint: the table is created anew.
_V11 = (
    "ALTER TABLE runs RENAME TO runs_v8",
    """
    CREATE TABLE runs (
        run_id        VARCHAR PRIMARY KEY,
        kind          VARCHAR NOT NULL,
        started_at    TIMESTAMP NOT NULL,
        finished_at   TIMESTAMP,
        status        VARCHAR NOT NULL CHECK (status IN ('running', 'success', 'failed', 'aborted')),
        row_counts    JSON,
        error         VARCHAR,
        as_of         TIMESTAMP,
        pid           INTEGER,
        host          VARCHAR,
        process_start VARCHAR
    )
    """,
    "INSERT INTO runs (run_id, kind, started_at, finished_at, status, row_counts, error, as_of) "
    "SELECT run_id, kind, started_at, finished_at, status, row_counts, error, as_of FROM runs_v8",
    "DROP TABLE runs_v8",
    # Before v11 every run held the writer lock from start to finish, and this migration holds
    # it now: a row still `running` belongs to a process that died.
    "UPDATE runs SET status = 'aborted', finished_at = coalesce(finished_at, now()::TIMESTAMP), "
    "error = 'aborted: its process ended without finishing the run (found when the schema moved to version 11)' "
    "WHERE status = 'running'",
)

# Version 12 (issue 21): a selection states what it was made for (``basis``: the series'
# frequency and the candidates, default model, criterion and margin of the settings), so a
# cycle keeps it for ``[backtest] reselect_every`` only while that still holds.
_V12 = ("ALTER TABLE model_selections ADD COLUMN basis VARCHAR",)

# Version 13 (issue 16): the vetted catalogue. Published text (the judgment header, the CAP
# headline, areaDesc and description) quotes a series' name, region and unit only from here:
# the display values an operator approved (``ews series approve``), or the engine's own
# catalogue wrote (the bundled data, the market composite). Ingest never writes this table; a
# null field is not vetted. ``by_operator``: a person approved the row (the engine's own
# catalogue never replaces such a row).
_V13 = (
    """
    CREATE TABLE vetted_series (
        unique_id   VARCHAR PRIMARY KEY,
        name        VARCHAR,
        region      VARCHAR,
        unit        VARCHAR,
        vetted_by   VARCHAR NOT NULL,
        by_operator BOOLEAN NOT NULL,
        vetted_at   TIMESTAMP NOT NULL
    )
    """,
)

# Version 14 (issue 21): the ETS form AutoETS chose when the selection was made ("ANAN/7": error, trend,
# season, damped, then the season length), so a kept AutoETS selection refits that form only.
_V14 = ("ALTER TABLE model_selections ADD COLUMN ets_form VARCHAR",)

# Version 15 (issue 21): the fitted state of the cycle's subsequence detectors, so a series
# scored before is scored from its stored fit instead of refitting over its whole history.
# One row per series and subseq_* detector: the fit of its last refit edge (``edge``: index
# from the series' first observation; ``edge_ds``: that observation's timestamp, checked
# before the fit is used), the ``basis`` it was made on (method, window, warm-up,
# ``[scoring] refit_every``, seed) and the fit as ``.npz`` bytes (numpy arrays, no pickle;
# null for methods refitted when used).
_V15 = (
    """
    CREATE TABLE detector_state (
        unique_id VARCHAR NOT NULL,
        detector  VARCHAR NOT NULL,
        basis     VARCHAR NOT NULL,
        edge      BIGINT NOT NULL,
        edge_ds   TIMESTAMP NOT NULL,
        fit       BLOB,
        run_id    VARCHAR NOT NULL,
        PRIMARY KEY (unique_id, detector)
    )
    """,
)

# Version 16 (issue 21, per-chunk commits): what the cycle's levels step parks between its
# chunks, committed with each chunk: the rarity grades above the cap waiting for
# corroboration (``grade_stash``: the grade, its rarity rank, its rank after rule 2, the steps
# evidence, the run that parked it) and the witnesses of corroboration (``grade_witnesses``).
# Empty between cycles; rows left by an interrupted cycle are finished by the next one.
_V16 = (
    """
    CREATE TABLE grade_stash (
        unique_id VARCHAR NOT NULL,
        ds        TIMESTAMP NOT NULL,
        level     VARCHAR,
        score     DOUBLE,
        evidence  VARCHAR,
        rank      BIGINT,
        bound     BIGINT,
        steps     VARCHAR,
        run_id    VARCHAR NOT NULL,
        PRIMARY KEY (unique_id, ds)
    )
    """,
    """
    CREATE TABLE grade_witnesses (
        unique_id VARCHAR NOT NULL,
        ds        TIMESTAMP NOT NULL,
        bound     BIGINT NOT NULL,
        PRIMARY KEY (unique_id, ds)
    )
    """,
)

# Version 17 (issue 17, calibrated intervals): each backtest row keeps the interval factors
# learned for its model on the run's out-of-sample windows (JSON: per quantile column the factor
# of its distance from the median, the points and the group they were learned on; null = too
# few points), and a selection the factors its forecasts were calibrated with (null = none).
_V17 = (
    "ALTER TABLE backtest_results ADD COLUMN interval_scales VARCHAR",
    "ALTER TABLE model_selections ADD COLUMN interval_scales VARCHAR",
)

# Version 18 (issue 21, filtering forward): each series' last fit of a model the cycle keeps
# between refits (today AutoETS): the fit as the model's own text (forecasting.forward.ETSState:
# form, parameters, window start and end, bound map) and when it was fitted (the cycle's clock),
# read to filter the fit forward over new points until ``[forecast] refit_every`` has passed.
_V18 = (
    """
    CREATE TABLE model_states (
        unique_id VARCHAR NOT NULL,
        model     VARCHAR NOT NULL,
        state     VARCHAR NOT NULL,
        fitted_at TIMESTAMP NOT NULL,
        run_id    VARCHAR NOT NULL,
        PRIMARY KEY (unique_id, model)
    )
    """,
)

# Version 19 (issue 17, selection rules across series): each backtest row keeps its scores per
# window (JSON list: window number, cutoff, points, the sums that pool them and the window's
# MASE, sMAPE, WQL and coverage), so ``[backtest] choose = "frequency"`` can pool a frequency's
# series window by window and ``"auto"`` can hold later windows out. Null for rows stored
# before: such a series keeps the per-series rule until its next ``ews backtest``.
_V19 = ("ALTER TABLE backtest_results ADD COLUMN window_scores VARCHAR",)

# Version 20 (issue 21, bounded memory): anomaly scores and risk grades without a primary key.
# DuckDB keeps a primary key's index (an ART) in memory and cannot spill it: the scores' index
# grew by about 0.4 MB per ten-year daily series (127 MB at 300 series, so more than a gigabyte
# at 3,000) and made each chunk's write check 1.5 million keys. The keys ((unique_id, ds,
# detector) and (unique_id, ds)) are kept by the one writer (``Warehouse._upsert_rows``: the
# changed rows are deleted, then inserted, in the chunk's transaction); the rows are copied in
# key order, so DuckDB's min/max row-group statistics find a series' rows.
_V20 = (
    "ALTER TABLE anomaly_scores RENAME TO anomaly_scores_v19",
    """
    CREATE TABLE anomaly_scores (
        run_id    VARCHAR NOT NULL,
        unique_id VARCHAR NOT NULL,
        ds        TIMESTAMP NOT NULL,
        detector  VARCHAR NOT NULL,
        raw_score DOUBLE NOT NULL,
        score     DOUBLE NOT NULL CHECK (score BETWEEN 0 AND 1)
    )
    """,
    "INSERT INTO anomaly_scores SELECT run_id, unique_id, ds, detector, raw_score, score "
    "FROM anomaly_scores_v19 ORDER BY unique_id, ds, detector",
    "DROP TABLE anomaly_scores_v19",
    "ALTER TABLE risk_grades RENAME TO risk_grades_v19",
    """
    CREATE TABLE risk_grades (
        run_id    VARCHAR NOT NULL,
        unique_id VARCHAR NOT NULL,
        ds        TIMESTAMP NOT NULL,
        level     VARCHAR NOT NULL CHECK (level IN ('none', 'blue', 'yellow', 'orange', 'red')),
        score     DOUBLE NOT NULL,
        evidence  JSON NOT NULL
    )
    """,
    "INSERT INTO risk_grades SELECT run_id, unique_id, ds, level, score, evidence "
    "FROM risk_grades_v19 ORDER BY unique_id, ds",
    "DROP TABLE risk_grades_v19",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "base tables: series, observations, ledger, runs, results, audit", _V1),
    Migration(2, "risk grades, per-series cycle state, earthquake events", _V2),
    Migration(3, "ingestion: source watermarks and per-source freshness", _V3),
    Migration(4, "forecasting: model registry, backtests, selections, exceedance", _V4),
    Migration(6, "alert review, silences, feedback, outbox, CAP, delivery, data gaps, LLM switches", _V6),
    Migration(7, "dashboard: review-inbox actions applied to the warehouse", _V7),
    Migration(8, "series: physical lower and upper bounds", _V8),
    Migration(9, "series: free-form attributes (JSON) stated by the source", _V9),
    Migration(10, "series: available_after, when a value becomes known (as-of replays)", _V10),
    Migration(11, "runs: the holding process (pid, host) and the aborted status", _V11),
    Migration(12, "model selections: the basis they were made on (kept between reselections)", _V12),
    Migration(13, "the vetted catalogue: display name, region and unit approved for publication", _V13),
    Migration(14, "model selections: the AutoETS form chosen (refitted alone while kept)", _V14),
    Migration(15, "detector state: the stored fits of the cycle's subsequence detectors", _V15),
    Migration(16, "the levels step's parked grades and witnesses, committed per chunk", _V16),
    Migration(17, "interval calibration factors of backtest rows and selections", _V17),
    Migration(18, "model states: each series' last AutoETS fit, filtered forward between refits", _V18),
    Migration(19, "backtest results: scores per window (pooled by the frequency selection rules)", _V19),
    Migration(20, "anomaly scores and risk grades without a key index (kept by the writer)", _V20),
)

CURRENT_VERSION = max(m.version for m in MIGRATIONS)
