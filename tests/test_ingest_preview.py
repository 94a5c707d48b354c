"""``ews ingest file PATH --dry-run`` and :func:`ingest.preview.preview_file`: the detected
format and why, the parser's notes, the first rows, the series and regions a load would write
and how they compare with the stored ones, the rows that would be quarantined and why, with
nothing written. Real bundled files throughout; bad rows are put into copies in tmp_path.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError
from core.settings import Settings, load_settings
from ingest.batches import ingest_file
from ingest.preview import describe, preview_bytes, preview_file
from ingest.sources import detect_format, parse
from pipelines.cli.main import main
from tests.sql import sql_rows
from warehouse import Warehouse
from warehouse.snapshots import publish_snapshot, snapshot_folder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
UNRATE = DATA / "market" / "fred_UNRATE.csv"
CHOPTANK = DATA / "hydro" / "usgs_01491000_choptank_daily_flow_cms.txt"
EASTASIA = DATA / "seismic" / "usgs_comcat_eastasia_m4_2018_2023.csv"
NOW = dt.datetime(2026, 1, 15)


def _settings(home: Path) -> Settings:
    return load_settings(home, environ={})


def _choptank_with_bad_rows(folder: Path) -> tuple[Path, str, str]:
    """A copy of the Choptank file (same name, so the same series) with one impossible value and
    one date in the future; returns the path and the two altered dates as the file writes them."""
    lines = CHOPTANK.read_text().splitlines()
    spike_date = lines[101].split("\t")[0]
    lines[101] = f"{spike_date}\t987654"  # m3/s: beyond any river on Earth
    future_date = "1/15/2099"
    lines.append(f"{future_date}\t3.2")
    broken = folder / CHOPTANK.name
    broken.write_text("\n".join(lines) + "\n")
    return broken, spike_date, future_date


def _state(home: Path) -> tuple:
    """Everything a load writes: the warehouse file's bytes and mtime, and the raw area."""
    wh = home / "warehouse.duckdb"
    raw = sorted(str(p.relative_to(home)) for p in (home / "raw").rglob("*")) if (home / "raw").exists() else []
    return (wh.read_bytes() if wh.exists() else None, wh.stat().st_mtime_ns if wh.exists() else None, raw)


def _ledger_rows(home: Path) -> int:
    with Warehouse.open(home / "warehouse.duckdb", read_only=True) as wh:
        return int(sql_rows(wh, "SELECT count(*) FROM ingest_batches")[0][0])


def test_a_catalog_preview_shows_format_notes_events_series_and_regions(tmp_path: Path) -> None:
    preview = preview_file(EASTASIA, settings=_settings(tmp_path), wh=None, now=NOW, head=7)
    fmt, why = detect_format(EASTASIA)
    parsed = parse(EASTASIA, fmt)
    assert preview.fmt == fmt == "usgs_catalog" and preview.detected == why
    # the parser's own notes (mapping, decoding, the region it made) come through unchanged
    assert set(parsed.notes) <= set(preview.notes)
    assert any(n.startswith("no regions given") for n in preview.notes)
    assert preview.events_head is not None and preview.events_head.equals(parsed.events.head(7))
    assert preview.event_count == parsed.events.height
    assert preview.series_head.equals(parsed.series.head(7))
    # the series a commit would write: from the events, all new in a warehouse that does not exist
    counts = parsed.series.group_by("unique_id").len().sort("unique_id")
    assert preview.series.get_column("unique_id").to_list() == counts.get_column("unique_id").to_list()
    assert preview.series.get_column("rows").to_list() == counts.get_column("len").to_list()
    assert set(preview.series.get_column("stored")) == {"new"}
    assert preview.series.get_column("new_rows").to_list() == preview.series.get_column("rows").to_list()
    assert preview.regions.to_dicts() == [
        {"region": r, "series": parsed.meta.height, "new": parsed.meta.height} for r in set(parsed.meta["region"])
    ]
    assert preview.findings == () and preview.error is None and preview.outcome == "commit"
    text = describe(preview)
    assert f"format: usgs_catalog, detected ({why})" in text and f"events: {parsed.events.height}" in text
    assert "no warehouse yet" in text and "would commit batch" in text


