"""Fixtures shared by several test files; pytest finds them here by name.

Plain helpers the tests import live beside this file as modules of their own (``fred_series``,
``dashboard_home``, ``replay_server``, ``llm_endpoint``): pytest puts this folder on
``sys.path``, so no test needs to.
"""

from __future__ import annotations

import polars as pl
import pytest

from fred_series import load_fred


@pytest.fixture(scope="module")
def dgs10() -> pl.DataFrame:
    """The 10-year Treasury yield, the last 800 business days (tests/data/fred_DGS10_last800.csv)."""
    return load_fred("fred_DGS10_last800.csv", "DGS10")
