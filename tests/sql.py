"""Raw SQL on a warehouse, for tests only.

Production code reaches the warehouse only through the named functions of ``warehouse/``: the
raw-SQL entry points of :class:`warehouse.Warehouse` are private, and
tests/test_sql_location.py fails on SQL text outside ``warehouse/``. Tests may still look at
(or arrange) the tables directly, and they do it through this one module. Values are bound
parameters (``?``), as in the warehouse.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from warehouse import Warehouse

__all__ = ["sql_frame", "sql_rows"]


def sql_frame(wh: Warehouse, sql: str, *params: Any) -> pl.DataFrame:
    """The result of one query as a polars frame."""
    return wh._frame(sql, params)


def sql_rows(wh: Warehouse, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement; its whole result as a list of row tuples."""
    return wh._execute(sql, params)
