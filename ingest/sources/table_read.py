"""Reading a tabular file into columns with the file's own line numbers: the one reader of
delimited text, Excel and Parquet behind ``table`` (:mod:`ingest.sources.table`, and
``market_table`` through it) and ``event_catalog`` (:func:`ingest.sources.catalog_columns.read_catalog_table`).

- **Parquet** (by suffix or magic bytes): the columns with their types.
- **Excel** (``.xlsx``/``.xlsm``/``.xls``/``.xlsb``/``.ods``, or a zip's magic bytes) through
  polars' engine ``fastexcel`` (calamine): the first non-blank row of the sheet is the header,
  blank rows are skipped, each row keeps its row number in the sheet; date, date-time and
  time-of-day columns keep their type (a column of midnights is a date), other cells become
  text as the sheet shows them (``12`` not ``12.0``). ``sheet`` by name or number.
- **Delimited text**: ``encoding``, else UTF-8, then GBK, then cp1252 (the one used is in the
  notes); lines starting with one of ``comment_prefixes`` and blank lines are skipped, and the
  rest keep their line numbers in the file; the separator is ``separator``, else the one of
  ``\\t`` ``|`` ``;`` ``,`` found most often in the first kept line (on a tie the earlier of
  those), else runs of whitespace (or ``fallback_separator``). The first line is a header
  unless every field of it is a number (``header`` overrides); a headerless file gets
  ``column_1``, ``column_2`` ...
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from core.errors import ConfigError
from ingest.sources._common import fail, read_delimited, read_text

__all__ = ["Table", "read_table", "sniff_separator", "ENCODINGS", "COMMENT_PREFIXES"]

#: Encodings tried in order when none is given.
ENCODINGS = ("utf-8", "gbk", "cp1252")
#: Lines starting with one of these are skipped by default.
COMMENT_PREFIXES = ("#", "HDR", "%")
_SNIFFED = ("\t", "|", ";", ",")
_WHITESPACE = ("whitespace", " ")
_EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
_NO_DATE = [datetime.date(1899, 12, 30), datetime.date(1899, 12, 31), datetime.date(1904, 1, 1)]
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


@dataclass
class Table:
    """A file read into a frame: text (or typed, for Parquet and Excel dates) columns plus
    ``_line``, each row's line in the file (row in the sheet; for Parquet, see :func:`read_table`)."""

    frame: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    headerless: bool = False

    @property
    def columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != "_line"]


def sniff_separator(line: str) -> str | None:
    """The one of ``\\t | ; ,`` found most often in ``line`` (the earlier on a tie); None when none is."""
    counts = {sep: line.count(sep) for sep in _SNIFFED}
    best = max(_SNIFFED, key=lambda s: (counts[s], -_SNIFFED.index(s)))
    return best if counts[best] else None


def read_table(
    path: Path,
    *,
    sheet: str | int | None = None,
    sheet_base: int = 1,
    encoding: str | None = None,
    encodings: Sequence[str] = ENCODINGS,
    separator: str | None = None,
    fallback_separator: str | None = None,
    comment_prefixes: Sequence[str] = COMMENT_PREFIXES,
    header: bool | None = None,
    column_names: Sequence[str] | None = None,
    parquet_first_line: int = 2,
    encoding_note: str = "decoded as {encoding}",
    what: str = "table",
    separator_option: str = "separator",
) -> Table:
    """Read ``path`` (text, Excel or Parquet) into a :class:`Table` (module docstring).

    The callers' own conventions: ``sheet_base`` is the number of the first sheet (1 for
    ``table``, 0 for ``event_catalog``); ``fallback_separator`` the separator when the first
    line has none of ``\t | ; ,`` (None: whitespace; ``event_catalog`` keeps ``,``, so a
    file that is no table is refused for its header); ``parquet_first_line`` the ``_line`` of a Parquet
    file's first row (2, as if exported with a header line, or 1 to count data rows);
    ``encoding_note`` the note when a file is not UTF-8; ``what`` and ``separator_option``
    name the format and its separator option in messages.
    """
    path = Path(path)
    if not path.is_file():
        read_text(path)  # raises the shared "no such file" error
    with path.open("rb") as handle:
        head = handle.read(8)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq") or head[:4] == b"PAR1":
        table = _read_parquet(path, parquet_first_line)
    elif suffix in _EXCEL_SUFFIXES or head[:4] == b"PK\x03\x04":
        table = _read_excel(path, sheet, sheet_base)
    else:
        if sheet is not None:
            raise ConfigError(f"{what} {path.name}: sheet={sheet!r} applies to Excel files only", fix="drop sheet=")
        table = _read_text(
            path,
            encodings=(encoding,) if encoding else tuple(encodings),
            encoding_note=encoding_note,
            separator=separator,
            fallback_separator=fallback_separator,
            comment_prefixes=comment_prefixes,
            header=header,
            what=what,
            separator_option=separator_option,
        )
    return _named(path, table, column_names)


