"""Reading a table file into text columns with the file's own line numbers (the ``table``
format's first half; :mod:`ingest.sources.table` turns the columns into series).

Delimited text (``,`` ``\t`` ``;`` ``|`` or whitespace; comment lines and blank lines
skipped; UTF-8, GBK or cp1252), Excel sheets (openpyxl, imported lazily) and Parquet.
"""

from __future__ import annotations

import datetime
import importlib.util
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from core.errors import ConfigError
from ingest.sources._common import fail, read_delimited, read_text

__all__ = ["Table", "read_table"]

_SEPARATORS = {",": ",", "\t": "\t", ";": ";", "|": "|", "whitespace": None, " ": None}
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


@dataclass
class Table:
    """A file read into a frame: text (or typed, for Parquet and Excel) columns plus ``_line``,
    each row's line (row, for a sheet) in the file."""

    frame: pl.DataFrame
    notes: list[str] = field(default_factory=list)
    headerless: bool = False

    @property
    def columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != "_line"]


# -- reading -----------------------------------------------------------------------------------


def read_table(
    path: Path,
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    separator: str | None = None,
    comment_prefixes: Sequence[str] = ("#", "HDR", "%"),
    header: bool | None = None,
    column_names: Sequence[str] | None = None,
    what: str = "table",
) -> Table:
    """Read ``path`` (text, Excel or Parquet) into a :class:`Table`."""
    path = Path(path)
    if not path.is_file():
        read_text(path)  # raises the shared "no such file" error
    suffix = path.suffix.lower()
    head = path.read_bytes()[:8]
    if suffix in (".parquet", ".pq") or head[:4] == b"PAR1":
        try:
            frame = pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise fail(path, f"cannot be read as Parquet ({exc})", fix="pass an intact Parquet file") from None
        return _named(path, Table(frame.with_row_index("_line", offset=2), ["read as Parquet"]), column_names)
    if suffix == ".xls":
        raise fail(path, "is a legacy .xls workbook, which openpyxl cannot read", fix="save the sheet as .xlsx or CSV")
    if suffix in (".xlsx", ".xlsm"):
        return _named(path, _read_excel(path, sheet), column_names)
    if sheet is not None:
        raise ConfigError(f"{what} {path.name}: sheet={sheet!r} applies to Excel files only", fix="drop sheet=")
    text, used = read_text(path, encodings=(encoding,) if encoding else ("utf-8", "gbk", "cp1252"))
    notes = [] if used == "utf-8" else [f"decoded as {used}"]
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
    sep = _separator(path, kept[0][1], separator, what)
    first_fields = _split(kept[0][1], sep)
    if header is None:
        header = not all(_NUMBER.match(f) for f in first_fields)
    if sep is None:
        frame = _whitespace_frame(path, kept, header)
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
    table = Table(frame, notes, headerless=not header)
    if not header:
        notes.append(f"no header line: columns named column_1 ... column_{len(first_fields)}")
    return _named(path, table, column_names)


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


def _separator(path: Path, first: str, separator: str | None, what: str) -> str | None:
    if separator is not None:
        if separator not in _SEPARATORS:
            raise ConfigError(
                f"{what} {path.name}: separator={separator!r} is not supported",
                fix="use one of ',', '\\t', ';', '|', 'whitespace'",
            )
        return _SEPARATORS[separator]
    counts = {sep: first.count(sep) for sep in (",", "\t", ";", "|")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else None


def _split(line: str, sep: str | None) -> list[str]:
    return [f.strip().strip('"') for f in (line.split() if sep is None else line.split(sep))]


def _whitespace_frame(path: Path, kept: list[tuple[int, str]], header: bool) -> pl.DataFrame:
    rows = [(n, line.split()) for n, line in kept]
    names = rows[0][1] if header else [f"column_{i + 1}" for i in range(len(rows[0][1]))]
    data = rows[1:] if header else rows
    for number, fields in data:
        if len(fields) != len(names):
            raise fail(
                path,
                f"line {number}: expected {len(names)} whitespace-separated fields, got {len(fields)}",
                fix="every row needs as many fields as the first; pass separator= if the columns are "
                "separated otherwise, or comment_prefixes= if this is a comment line",
            )
    if not data:
        raise fail(path, "has a header but no data rows", fix="download the file again with data in it")
    columns = {name: [fields[i] for _, fields in data] for i, name in enumerate(names)}
    if len(columns) != len(names):
        raise fail(path, f"line {rows[0][0]}: the header repeats a column name ({names})", fix="rename the columns")
    return pl.DataFrame(columns).with_columns(pl.Series("_line", [n for n, _ in data], dtype=pl.UInt32))


def _read_excel(path: Path, sheet: str | int | None) -> Table:
    if importlib.util.find_spec("openpyxl") is None:
        raise ConfigError(
            f"{path.name}: reading an Excel file needs the openpyxl package",
            fix="pip install openpyxl, or save the sheet as CSV",
        )
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, InvalidFileException) as exc:
        raise fail(path, f"cannot be opened as an Excel workbook ({exc})", fix="pass an intact .xlsx file") from None
    names = book.sheetnames
    if sheet is None:
        chosen = names[0]
    elif isinstance(sheet, int) and not isinstance(sheet, bool) and 1 <= sheet <= len(names):
        chosen = names[sheet - 1]
    elif isinstance(sheet, str) and sheet in names:
        chosen = sheet
    else:
        raise ConfigError(
            f"{path.name}: no sheet {sheet!r}; it has {names}", fix="pass sheet= a name or 1-based number"
        )
    rows = list(book[chosen].iter_rows(values_only=True))
    book.close()
    filled = [(i + 1, r) for i, r in enumerate(rows) if any(v not in (None, "") for v in r)]
    if len(filled) < 2:
        raise fail(path, f"sheet {chosen!r} has no data rows under a header", fix="pick the sheet holding the table")
    (_, header), body = filled[0], filled[1:]
    names_row = [str(v).strip() if v is not None else f"column_{i + 1}" for i, v in enumerate(header)]
    columns: dict[str, list[object]] = {name: [] for name in names_row}
    for _, row in body:
        for i, name in enumerate(names_row):
            columns[name].append(row[i] if i < len(row) else None)
    frame = pl.DataFrame(
        {
            name: (pl.Series(name, values) if _all_dates(values) else pl.Series(name, [_text(v) for v in values]))
            for name, values in columns.items()
        }
    ).with_columns(pl.Series("_line", [n for n, _ in body], dtype=pl.UInt32))
    notes = [f"read sheet {chosen!r}" + (f" (the workbook has {names})" if len(names) > 1 else "")]
    return Table(frame, notes)


def _all_dates(values: list[object]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, datetime.date) for v in present)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
