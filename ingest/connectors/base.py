"""What every connector shares: the :class:`Fetch` it returns and checked access to its settings.

A connector is ``fetch(spec, *, client, watermarks, now, environ) -> list[Fetch]``:
it reads its ``[ingest.sources.NAME]`` table (``spec``), the committed watermarks of the
source, and the clock value it is given, talks HTTP through ``client``, and returns one
:class:`Fetch` per batch to commit, in order. It never touches the warehouse: the loader
commits each batch together with the watermark the fetch carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import ConfigError
from ingest.batches import RawFile

__all__ = ["Fetch", "Spec"]


@dataclass(frozen=True)
class Fetch:
    """One batch to commit: files in ``fmt``, parser options, and the watermark to store with it."""

    files: Sequence[RawFile]
    fmt: str
    options: dict[str, Any]
    location: str
    watermark: tuple[str, str] | None = None  # (key, value)
    window: tuple[datetime, datetime] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


#: keys of any source's table that are options of the parse (``ingest.sources.parse``), passed
#: to every batch the source lands: physical bounds, when values become known, and the regions
#: that place stations (connectors with regional series take ``regions`` themselves)
PARSE_OPTIONS = ("bounds", "available_after", "regions")


class Spec:
    """A source's settings table with typed, explained access (unknown keys are errors)."""

    def __init__(self, name: str, table: Mapping[str, Any], *, known: Sequence[str]) -> None:
        self.name = name
        self.table = dict(table)
        allowed = set(known) | {"kind", "cron", "url", *PARSE_OPTIONS}
        unknown = sorted(set(self.table) - allowed)
        if unknown:
            raise ConfigError(
                f"[ingest.sources.{name}] has unknown key(s) {unknown}",
                fix=f"keys of kind {self.table.get('kind')!r}: {sorted(allowed)}",
            )

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    def require(self, key: str, example: str) -> Any:
        if key not in self.table or self.table[key] in ("", None, []):
            raise ConfigError(f"[ingest.sources.{self.name}] needs {key}", fix=f"add {key} = {example}")
        return self.table[key]

    def date(self, key: str, default: str | None = None) -> datetime:
        text = self.table.get(key, default)
        if text is None:
            raise ConfigError(f"[ingest.sources.{self.name}] needs {key}", fix=f'add {key} = "2020-01-01"')
        try:
            return datetime.fromisoformat(str(text))
        except ValueError:
            raise ConfigError(
                f"[ingest.sources.{self.name}] {key} = {text!r} is not an ISO date", fix=f'write {key} = "2020-01-01"'
            ) from None