# -- the three containers ------------------------------------------------------------------


def _read_parquet(path: Path, first_line: int) -> Table:
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise fail(path, f"cannot be read as Parquet ({exc})", fix="pass an intact Parquet file") from None
    if frame.height == 0:
        raise fail(path, "has a header but no data rows", fix="write the file again with its rows")
    frame = frame.rename({c: str(c).strip() for c in frame.columns})
    note = "read as Parquet" + (" (row numbers count data rows)" if first_line == 1 else "")
    return Table(frame.with_row_index("_line", offset=first_line), [note])


def _read_excel(path: Path, sheet: str | int | None, base: int) -> Table:
    import fastexcel  # polars' Excel engine (calamine); imported here, as only workbooks need it

    try:
        book = fastexcel.read_excel(path)
    except (fastexcel.FastExcelError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(path, f"cannot be opened as an Excel workbook ({first})", fix="pass an intact workbook") from None
    names = list(book.sheet_names)
    if sheet is None:
        chosen = names[0]
    elif isinstance(sheet, int) and not isinstance(sheet, bool) and base <= sheet < base + len(names):
        chosen = names[sheet - base]
    elif isinstance(sheet, str) and sheet in names:
        chosen = sheet
    else:
        raise ConfigError(
            f"{path.name}: no sheet {sheet!r}; it has {names}",
            fix=f"pass sheet= a name or a number ({base} for the first)",
        )
    # every cell as the sheet shows it, row i being the sheet's row i + 1
    cells = book.load_sheet(chosen, header_row=None, skip_rows=0, dtypes="string").to_polars()
    cells = cells.with_row_index("_line", offset=1)
    values = [c for c in cells.columns if c != "_line"]
    filled = cells.filter(pl.any_horizontal(pl.col(values).is_not_null() & (pl.col(values) != "")))
    if filled.height < 2:
        raise fail(path, f"sheet {chosen!r} has no data rows under a header", fix="pick the sheet holding the table")
    header_row = filled.row(0)
    names_row = [str(v).strip() if v is not None else f"column_{i + 1}" for i, v in enumerate(header_row[1:])]
    if len(set(names_row)) != len(names_row):
        raise fail(
            path,
            f"sheet {chosen!r}, row {header_row[0]}: the header repeats a column name ({names_row})",
            fix="rename the columns",
        )
    body = filled.slice(1).rename(dict(zip(values, names_row, strict=True)))
    # the same rows typed, for the columns the sheet holds as dates (header row index is 0-based)
    typed = book.load_sheet(chosen, header_row=int(header_row[0]) - 1, skip_rows=0).to_polars()
    typed = typed.with_row_index("_line", offset=int(header_row[0]) + 1).filter(
        pl.col("_line").is_in(body.get_column("_line").implode())
    )
    columns = []
    for name, typed_name in zip(names_row, typed.columns[1:], strict=False):
        text, kept = body.get_column(name), typed.get_column(typed_name)
        if (kept.dtype == pl.Date or isinstance(kept.dtype, pl.Datetime)) and kept.null_count() == text.null_count():
            kept = kept.cast(pl.Datetime("us"))
            present = kept.drop_nulls()
            if present.len() and bool((present.dt.truncate("1d") == present).all()):
                kept = kept.cast(pl.Date)
            elif present.len() and bool(present.dt.date().is_in(_NO_DATE).all()):
                kept = kept.dt.time()  # times of day: Excel stores them on its epoch's first day
            columns.append(kept.alias(name))
        else:
            columns.append(text)
    frame = body.with_columns(columns).with_columns(pl.col("_line").cast(pl.UInt32))
    frame = frame.select(*names_row, "_line")
    also = f" (it has {names})" if len(names) > 1 else ""
    return Table(frame, [f"read sheet {chosen!r} of the Excel workbook{also}"])


def _read_text(
    path: Path,
    *,
    encodings: Sequence[str],
    encoding_note: str,
    separator: str | None,
    fallback_separator: str | None,
    comment_prefixes: Sequence[str],
    header: bool | None,
    what: str,
    separator_option: str,
) -> Table:
    text, used = read_text(path, encodings=encodings)
    notes = [] if used == "utf-8" else [encoding_note.format(encoding=used)]
    prefixes = tuple(p for p in comment_prefixes if p)
    kept: list[tuple[int, str]] = []
    skipped = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if prefixes and line.lstrip().startswith(prefixes):
            skipped += 1
            continue
        kept.append((number, line))
    if skipped:
        notes.append(f"skipped {skipped} comment line(s) starting with {' or '.join(map(repr, prefixes))}")
    if not kept:
        raise fail(path, "holds only comment lines", fix="check comment_prefixes= and that the file has data rows")
    sep = _separator(path, kept[0][1], separator, what, separator_option)
    if separator is None and sep is None:
        sep = fallback_separator
    first_fields = _split(kept[0][1], sep)
    if header is None:
        header = not all(_NUMBER.match(f) for f in first_fields)
    if sep is None:
        frame = _whitespace_frame(path, kept, header, separator_option, bool(prefixes))
        notes.append("columns separated by whitespace")
    else:
        body = kept if header else [(0, sep.join(f"column_{i + 1}" for i in range(len(first_fields)))), *kept]
        frame = read_delimited(path, "\n".join(line for _, line in body), separator=sep, what=f"{what} file")
        if sep != ",":
            notes.append(f"columns separated by {sep!r}")
        numbers = [n for n, _ in body[1:]]
        if frame.height == len(numbers):
            frame = frame.with_columns(pl.Series("_line", numbers, dtype=pl.UInt32))
        else:  # a quoted field spans lines: count rows from the header instead
            frame = frame.with_row_index("_line", offset=body[0][0] + 1)
    if not header:
        notes.append(f"no header line: columns named column_1 ... column_{len(first_fields)}")
    return Table(frame, notes, headerless=not header)


# -- helpers ---------------------------------------------------------------------------------


def _named(path: Path, table: Table, column_names: Sequence[str] | None) -> Table:
    if column_names is None:
        return table
    names = list(column_names)
    if len(names) != len(table.columns) or len(set(names)) != len(names):
        raise ConfigError(
            f"{path.name}: column_names={names} does not name the file's {len(table.columns)} columns once each",
            fix=f"give {len(table.columns)} distinct names, in the file's order",
        )
    table.frame = table.frame.rename(dict(zip(table.columns, names, strict=True)))
    return table


def _separator(path: Path, first: str, separator: str | None, what: str, option: str) -> str | None:
    if separator is None:
        return sniff_separator(first)
    if separator in _WHITESPACE:
        return None
    if len(separator) != 1 or separator in '\n\r"':
        raise ConfigError(
            f"{what} {path.name}: {option}={separator!r} is not a separator",
            fix=f"pass {option}= one character such as ',', '\\t', ';', '|', or 'whitespace'",
        )
    return separator


def _split(line: str, sep: str | None) -> list[str]:
    return [f.strip().strip('"') for f in (line.split() if sep is None else line.split(sep))]


def _whitespace_frame(
    path: Path, kept: list[tuple[int, str]], header: bool, option: str, comments: bool
) -> pl.DataFrame:
    rows = [(n, line.split()) for n, line in kept]
    names = rows[0][1] if header else [f"column_{i + 1}" for i in range(len(rows[0][1]))]
    data = rows[1:] if header else rows
    for number, fields in data:
        if len(fields) != len(names):
            raise fail(
                path,
                f"line {number}: expected {len(names)} whitespace-separated fields, got {len(fields)}",
                fix=f"every row needs as many fields as the first; pass {option}= if the columns are separated "
                "otherwise" + (", or comment_prefixes= if this is a comment line" if comments else ""),
            )
    if not data:
        raise fail(path, "has a header but no data rows", fix="download the file again with data in it")
    columns = {name: [fields[i] for _, fields in data] for i, name in enumerate(names)}
    if len(columns) != len(names):
        raise fail(path, f"line {rows[0][0]}: the header repeats a column name ({names})", fix="rename the columns")
    return pl.DataFrame(columns).with_columns(pl.Series("_line", [n for n, _ in data], dtype=pl.UInt32))
