"""The one reader of tabular files (ingest.sources.table_read) behind `table` and `event_catalog`:
Excel sheets through polars' calamine engine (fastexcel) keep dates, date-times and times of day,
and errors name the sheet's own row.

Workbooks are written here (xlsxwriter) from the real files in tests/data/ingest (provenance in
tests/data/README.md): the NEIC table with split date and time columns and the Choptank gauge CSV.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from core.errors import DataFormatError
from ingest.sources import parse
from ingest.sources.table_read import read_table

INGEST = Path(__file__).resolve().parent / "data" / "ingest"
NEIC = INGEST / "usgs_neic_significant_m55_2011q1_date_time.csv"
GAUGE = INGEST / "choptank_01491000_gauge_daily_flow_wy2011.csv"

xlsxwriter = pytest.importorskip("xlsxwriter")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def test_excel_date_and_time_of_day_cells_read_like_the_csv(tmp_path: Path) -> None:
    """Date cells plus time-of-day cells make one origin time, as the CSV's two text columns do."""
    rows = list(csv.reader(NEIC.open()))
    path = tmp_path / f"{NEIC.stem}.xlsx"  # the same name: regions and series are named after the file
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet("events")
    day, clock = book.add_format({"num_format": "yyyy-mm-dd"}), book.add_format({"num_format": "hh:mm:ss"})
    sheet.write_row(2, 0, rows[0])  # two blank rows above the header
    for r, row in enumerate(rows[1:], start=3):
        for c, value in enumerate(row):
            if c == 0:
                sheet.write_datetime(r, c, dt.datetime.strptime(value, "%m/%d/%Y"), day)
            elif c == 1:
                sheet.write_datetime(r, c, dt.datetime.strptime(value, "%H:%M:%S"), clock)
            elif value and _number(value) is not None:
                sheet.write_number(r, c, float(value))
            elif value:
                sheet.write_string(r, c, value)
    book.close()
    table = read_table(path)
    assert table.frame.schema["Date"].is_temporal() and str(table.frame.schema["Time"]) == "Time"
    assert table.frame.get_column("_line")[0] == 4  # the sheet's row, blank rows counted
    wanted = {"mag_types": ["MWW", "MWC", "MW"], "event_id_prefix": "neic"}
    from_csv = parse(NEIC, "event_catalog", time_format="%m/%d/%Y %H:%M:%S", **wanted)
    from_excel = parse(path, "event_catalog", **wanted)
    assert from_csv.events is not None and from_excel.events is not None
    assert from_excel.events.height == from_csv.events.height > 100
    assert_frame_equal(from_excel.events, from_csv.events)
    assert_frame_equal(from_excel.series, from_csv.series)


def test_excel_errors_name_the_sheet_row(tmp_path: Path) -> None:
    lines = GAUGE.read_text().splitlines()
    path = tmp_path / "gauge.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet, day = book.add_worksheet("flow"), book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, lines[0].split(","))
    for r, line in enumerate(lines[1:11], start=2):  # row 1 header, row 2 blank, data from row 3
        date, flow = line.split(",")
        sheet.write_datetime(r, 0, dt.datetime.fromisoformat(date), day)
        sheet.write(r, 1, "about 30" if r == 6 else float(flow))
    book.close()
    with pytest.raises(DataFormatError, match=r"gauge\.xlsx: line 7, column 'Flow \(m3/s\)'.*'about 30'"):
        parse(path, "table", domain="hydro")
