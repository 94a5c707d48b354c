"""Batches: quarantine rules, idempotence in any order (hypothesis), landing copies, the ledger,
format detection from the CLI, and one writer at a time. Real bundled files throughout.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from core.settings import Settings, load_settings
from ingest.batches import ingest_file
from pipelines.cli.main import main
from tests.sql import sql_rows
from warehouse import Warehouse
from warehouse.ingestion import read_batches
from warehouse.series import read_observations, read_series_meta
from warehouse.status import count_rows

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
TESTDATA = ROOT / "tests" / "data"
UNRATE = DATA / "market" / "fred_UNRATE.csv"
CHOPTANK = DATA / "hydro" / "usgs_01491000_choptank_daily_flow_cms.txt"
EASTASIA = DATA / "seismic" / "usgs_comcat_eastasia_m4_2018_2023.csv"
NOW = dt.datetime(2026, 1, 15)


def _settings(home: Path) -> Settings:
    return load_settings(home, environ={})


def _digest(wh: Warehouse, table: str = "observations") -> tuple:
    columns = {
        "observations": "unique_id, ds, y",
        "events": "source, event_id, time, lat, lon, magnitude",
        "series": "unique_id, domain, unit, frequency",
    }[table]
    return tuple(sql_rows(wh, f"SELECT count(*), coalesce(bit_xor(hash({columns})), 0) FROM {table}")[0])


def _fred_opts(**extra: object) -> dict[str, object]:
    return {"unique_id": "unrate", "frequency": "MS", "unit": "percent", "variable": "unemployment_rate", **extra}


# --- quarantine ---------------------------------------------------------------------------


def test_future_timestamps_are_quarantined_with_nothing_committed(tmp_path) -> None:
    settings = _settings(tmp_path)
    with Warehouse.open(settings.warehouse_path) as wh:
        result = ingest_file(wh, settings, UNRATE, "fred_csv", options=_fred_opts(), now=dt.datetime(2020, 1, 1))
        assert result.status == "quarantined"
        assert (
            "future timestamps: 69 observation(s) after 2020-01-02 12:00 UTC (first unrate at 2020-02-01"
            in result.error
        )
        assert count_rows(wh, "observations") == 0 and count_rows(wh, "series") == 0
        assert (tmp_path / "raw" / result.batch_id / UNRATE.name).read_bytes() == UNRATE.read_bytes()
        ledger = read_batches(wh).row(0, named=True)
        assert ledger["status"] == "quarantined" and ledger["checksum"] and ledger["row_count"] is None


def test_impossible_values_are_quarantined_and_earlier_data_is_intact(tmp_path) -> None:
    settings = _settings(tmp_path)
    lines = CHOPTANK.read_text().splitlines()
    broken = tmp_path / "choptank_spike.txt"
    lines[100] = lines[100].split("\t")[0] + "\t987654"  # m3/s: beyond any river on Earth
    broken.write_text("\n".join(lines) + "\n")
    with Warehouse.open(settings.warehouse_path) as wh:
        assert ingest_file(wh, settings, UNRATE, "fred_csv", options=_fred_opts(), now=NOW).status == "committed"
        before = _digest(wh)
        result = ingest_file(wh, settings, broken, "usgs_daily_flow", options={"site_no": "01491000"}, now=NOW)
        assert result.status == "quarantined"
        assert (
            "impossible values: 1 value(s) of usgs_01491000_discharge (discharge) outside 0..400000, first 987654"
            in result.error
        )
        assert _digest(wh) == before


def test_wrong_units_are_quarantined_by_declared_unit_and_by_scale(tmp_path) -> None:
    settings = _settings(tmp_path)
    in_cfs = tmp_path / "choptank_cfs.txt"
    rows = [line.split("\t") for line in CHOPTANK.read_text().splitlines()]
    in_cfs.write_text(
        "\n".join(["\t".join(rows[0])] + [f"{d}\t{float(v) / 0.0283168466:.2f}" for d, v in rows[1:400]]) + "\n"
    )
    with Warehouse.open(settings.warehouse_path) as wh:
        assert (
            ingest_file(wh, settings, CHOPTANK, "usgs_daily_flow", options={"site_no": "01491000"}, now=NOW).status
            == "committed"
        )
        before = _digest(wh)
        scaled = ingest_file(wh, settings, in_cfs, "usgs_daily_flow", options={"site_no": "01491000"}, now=NOW)
        assert scaled.status == "quarantined"
        assert "wrong units: usgs_01491000_discharge values have median" in scaled.error and "(39x)" in scaled.error
        assert ingest_file(wh, settings, UNRATE, "fred_csv", options=_fred_opts(), now=NOW).status == "committed"
        relabelled = ingest_file(wh, settings, UNRATE, "fred_csv", options=_fred_opts(unit="ratio"), now=NOW)
        assert relabelled.status == "quarantined"
        assert "wrong units: unrate is stored in 'percent' but the batch says 'ratio'" in relabelled.error
        assert _digest(wh) != before and read_series_meta(wh, ["unrate"]).get_column("unit").item() == "percent"
        statuses = read_batches(wh).get_column("status").to_list()
        assert statuses.count("quarantined") == 2 and statuses.count("committed") == 2


def test_unparsable_file_is_quarantined_and_the_same_file_loads_twice_as_once(tmp_path) -> None:
    settings = _settings(tmp_path)
    broken = tmp_path / "unrate_broken.csv"
    broken.write_text(UNRATE.read_text().replace("1980-06-01,7.6", "1980-06-01,7.6%"))
    with Warehouse.open(settings.warehouse_path) as wh:
        bad = ingest_file(wh, settings, broken, "fred_csv", options=_fred_opts(), now=NOW)
        assert bad.status == "quarantined" and "line 7, column 'value'" in bad.error and "'7.6%'" in bad.error
        first = ingest_file(wh, settings, UNRATE, "fred_csv", options=_fred_opts(), now=NOW)
        assert (first.status, first.rows, first.rows_changed) == ("committed", 550, 550)
        assert ingest_file(wh, settings, UNRATE, "fred_csv", options=_fred_opts(), now=NOW).status == "skipped"
        assert count_rows(wh, "observations") == 550 and count_rows(wh, "ingest_batches") == 2


# --- nothing doubled, in any order (property test) -----------------------------------------


def _unrate_rows() -> list[str]:
    return [line for line in UNRATE.read_text().splitlines()[1:] if line.split(",")[1]]


@st.composite
def _windows(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Overlapping windows over the rows, an ingest order with repeats, and rows repeated inside windows."""
    n = len(_unrate_rows())
    cuts = sorted(draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=4, unique=True)))
    bounds = [0, *cuts, n]
    windows = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        overlap = draw(st.integers(0, 12))
        windows.append((max(0, a - overlap), b))
    order = draw(st.permutations(range(len(windows))))
    repeats = draw(st.lists(st.sampled_from(range(len(windows))), max_size=3))
    doubled = draw(st.lists(st.integers(0, n - 1), max_size=5))
    return windows, [*order, *repeats], doubled


