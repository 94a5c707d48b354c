"""The cap on statistical-rarity grades and its lifting by an independent second series.

Issue 14: a series without a hazard model keeps its quantile (rarity) grade, but a rare value
alone is not a hazard, so the grade is capped at ``cap`` (``[hazards] rarity_cap``, default
yellow) unless a second, *independent* series in the *same region* agrees. This is the one
implementation of that rule: the cycle's levels step (:mod:`pipelines.hazard_step`) and the
evaluation replay (``ews evaluate events``) both call :func:`cap_rarity_levels` (no
database, no clock):

- *same region*: equal, non-null ``region`` text in the series metadata (series without a
  region are never corroborated);
- *independent*: another ``unique_id`` from another ``source``; or from the same source, of
  another ``variable``, except at the same known site (equal, non-null ``lat`` and ``lon``):
  that is one instrument (a GNSS station's north, east and up; the count, magnitude and
  energy series of one catalog box), one witness, not two. Two indicators of one provider
  without a site (two FRED series of one country) are independent, except in the market
  domain: market series (``domain`` ``market`` in the metadata) are correlated inputs of one
  composite stress index (and its sub-indices), so one market series never lifts another
  market series' cap; a market grade can still be lifted by a series of another domain in
  its region (and can lift one). Series without a domain are not market series;
- *agrees*: at some point of the same period, with a value known no later than the graded
  one (a value is known when its own period ends: a monthly mean a month after its stamp; so
  a replay over history sees no more than the cycle did), the coarser of the two series' periods (the
  hour, day, week or month of the metadata's ``frequency``: ``h``, ``D``/``B``,
  ``W-FRI``/``W-SUN``, ``MS``; unknown or missing = the day), the other series' own
  rarity level (before any cap) reaches at least the smaller of the grade's uncapped level
  and ``floor`` (``[hazards] corroboration_level``, default orange).

Every row of ``grades`` is a witness; only the rows marked by ``subject`` (default: all) are
capped. The output keeps every input row and adds the evidence fields of the shared
contract: ``uncapped_level`` (the grade before the cap), ``capped_at`` (the cap's label when
the cap lowered the level, else null) and ``corroborated_by`` (the sorted ``unique_id`` list
that lifted the cap, at most :data:`MATES_LISTED` of them, the first by id; empty otherwise).
``level`` is the level after the rule.
"""

from __future__ import annotations

import polars as pl

from core.errors import FrameError
from core.vocabulary import LEVEL_RANK, Domain, Level

__all__ = ["MATES_LISTED", "PERIODS", "cap_rarity_levels"]

#: Series frequency -> its own period: a value is known when that period ends (a monthly mean
#: stamped on the 1st a month later, a daily or weekly value (stamped on its last day) the
#: next day).
_KNOWN_AFTER = {"MS": "1mo", "h": "1h"}

#: Series frequency -> (coarseness rank, the period agreement is judged in).
PERIODS: dict[str, tuple[int, str]] = {
    "h": (0, "1h"),
    "D": (1, "1d"),
    "B": (1, "1d"),
    "W-FRI": (2, "1w"),
    "W-SUN": (2, "1w"),
    "MS": (3, "1mo"),
}
_DEFAULT_PERIOD = PERIODS["D"]
_EVERY_OF_RANK = {rank: every for rank, every in PERIODS.values()}
#: At most this many corroborating series are listed per grade (the first by ``unique_id``):
#: one lifts the cap; a region where hundreds of series are rare on the same day would
#: otherwise carry hundreds of ids in every grade's evidence.
MATES_LISTED = 20
#: Candidate pairs (graded row x witness row of one region and period) joined at once.
_PAIRS_PER_BATCH = 2_000_000


def _period_batches(graded: pl.DataFrame, seen: pl.DataFrame) -> list[pl.DataFrame]:
    """The ``(region, _period)`` keys both sides share, in batches of at most
    :data:`_PAIRS_PER_BATCH` candidate pairs (a key above it is a batch of its own)."""
    pairs = (
        graded.group_by("region", "_period")
        .len("n")
        .join(seen.group_by(pl.col("region_m").alias("region"), "_period").len("m"), on=["region", "_period"])
        .sort("region", "_period")
        .with_columns(
            ((pl.col("n").cast(pl.Int64) * pl.col("m")).cum_sum() - 1).floordiv(_PAIRS_PER_BATCH).alias("_batch")
        )
    )
    return [part.select("region", "_period") for part in pairs.partition_by("_batch", maintain_order=True)]


