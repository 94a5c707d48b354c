"""The DuckDB warehouse: schema, migrations and every SQL statement of the engine."""

from warehouse.migrations import CURRENT_VERSION, MIGRATIONS
from warehouse.store import LEVELS, Warehouse

__all__ = ["Warehouse", "LEVELS", "CURRENT_VERSION", "MIGRATIONS"]