@hyp_settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=_windows())
def test_windows_in_any_order_with_repeats_and_late_rows_give_the_same_warehouse(tmp_path_factory, plan) -> None:
    windows, order, doubled = plan
    rows = _unrate_rows()
    home = tmp_path_factory.mktemp("prop")
    settings = _settings(home)
    files = []
    for i, (a, b) in enumerate(windows):
        chunk = rows[a:b] + [rows[j] for j in doubled if a <= j < b]  # exact duplicates inside a file
        chunk = list(reversed(chunk)) if i % 2 else chunk  # late rows: newest first
        path = home / f"window_{i}.csv"
        path.write_text("date,value\n" + "\n".join(chunk) + "\n")
        files.append(path)
    with Warehouse.open(settings.warehouse_path) as wh:
        for index in order:
            assert ingest_file(wh, settings, files[index], "fred_csv", options=_fred_opts(), now=NOW).status in (
                "committed",
                "skipped",
            )
        got = read_observations(wh, ["unrate"])
    expected = pl.DataFrame(
        {
            "unique_id": "unrate",
            "ds": [dt.datetime.fromisoformat(r.split(",")[0]) for r in rows],
            "y": [float(r.split(",")[1]) for r in rows],
        }
    ).with_columns(pl.col("ds").cast(pl.Datetime("us")))
    assert got.equals(expected)


def _catalog_windows(home: Path, cuts: list[int]) -> list[Path]:
    lines = EASTASIA.read_bytes().decode("cp1252").splitlines()
    header, body = lines[0], lines[1:400]
    bounds = [0, *cuts, len(body)]
    paths = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        path = home / f"catalog_{i}.csv"
        path.write_bytes(("\r\n".join([header, *body[max(0, a - 7) : b]]) + "\r\n").encode("cp1252"))
        paths.append(path)
    return paths