def test_bad_rows_are_listed_with_the_reasons_the_real_load_quarantines_them_for(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    broken, spike_date, future_date = _choptank_with_bad_rows(tmp_path)
    preview = preview_file(broken, "usgs_daily_flow", settings=settings, wh=None, now=NOW)
    assert preview.detected is None and preview.outcome == "quarantine" and preview.exit_code == 4
    reasons = [f.reason for f in preview.findings]
    assert [r.split(":")[0] for r in reasons] == ["future timestamps", "impossible values"]
    uid = preview.series.get_column("unique_id")[0]
    future, spike = (f.rows for f in preview.findings)
    assert future.rows() == [(uid, dt.datetime.strptime(future_date, "%m/%d/%Y"), 3.2)]
    assert spike.rows() == [(uid, dt.datetime.strptime(spike_date, "%m/%d/%Y"), 987654.0)]
    text = describe(preview)
    assert all(r in text for r in reasons) and "987654" in text and "would quarantine" in text
    # one code path: the real load quarantines the same batch for exactly these reasons
    with Warehouse.open(settings.warehouse_path) as wh:
        result = ingest_file(wh, settings, broken, "usgs_daily_flow", now=NOW)
    assert result.status == "quarantined" and result.error == "; ".join(reasons)
    assert result.batch_id == preview.batch_id


def test_a_file_that_does_not_parse_is_reported_like_the_load_reports_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    lines = CHOPTANK.read_text().splitlines()
    lines[6] = lines[6].split("\t")[0] + "\tabc"
    bad = tmp_path / CHOPTANK.name
    bad.write_text("\n".join(lines) + "\n")
    preview = preview_file(bad, settings=settings, wh=None, now=NOW)
    assert preview.error is not None and "line 7" in preview.error and "'Qdaily'" in preview.error
    assert preview.outcome == "quarantine" and preview.series.height == 0
    with Warehouse.open(settings.warehouse_path) as wh:
        result = ingest_file(wh, settings, bad, preview.fmt, now=NOW)
    assert result.status == "quarantined" and result.error == preview.error


def test_new_and_changed_rows_against_a_real_ingest(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    options = {"unique_id": "unrate", "unit": "percent", "variable": "unemployment_rate"}
    with Warehouse.open(settings.warehouse_path) as wh:
        assert ingest_file(wh, settings, UNRATE, "fred_csv", options=options, now=NOW).status == "committed"
        stored_rows = int(sql_rows(wh, "SELECT count(*) FROM observations")[0][0])
    # the same file again: a load would skip it, and nothing in it is new or different
    with Warehouse.open(settings.warehouse_path, read_only=True) as wh:
        same = preview_file(UNRATE, "fred_csv", options=options, settings=settings, wh=wh, now=NOW)
    assert same.outcome == "skip" and same.ledger_status == "committed"
    assert same.series.select("stored", "new_rows", "changed_rows", "unchanged_rows").row(0) == (
        "stored",
        0,
        0,
        stored_rows,
    )
    # a revision: one value changed, one month appended
    lines = UNRATE.read_text().splitlines()
    last_date, last_value = lines[-1].split(",")
    lines[-1] = f"{last_date},{float(last_value) + 0.5}"
    lines.append(f"{(dt.date.fromisoformat(last_date) + dt.timedelta(days=31)).replace(day=1)},4.0")
    revised = tmp_path / UNRATE.name
    revised.write_text("\n".join(lines) + "\n")
    with Warehouse.open(settings.warehouse_path, read_only=True) as wh:
        preview = preview_file(revised, "fred_csv", options=options, settings=settings, wh=wh, now=NOW)
    row = preview.series.row(0, named=True)
    assert (row["unique_id"], row["stored"], row["new_rows"], row["changed_rows"], row["unchanged_rows"]) == (
        "unrate",
        "stored",
        1,
        1,
        stored_rows - 1,
    )
    assert preview.outcome == "commit" and preview.ledger_status is None
    with Warehouse.open(settings.warehouse_path) as wh:
        result = ingest_file(wh, settings, revised, "fred_csv", options=options, now=NOW)
    assert result.status == "committed" and result.rows_changed == 2


def test_a_catalog_already_stored_shows_its_daily_series_unchanged(tmp_path: Path) -> None:
    """A catalog's daily series are recounted from stored and new events, as a commit does: a
    file with the first events of a stored catalog changes no day."""
    settings = _settings(tmp_path / "home")
    with Warehouse.open(settings.warehouse_path) as wh:
        assert ingest_file(wh, settings, EASTASIA, "usgs_catalog", now=NOW).status == "committed"
    part = tmp_path / EASTASIA.name
    part.write_bytes(b"\n".join(EASTASIA.read_bytes().split(b"\n")[:1001]) + b"\n")
    with Warehouse.open(settings.warehouse_path, read_only=True) as wh:
        preview = preview_file(part, settings=settings, wh=wh, now=NOW)
    assert preview.event_count == 1000 and preview.outcome == "commit"
    assert set(preview.series.get_column("stored")) == {"stored"}
    assert preview.series.select(pl.col("new_rows", "changed_rows").sum()).row(0) == (0, 0)
    assert (preview.series["unchanged_rows"] == preview.series["rows"]).all()


def test_the_dry_run_writes_nothing_and_exits_as_the_load_would(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    broken, _, _ = _choptank_with_bad_rows(tmp_path)
    # no warehouse yet: the dry run works and creates nothing, not even EWS_HOME
    assert main(["--home", str(home), "ingest", "file", str(CHOPTANK), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "format: usgs_daily_flow, detected (header 'date<TAB>Qdaily')" in out and "no warehouse yet" in out
    assert not home.exists()
    assert main(["--home", str(home), "ingest", "file", str(UNRATE), "--quiet"]) == 0
    capsys.readouterr()
    before, ledger = _state(home), _ledger_rows(home)
    assert main(["--home", str(home), "ingest", "file", str(broken), "--dry-run"]) == 4
    out = capsys.readouterr().out
    assert "impossible values: 1 value(s)" in out and "future timestamps: 1 observation(s)" in out
    assert main(["--home", str(home), "ingest", "file", str(CHOPTANK), "--dry-run", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"] == "commit" and data["series"][0]["stored"] == "new" and data["quarantine"] == []
    assert _state(home) == before and _ledger_rows(home) == ledger
    # the real load of the broken copy ends with the dry run's exit code
    assert main(["--home", str(home), "ingest", "file", str(broken), "--quiet"]) == 4
    capsys.readouterr()
    # --dry-run is for files only
    assert main(["--home", str(home), "ingest", "some_source", "--dry-run"]) == 1
    assert "apply to `ews ingest file` only" in capsys.readouterr().err


def test_the_dry_run_never_waits_for_the_writer_it_reads_the_snapshot(tmp_path: Path, capsys) -> None:
    settings = _settings(tmp_path)
    with Warehouse.open(settings.warehouse_path) as wh:
        ingest_file(wh, settings, UNRATE, "fred_csv", now=NOW)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys
            from warehouse import Warehouse
            wh = Warehouse.open({str(settings.warehouse_path)!r})
            print("held", flush=True)
            sys.stdin.readline()
            wh.close()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # no snapshot to fall back on: the writer's lock is reported with its fix
        assert main(["--home", str(tmp_path), "ingest", "file", str(UNRATE), "--dry-run"]) == 6
        assert "held by another process" in capsys.readouterr().err
    finally:
        holder.communicate("\n", timeout=60)
    with Warehouse.open(settings.warehouse_path) as wh:
        publish_snapshot(wh, snapshot_folder(settings), now=NOW)
    holder = subprocess.Popen(holder.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(["--home", str(tmp_path), "ingest", "file", str(UNRATE), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "compared with the read snapshot of" in out and "a run holds the warehouse" in out
        assert "would skip it" in out
    finally:
        holder.communicate("\n", timeout=60)


def test_an_upload_is_previewed_under_its_own_name_and_left_nowhere(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    leftovers = set(Path(tempfile.gettempdir()).glob("ews-preview-*"))
    preview = preview_bytes("../../" + UNRATE.name, UNRATE.read_bytes(), settings=settings, wh=None, now=NOW)
    direct = preview_file(UNRATE, settings=settings, wh=None, now=NOW)
    assert preview.name == UNRATE.name and preview.batch_id == direct.batch_id
    assert preview.series.equals(direct.series) and preview.notes == direct.notes
    assert set(Path(tempfile.gettempdir()).glob("ews-preview-*")) <= leftovers
    with pytest.raises(ConfigError, match="needs a name"):
        preview_bytes("", b"date,value\n", settings=settings, wh=None)