def cap_rarity_levels(
    grades: pl.DataFrame,
    meta: pl.DataFrame,
    *,
    cap: Level = Level.YELLOW,
    floor: Level = Level.ORANGE,
    subject: str | None = None,
) -> pl.DataFrame:
    """Cap rarity grades at ``cap`` unless an independent series in the same region agrees.

    ``grades``: ``unique_id, ds, level`` (rarity level labels such as ``"red"``; other columns
    are kept); ``subject``: name of a boolean column of ``grades`` marking the rows the cap
    applies to (the others, e.g. series whose level a hazard model sets, only witness with
    their rarity level). ``meta``: ``unique_id, region`` and optionally ``domain, source,
    variable, lat, lon, frequency`` (missing = null; rules in the module docstring). Returns ``grades``
    with ``level`` after the rule and ``uncapped_level``, ``capped_at``, ``corroborated_by``.
    """
    missing = [c for c in ("unique_id", "ds", "level") if c not in grades.columns]
    if missing:
        raise FrameError(f"grades lack column(s) {missing}; have {grades.columns}", fix="pass unique_id, ds, level")
    if "unique_id" not in meta.columns or "region" not in meta.columns:
        raise FrameError(f"meta needs unique_id and region, got {meta.columns}", fix="pass the series metadata")
    if grades.get_column("level").dtype != pl.Utf8:
        raise FrameError("grades' level must hold labels such as 'orange'", fix="pass Level.label values")
    unknown = set(grades.get_column("level").drop_nulls().unique().to_list()) - set(LEVEL_RANK)
    if unknown:
        raise FrameError(f"unknown level label(s) {sorted(unknown)}", fix=f"use one of {sorted(LEVEL_RANK)}")
    if subject is not None and subject not in grades.columns:
        raise FrameError(f"grades lack the subject column {subject!r}", fix="name a boolean column of grades")
    cap, floor = Level(cap), Level(floor)

    def col(name: str, dtype: type[pl.DataType]) -> pl.Expr:
        return (pl.col(name) if name in meta.columns else pl.lit(None)).cast(dtype).alias(name)

    info = (
        meta.select(
            pl.col("unique_id").cast(pl.Utf8),
            col("region", pl.Utf8),
            (col("domain", pl.Utf8) == Domain.MARKET.value).fill_null(False).alias("_market"),
            col("source", pl.Utf8).fill_null(""),
            col("variable", pl.Utf8).fill_null(""),
            col("lat", pl.Float64),
            col("lon", pl.Float64),
            col("frequency", pl.Utf8),
        )
        .unique("unique_id", keep="first")
        .with_columns(
            pl.col("frequency")
            .replace_strict({k: v[0] for k, v in PERIODS.items()}, default=_DEFAULT_PERIOD[0], return_dtype=pl.Int64)
            .alias("_coarse"),
            pl.col("frequency")
            .replace_strict({k: v[1] for k, v in PERIODS.items()}, default=_DEFAULT_PERIOD[1], return_dtype=pl.Utf8)
            .alias("_every"),
            pl.col("frequency").replace_strict(_KNOWN_AFTER, default="1d", return_dtype=pl.Utf8).alias("_lag"),
        )
        .drop("frequency")
    )
    frame = grades.with_row_index("_row").with_columns(
        pl.col("level").fill_null(Level.NONE.label).replace_strict(LEVEL_RANK, return_dtype=pl.Int64).alias("_rank"),
        (pl.col(subject).fill_null(False) if subject is not None else pl.lit(True)).alias("_subject"),
    )
    above = (
        frame.filter(pl.col("_subject") & (pl.col("_rank") > int(cap)))
        .select("_row", "unique_id", "ds", "_rank")
        .join(info, on="unique_id")
        .filter(pl.col("region").is_not_null())
    )
    # Only a witness row at or above the lowest rank that can agree matters (the smaller of a
    # capped grade's rank, above the cap, and the floor). Joining the graded rows with those
    # witness rows by region and period, rather than pairing every graded row with every
    # series of its region first, keeps the work and memory to the candidate agreements
    # (issue 21: the pairing grew with rows x series of the region, 12 GB at 400 series).
    lowest = min(int(cap) + 1, int(floor))
    witnesses = (
        frame.filter(pl.col("_rank") >= lowest)
        .select(
            pl.col("unique_id").alias("unique_id_m"), pl.col("ds").alias("ds_m"), pl.col("_rank").alias("_mate_rank")
        )
        .join(info.select(pl.all().name.suffix("_m")), on="unique_id_m")
        .filter(pl.col("region_m").is_not_null())
    )
    same_site = pl.col("lat").is_not_null() & (pl.col("lat") == pl.col("lat_m")) & (pl.col("lon") == pl.col("lon_m"))
    found = [pl.DataFrame(schema={"_row": pl.UInt32, "corroborated_by": pl.List(pl.Utf8)})]
    mine_ranks = above.get_column("_coarse").unique().to_list()
    their_ranks = witnesses.get_column("_coarse_m").unique().to_list()
    for mine in sorted(mine_ranks):
        for theirs in sorted(their_ranks):
            every = _EVERY_OF_RANK[max(mine, theirs)]  # agreement: in the coarser of the two periods
            graded = above.filter(pl.col("_coarse") == mine).with_columns(
                pl.col("ds").dt.truncate(every).alias("_period")
            )
            seen = witnesses.filter(pl.col("_coarse_m") == theirs).with_columns(
                pl.col("ds_m").dt.truncate(every).alias("_period")
            )
            # The pairs of a (region, period) grow with the square of the series that are rare
            # on the same days (1,000 synthetic series of one region: 11 GB in this join), so
            # the join runs over batches of periods of at most _PAIRS_PER_BATCH candidate pairs
            # (a single period above it is one batch) and keeps the first mates of each row.
            for keys in _period_batches(graded, seen):
                part_graded = graded.join(keys, on=["region", "_period"], how="semi")
                part_seen = seen.join(keys.rename({"region": "region_m"}), on=["region_m", "_period"], how="semi")
                # a witness counts only when its value was known no later than the graded one (a
                # period's value is known when its period ends): a replay over history must not let
                # data published later lift a grade, e.g. a monthly mean lift a day inside its month
                agreed = (
                    part_graded.join(part_seen, left_on=["region", "_period"], right_on=["region_m", "_period"])
                    .filter(
                        (pl.col("unique_id") != pl.col("unique_id_m"))
                        & ~(pl.col("_market") & pl.col("_market_m"))  # one composite's inputs: one witness
                        & (
                            (pl.col("source") != pl.col("source_m"))
                            | (~same_site.fill_null(False) & (pl.col("variable") != pl.col("variable_m")))
                        )
                    )
                    .filter(
                        (
                            pl.col("ds_m").dt.truncate(pl.col("_lag_m")).dt.offset_by(pl.col("_lag_m"))
                            <= pl.col("ds").dt.truncate(pl.col("_lag")).dt.offset_by(pl.col("_lag"))
                        )
                        & (pl.col("_mate_rank") >= pl.min_horizontal("_rank", pl.lit(int(floor))))
                    )
                )
                found.append(
                    agreed.group_by("_row").agg(
                        pl.col("unique_id_m").unique().sort().head(MATES_LISTED).alias("corroborated_by")
                    )
                )
                del agreed, part_graded, part_seen
    lifted = (
        pl.concat(found)
        .explode("corroborated_by")
        .group_by("_row")
        .agg(pl.col("corroborated_by").unique().sort().head(MATES_LISTED))
    )
    out = frame.join(lifted, on="_row", how="left").sort("_row")
    lowered = pl.col("_subject") & (pl.col("_rank") > int(cap)) & pl.col("corroborated_by").is_null()
    return out.with_columns(
        pl.col("level").alias("uncapped_level"),
        pl.when(lowered).then(pl.lit(cap.label)).otherwise(pl.col("level")).alias("level"),
        pl.when(lowered).then(pl.lit(cap.label)).otherwise(pl.lit(None, dtype=pl.Utf8)).alias("capped_at"),
        pl.when(pl.col("_subject"))
        .then(pl.col("corroborated_by").fill_null(pl.lit([], dtype=pl.List(pl.Utf8))))
        .otherwise(pl.lit([], dtype=pl.List(pl.Utf8)))
        .alias("corroborated_by"),
    ).select(*grades.columns, "uncapped_level", "capped_at", "corroborated_by")