@hyp_settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 398), min_size=1, max_size=3, unique=True).map(sorted), data=st.data())
def test_catalog_windows_give_the_same_events_and_daily_series_in_any_order(tmp_path_factory, cuts, data) -> None:
    home = tmp_path_factory.mktemp("cat")
    paths = _catalog_windows(home, cuts)
    options = {
        "regions": [
            {"id": "eastasia", "name": "East Asia", "min_lat": 17, "max_lat": 54, "min_lon": 73, "max_lon": 135}
        ],
        "event_id_prefix": "ea",
    }
    digests = []
    for attempt in range(2):
        order = list(range(len(paths))) if attempt == 0 else data.draw(st.permutations(range(len(paths))))
        order = order + ([] if attempt == 0 else data.draw(st.lists(st.sampled_from(range(len(paths))), max_size=2)))
        settings = _settings(home / f"home{attempt}")
        with Warehouse.open(settings.warehouse_path) as wh:
            for index in order:
                assert (
                    ingest_file(wh, settings, paths[index], "usgs_catalog", options=options, now=NOW).status
                    != "quarantined"
                )
            digests.append((_digest(wh, "events"), _digest(wh), _digest(wh, "series")))
    assert digests[0] == digests[1]
    assert digests[0][0][0] == 399  # every event once, however the windows overlapped


# --- format detection and the CLI -----------------------------------------------------------


