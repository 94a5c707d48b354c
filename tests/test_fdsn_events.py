"""QuakeML 1.2 and FDSN ``text`` event files (ingest.sources.fdsn) and the ``fdsn_event``
connector, on real agency answers (tests/data/ingest/README.md): three INGV fdsnws-event QuakeML
answers and an IRIS fdsnws-event text answer. The connector replays the INGV answers through a
real loopback HTTP server (tests/replay_server.py) into a real DuckDB file.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import polars as pl
import pytest
from obspy import Catalog, read_events
from polars.testing import assert_frame_equal

from core.errors import ConfigError, DataFormatError
from core.settings import Settings, load_settings
from ingest.connectors import run_source
from ingest.sources import detect_format, parse
from pipelines.cli.main import main
from tests.replay_server import INGV_QUAKEML, ReplayServer
from warehouse import Warehouse
from warehouse.ingestion import read_watermarks
from warehouse.series import read_events as stored_events
from warehouse.series import read_observations

ROOT = Path(__file__).resolve().parent.parent
INGEST = ROOT / "tests" / "data" / "ingest"
IRIS_TEXT = INGEST / "iris_fdsnws_event_text_2_events.txt"
TWO_MAGNITUDES = INGEST / "ingv_fdsnws_event_20210101-010910_25883521.qml"
CAMPI_FLEGREI = {
    "id": "campi_flegrei",
    "name": "Campi Flegrei",
    "min_lat": 40.7,
    "max_lat": 41.0,
    "min_lon": 14.0,
    "max_lon": 14.3,
}  # noqa: E501
CENTRAL_ITALY = {
    "id": "central_italy",
    "name": "Central Italy",
    "min_lat": 42.0,
    "max_lat": 44.0,
    "min_lon": 12.0,
    "max_lon": 14.0,
}  # noqa: E501
REGIONS = [CAMPI_FLEGREI, CENTRAL_ITALY]
SAME = ["event_id", "time", "lat", "lon", "depth_km", "magnitude"]


def _ingv_catalog(target: Path) -> Path:
    """The three recorded INGV events in one QuakeML document (ObsPy writes it)."""
    catalog = Catalog()
    for path in INGV_QUAKEML:
        catalog.extend(read_events(str(path), format="QUAKEML"))
    catalog.write(str(target), format="QUAKEML")
    return target


def _as_fdsn_text(quakeml: Path, target: Path) -> Path:
    """The same events in FDSN text, by ObsPy's EVENTTXT writer, with INGV's bare event ids."""
    out = io.StringIO()
    read_events(str(quakeml), format="QUAKEML").write(out, format="EVENTTXT")
    target.write_text(out.getvalue().replace("query?eventId=", ""), encoding="utf-8")
    return target


def _fdsn_text_as_comcat(text: Path, target: Path) -> Path:
    """The same events in the ComCat CSV layout (time with Z, columns renamed)."""
    lines = [line.split("|") for line in text.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    rows = ["time,latitude,longitude,depth,mag,magType,id"]
    rows += [f"{f[1].strip()}Z,{f[2]},{f[3]},{f[4]},{f[10]},{f[9]},{f[0]}" for f in lines]
    target.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return target


# --- parsers ------------------------------------------------------------------------------


def test_quakeml_takes_the_preferred_origin_and_magnitude_and_converts_depth_to_km(tmp_path) -> None:
    parsed = parse(TWO_MAGNITUDES, "quakeml", event_id_prefix="ingv")
    event = parsed.events.row(0, named=True)
    # INGV 25883521: preferred ML 1.3 (a second ML 1.4 is in the file), depth 8400 m
    assert event["event_id"] == "ingv:25883521" and event["magnitude"] == 1.3 and event["depth_km"] == 8.4
    assert event["time"] == dt.datetime(2021, 1, 1, 1, 9, 10, 220000)
    assert (event["lat"], event["lon"]) == (42.8343, 13.1877)
    assert any("preferred origin (depth metres -> km)" in n for n in parsed.notes)
    # point the preferred magnitude at the other one: it is the one taken
    text = TWO_MAGNITUDES.read_text(encoding="ascii")
    swapped = tmp_path / "swapped.qml"
    swapped.write_text(
        text.replace("magnitudeId=91710461</preferredMagnitudeID>", "magnitudeId=91707821</preferredMagnitudeID>")
    )
    assert parse(swapped, "quakeml").events.get_column("magnitude").to_list() == [1.4]
    # no preferred magnitude at all: the first one, and the notes say so
    unnamed = tmp_path / "unnamed.qml"
    start = text.index("<preferredMagnitudeID>")
    unnamed.write_text(text[:start] + text[text.index("</preferredMagnitudeID>") + len("</preferredMagnitudeID>") :])
    fallback = parse(unnamed, "quakeml")
    assert fallback.events.get_column("magnitude").to_list() == [1.3]
    assert "1 event(s) name no (resolvable) preferred magnitude: their first magnitude was used" in fallback.notes


def test_events_without_origin_or_magnitude_are_counted_and_named(tmp_path) -> None:
    both = _ingv_catalog(tmp_path / "ingv.qml").read_text(encoding="utf-8")
    # strip the magnitudes of one event: it is named in the notes, the others load
    start = both.index('<magnitude publicID="smi:webservices.ingv.it/fdsnws/event/1/query?magnitudeId=91812661"')
    end = both.index("</magnitude>", start) + len("</magnitude>")
    cut = both[:start] + both[end:]
    cut = cut.replace(
        "<preferredMagnitudeID>smi:webservices.ingv.it/fdsnws/event/1/query?magnitudeId=91812661</preferredMagnitudeID>",
        "",
    )
    path = tmp_path / "no_magnitude.qml"
    path.write_text(cut, encoding="utf-8")
    parsed = parse(path, "quakeml", event_id_prefix="ingv")
    assert parsed.events.get_column("event_id").to_list() == ["ingv:25883521", "ingv:25883961"]
    assert any(
        n.startswith(
            "left out 1 event(s) without a magnitude: smi:webservices.ingv.it/fdsnws/event/1/query?eventId=25883901"
        )
        for n in parsed.notes
    ), parsed.notes
    # FDSN text: the 1960 Chile row without a magnitude is named with its line
    lines = IRIS_TEXT.read_text().splitlines()
    blank = tmp_path / "blank_mag.txt"
    blank.write_text("\n".join([lines[0], lines[1], lines[2].replace("|8.50|", "||")]) + "\n")
    text = parse(blank, "fdsn_text")
    assert text.events.height == 1
    assert "left out 1 event(s) without a magnitude: 2413 (line 3)" in text.notes


def test_the_iris_text_answer_with_spaced_header_and_blank_fields_parses() -> None:
    parsed = parse(IRIS_TEXT, "fdsn_text", event_id_prefix="iris")
    rows = parsed.events.sort("time").select(SAME).rows()
    assert rows == [
        ("iris:2413", dt.datetime(1960, 5, 22, 19, 11, 14), -38.17, -72.57, 0.0, 8.5),
        ("iris:3337497", dt.datetime(2012, 4, 11, 8, 38, 37), 2.2376, 93.0144, 26.3, 8.6),
    ]
    assert "magnitude types in 'MagType': MW 1, (blank) 1" in parsed.notes


def test_quakeml_text_and_comcat_layouts_give_the_same_events_and_daily_series(tmp_path) -> None:
    quakeml = _ingv_catalog(tmp_path / "ingv.qml")
    text = _as_fdsn_text(quakeml, tmp_path / "ingv.txt")
    comcat = _fdsn_text_as_comcat(text, tmp_path / "ingv.csv")
    options = {"event_id_prefix": "ingv", "regions": REGIONS}
    results = {
        fmt: parse(path, fmt, **options)
        for fmt, path in (("quakeml", quakeml), ("fdsn_text", text), ("usgs_catalog", comcat))
    }
    reference = results["quakeml"]
    assert reference.events.get_column("event_id").to_list() == ["ingv:25883521", "ingv:25883901", "ingv:25883961"]
    # ObsPy writes FDSN text with 5 decimals of seconds and 3 of km: compare at that precision
    for fmt, parsed in results.items():
        (
            assert_frame_equal(
                parsed.events.select(SAME).with_columns(pl.col("time").dt.truncate("10us")),
                reference.events.select(SAME).with_columns(pl.col("time").dt.truncate("10us")),
                check_exact=False,
                abs_tol=1e-6,
            ),
            fmt,
        )
        assert_frame_equal(parsed.series, reference.series), fmt
    counts = reference.series.filter(pl.col("unique_id").str.ends_with("_count"))
    assert dict(counts.select("unique_id", "y").rows()) == {"campi_flegrei_count": 2.0, "central_italy_count": 1.0}


def test_detection_names_each_format_by_its_own_signature(tmp_path) -> None:
    assert detect_format(TWO_MAGNITUDES)[0] == "quakeml"
    assert detect_format(IRIS_TEXT)[0] == "fdsn_text"
    text = _as_fdsn_text(_ingv_catalog(tmp_path / "ingv.qml"), tmp_path / "ingv.txt")
    assert detect_format(tmp_path / "ingv.qml")[0] == "quakeml"  # ObsPy's own writing of it
    # the 14-column header of SeisComP services, without spaces
    lines = text.read_text().splitlines()
    header = "#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|MagType|Magnitude|MagAuthor|EventLocationName|EventType"  # noqa: E501
    typed = tmp_path / "typed.txt"
    typed.write_text("\n".join([header, *(f"{r}|earthquake" for r in lines[1:-1]), f"{lines[-1]}|quarry blast"]) + "\n")
    fmt, why = detect_format(typed)
    assert fmt == "fdsn_text" and "#EventID|Time" in why
    kept = parse(typed, fmt, event_types=["earthquake"])
    assert kept.events.height == 2 and any(
        "left out 1 event(s) not of the types ['earthquake']: 25883961" in n for n in kept.notes
    )
    # an XML file of another kind is not QuakeML
    other = tmp_path / "other.xml"
    other.write_text('<?xml version="1.0"?><FDSNStationXML xmlns="http://www.fdsn.org/xml/station/1"/>')
    with pytest.raises(ConfigError, match="cannot tell the format"):
        detect_format(other)


def test_bad_files_name_the_line_or_event_and_the_fix(tmp_path) -> None:
    lines = IRIS_TEXT.read_text().splitlines()
    short = tmp_path / "short.txt"
    short.write_text("\n".join([lines[0], lines[1], "2413|1960-05-22T19:11:14|-38.17"]) + "\n")
    with pytest.raises(
        DataFormatError, match=r"(?s)short.txt: line 3 has 3 '\|'-separated fields, the header 13.*fix:"
    ):
        parse(short, "fdsn_text")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("\n".join([lines[0], lines[1].replace("2.237600", "north")]) + "\n")
    with pytest.raises(DataFormatError, match=r"line 2, column 'Latitude'"):
        parse(wrong, "fdsn_text")
    header = tmp_path / "header.txt"
    header.write_text("EventID|Time\n1|2020-01-01\n")
    with pytest.raises(DataFormatError, match="(?s)line 1 is not the FDSN text header.*format=text"):
        parse(header, "fdsn_text")
    text = TWO_MAGNITUDES.read_text(encoding="ascii")
    cut = tmp_path / "cut.qml"
    cut.write_text(text[: len(text) // 2])
    with pytest.raises(
        DataFormatError, match="(?s)cut.qml: is not a readable QuakeML 1.2 document.*re-download it whole"
    ):
        parse(cut, "quakeml")
    far = tmp_path / "far.qml"
    far.write_text(text.replace("<value>42.8343</value>", "<value>142.8343</value>"))
    with pytest.raises(
        DataFormatError,
        match=r"event smi:webservices.ingv.it/fdsnws/event/1/query\?eventId=25883521: latitude 142.8343",
    ):
        parse(far, "quakeml")
    with pytest.raises(ConfigError, match="event_types="):
        parse(TWO_MAGNITUDES, "quakeml", event_types="earthquake")


def test_dry_run_shows_the_quakeml_mapping_and_writes_nothing(tmp_path, capsys) -> None:
    home = tmp_path / "home"
    assert main(["--home", str(home), "ingest", "file", str(TWO_MAGNITUDES), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "quakeml" in out and "QuakeML 1.2 namespace" in out
    assert "preferred origin (depth metres -> km)" in out and "25883521" in out
    assert not home.exists()
    assert main(["--home", str(home), "ingest", "file", str(IRIS_TEXT), "--dry-run", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["format"] == "fdsn_text" and shown["events"] == 2


# --- the fdsn_event connector -------------------------------------------------------------


def _home(tmp_path: Path, url: str, fmt: str) -> Settings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    region = '{ id = "campi_flegrei", name = "Campi Flegrei", min_lat = 40.7, max_lat = 41.0, min_lon = 14.0, max_lon = 14.3 }'  # noqa: E501
    (tmp_path / "ews.toml").write_text(
        "[ingest]\ntimeout_seconds = 2.0\nretries = 1\nbackoff_seconds = 0.01\n"
        f'[ingest.sources.italy]\nkind = "fdsn_event"\nurl = "{url}/ingv/fdsnws/event/1"\nformat = "{fmt}"\n'
        f'start = "2021-01-01"\nregions = [{region}]\n',
        encoding="utf-8",
    )
    return load_settings(tmp_path, environ={})


@pytest.mark.parametrize("fmt", ["text", "xml"])
def test_fdsn_event_backfills_then_asks_for_updated_events_then_gets_204(tmp_path, fmt) -> None:
    with ReplayServer() as server:
        settings = _home(tmp_path, server.url, fmt)
        with Warehouse.open(settings.warehouse_path) as wh:
            # 02:30: two events have happened (01:09 central Italy, 02:13 Campi Flegrei)
            first = run_source(wh, settings, "italy", now=dt.datetime(2021, 1, 1, 2, 30))
            assert first.status == "success", first.error
            assert [b.fmt for b in first.batches] == ["fdsn_text" if fmt == "text" else "quakeml"]
            assert stored_events(wh).get_column("event_id").sort().to_list() == ["italy:25883521", "italy:25883901"]
            assert read_watermarks(wh, "italy") == {"italy": "2021-01-01T02:30:00"}
            assert "updatedafter" not in server.requests[-1] and f"format={fmt}" in server.requests[-1]
            # 03:00: every event updated after 02:30 comes back (two revised, one new at 02:40)
            second = run_source(wh, settings, "italy", now=dt.datetime(2021, 1, 1, 3, 0))
            assert second.status == "success" and len(second.batches) == 1
            assert "updatedafter=2021-01-01T02%3A30%3A00" in server.requests[-1]
            events = stored_events(wh)
            assert events.height == 3
            counts = read_observations(wh, ["campi_flegrei_count"])
            assert counts.get_column("y").to_list() == [2.0]  # 02:13 and 02:40, one daily value
            # 2021-01-06: only 25883901 was revised since (its origin on 2021-01-05)
            third = run_source(wh, settings, "italy", now=dt.datetime(2021, 1, 6))
            assert third.status == "success" and len(third.batches) == 1
            assert stored_events(wh).height == 3
            # 2021-01-07: nothing changed: 204 No Content, nothing stored, the watermark moves
            before = read_observations(wh, ["campi_flegrei_count"])
            fourth = run_source(wh, settings, "italy", now=dt.datetime(2021, 1, 7))
            assert fourth.status == "success" and fourth.batches == []
            assert read_watermarks(wh, "italy") == {"italy": "2021-01-07T00:00:00"}
            assert_frame_equal(read_observations(wh, ["campi_flegrei_count"]), before)


def test_fdsn_event_settings_are_checked_before_anything_is_fetched(tmp_path) -> None:
    with ReplayServer() as server:
        settings = _home(tmp_path, server.url, "json")
        with Warehouse.open(settings.warehouse_path) as wh:
            run = run_source(wh, settings, "italy", now=dt.datetime(2021, 1, 2))
        assert run.status == "failed" and "format = 'json'" in run.error and 'format = "text"' in run.error
        assert server.requests == []