def test_cli_detects_unambiguous_formats_and_asks_otherwise(tmp_path, capsys) -> None:
    gbk = TESTDATA / "ingest" / "cny_per_usd_monthly_gbk_newest_first.csv"
    code = main(
        [
            "--home",
            str(tmp_path),
            "ingest",
            "file",
            str(gbk),
            "--option",
            "unique_id=cny_usd_gbk",
            "--option",
            "frequency=MS",
            "--json",
            "--quiet",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "committed" and out["rows"] == 546
    assert out["detected"].startswith("detected format 'market_table'")
    assert "decoded as gbk" in out["notes"] and any("newest first" in n for n in out["notes"])
    # A table no specific format claims is read as `table` (issue 22), which asks for its domain;
    # like every file that does not parse, it is quarantined with a ledger row (issue 20, exit 4).
    ambiguous = tmp_path / "prices.csv"
    ambiguous.write_text("Date,SP500,Dividend\n1871-01-01,4.44,0.26\n")
    assert main(["--home", str(tmp_path), "ingest", "file", str(ambiguous), "--quiet"]) == 4
    said = "".join(capsys.readouterr())
    assert "quarantined" in said and "no domain for column 'SP500'" in said and "--domain" in said
    unknown = tmp_path / "notes.csv"
    unknown.write_text("station,remark\nBJFS,antenna changed\n")
    assert main(["--home", str(tmp_path), "ingest", "file", str(unknown), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot tell the format of notes.csv" in err and "pass --format" in err
    code = main(
        [
            "--home",
            str(tmp_path),
            "ingest",
            "file",
            str(ambiguous),
            "--format",
            "market_table",
            "--option",
            'value_columns={"SP500": "sp500_shiller"}',
            "--option",
            "frequency=MS",
            "--quiet",
        ]
    )
    assert code == 0 and "committed" in capsys.readouterr().out
    assert main(["--home", str(tmp_path), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["series_by_domain"] == {"market": 2}
    assert status["sources"]["prices.csv"]["last_data_time"] == "1871-01-01 00:00:00"


# --- one writer at a time --------------------------------------------------------------------


def test_second_writer_waits_or_exits_with_a_clear_message(tmp_path, capsys) -> None:
    settings = _settings(tmp_path)
    Warehouse.open(settings.warehouse_path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from warehouse import Warehouse
            wh = Warehouse.open({str(settings.warehouse_path)!r})
            print("held", flush=True)
            sys.stdin.readline()
            time.sleep(1.0)
            wh.close()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["--home", str(tmp_path), "ingest", "file", str(UNRATE), "--quiet"])
        assert code == 6
        assert "held by another process" in capsys.readouterr().err
        holder.stdin.write("\n")
        holder.stdin.flush()
        # the holder lets go after a second: a writer that waits gets in
        code = main(["--home", str(tmp_path), "ingest", "file", str(UNRATE), "--wait", "60", "--quiet"])
        assert code == 0
    finally:
        holder.communicate(timeout=60)
    with Warehouse.open(settings.warehouse_path) as wh:
        assert count_rows(wh, "observations") == 550


# --- physical bounds ----------------------------------------------------------------------


def _bounds(wh: Warehouse, uid: str) -> tuple:
    return read_series_meta(wh, [uid]).select("lower_bound", "upper_bound").row(0)


def test_bounds_round_trip_through_ingestion_defaults_options_and_quarantine(tmp_path) -> None:
    """Parser defaults by variable, the per-file ``bounds`` option, and a batch whose values
    break its declared bounds quarantined, all read back from the warehouse."""

    settings = _settings(tmp_path)
    with Warehouse.open(settings.warehouse_path) as wh:
        assert (
            ingest_file(wh, settings, CHOPTANK, "usgs_daily_flow", options={"site_no": "01491000"}, now=NOW).status
            == "committed"
        )
        assert _bounds(wh, "usgs_01491000_discharge") == (0.0, None)  # discharge >= 0
        assert ingest_file(wh, settings, UNRATE, "fred_csv", options=_fred_opts(), now=NOW).status == "committed"
        assert _bounds(wh, "unrate") == (0.0, 100.0)  # a rate in percent
        assert ingest_file(wh, settings, EASTASIA, "usgs_catalog", now=NOW).status == "committed"
        assert _bounds(wh, "usgs_comcat_eastasia_m4_2018_2023_count") == (0.0, None)
        assert _bounds(wh, "usgs_comcat_eastasia_m4_2018_2023_energy") == (None, None)
        # a file's option overrides the default (JSON null = no bound) and is stored
        widened = ingest_file(
            wh, settings, UNRATE, "fred_csv", now=NOW, options=_fred_opts(bounds={"unrate": [None, 50]})
        )
        assert widened.status == "committed" and _bounds(wh, "unrate") == (None, 50.0)
        for_all = ingest_file(wh, settings, EASTASIA, "usgs_catalog", now=NOW, options={"bounds": {"*": {"lower": 0}}})
        assert for_all.status == "committed"
        assert _bounds(wh, "usgs_comcat_eastasia_m4_2018_2023_energy") == (0.0, None)
        # values outside the declared bounds: the batch is quarantined, nothing changes
        before = _digest(wh, "series"), _bounds(wh, "unrate")
        narrow = ingest_file(wh, settings, UNRATE, "fred_csv", now=NOW, options=_fred_opts(bounds={"unrate": [0, 5]}))
        assert narrow.status == "quarantined"
        assert "impossible values:" in narrow.error and "of unrate outside its declared bounds 0..5" in narrow.error
        assert (_digest(wh, "series"), _bounds(wh, "unrate")) == before
        # an option the file cannot be parsed with quarantines the batch (issue 20: whatever the
        # parser raised), with the parser's own words and fix in the ledger
        for bounds, words in (
            ({"unrat": [0, 100]}, "bounds name series ['unrat']"),
            ({"unrate": [5, 1]}, "lower 5 is not below upper 1"),
        ):
            refused = ingest_file(wh, settings, UNRATE, "fred_csv", now=NOW, options=_fred_opts(bounds=bounds))
            assert refused.status == "quarantined" and words in refused.error and "fix:" in refused.error
            assert read_batches(wh).filter(pl.col("batch_id") == refused.batch_id).get_column("status").to_list() == [
                "quarantined"
            ]
            assert (_digest(wh, "series"), _bounds(wh, "unrate")) == before


def test_a_stale_repeat_of_a_committed_answer_never_relabels_its_ledger_row(tmp_path: Path) -> None:
    """An answer whose bytes equal a batch committed earlier, arriving after a newer one (a
    stale cache), is refused with a ledger row of its own; the committed row keeps saying
    'committed' and its rows stay."""
    from ingest.batches import RawFile, ingest_files
    from warehouse.ingestion import batch_status

    settings = load_settings(tmp_path, environ={})
    lines = (TESTDATA / "fred_DGS10_last800.csv").read_text(encoding="utf-8").splitlines()
    older = ("\n".join(lines[:401]) + "\n").encode()
    newer = ("\n".join(lines) + "\n").encode()

    def answer(body: bytes, day: int):
        mark = body.decode().strip().splitlines()[-1].split(",")[0]
        return ingest_files(
            wh,
            settings,
            [RawFile("DGS10.csv", body)],
            "fred_csv",
            source="fred_dgs10",
            kind="fred",
            location="https://fred.example/DGS10",
            options={"unique_id": "dgs10", "frequency": "B"},
            watermark=("fred_dgs10", mark),
            now=dt.datetime(2026, 6, day),
        )

    with Warehouse.open(settings.warehouse_path) as wh:
        first, second = answer(older, 1), answer(newer, 2)
        assert (first.status, second.status) == ("committed", "committed"), second.error
        stored = read_observations(wh)
        stale = answer(older, 3)
        assert stale.status == "quarantined" and "older than" in (stale.error or "")
        assert stale.batch_id.startswith(f"{first.batch_id}_refused_")
        assert batch_status(wh, first.batch_id) == "committed" and batch_status(wh, stale.batch_id) == "quarantined"
        assert read_observations(wh).equals(stored) and stored.height > 400
