"""Fixtures shared by several test files (pytest finds them here by name), and the list of
slow tests.

Plain helpers the tests import live beside this file as modules of their own (``fred_series``,
``dashboard_home``, ``replay_server``, ``llm_endpoint``, ``sql``), imported as ``tests.<name>``:
``tests`` is a regular package (``__init__.py``), so the project's folder wins over a
``tests`` package that a dependency installs into site-packages (mlforecast 1.1 ships one; a
folder without ``__init__.py`` is only a namespace portion and loses to it).
"""

from __future__ import annotations

import polars as pl
import pytest

from tests.fred_series import load_fred

#: Tests that take tens of seconds each on two cores (``pytest --durations``), marked ``slow``
#: here so the figures stay in one place; ``make test-fast`` leaves them out, ``make test`` runs
#: them. A file mapped to None is slow as a whole. The kinds (notebooks, browser, dask, chronos)
#: are marked in their own files.
SLOW: dict[str, frozenset[str] | None] = {
    # runs `ews demo` once for the module (~70 s), then goes live (~27 s)
    "test_demo.py": None,
    # the first of these builds the session's demo home (~45-75 s, tests/dashboard_home.py);
    # the role-by-action matrix alone takes ~15 s
    "test_dashboard_cli.py": None,
    "test_dashboard_pages.py": None,
    "test_dashboard_concurrency.py": None,
    "test_dashboard_preview.py": None,
    # fits both layers of the injection screen on 600 rows (~70 s); rebuilds the shipped
    # weights from the bundled set (~4 min alone, ~10 min on shared cores)
    "test_guardrails.py": frozenset(
        {
            "test_training_pipeline_fits_a_working_screen_from_bundled_rows",
            "test_the_shipped_weights_are_what_train_from_bundled_builds",
        }
    ),
    # cycles the bundled FRED series four times over, chunked/unchunked and 1/2 workers (~60 s;
    # the spawned pool imports the engine in each worker)
    "test_cycle_chunks.py": None,
    # kills ingest runs at random points and reruns them (~45 s)
    "test_ingest_crash.py": frozenset({"test_sigkill_at_random_points_never_half_commits_and_a_rerun_converges"}),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name not in SLOW:
            continue
        names = SLOW[item.path.name]
        if names is None:
            item.add_marker(pytest.mark.slow)
            continue
        missing = sorted(n for n in names if not hasattr(getattr(item, "module", None), n))
        if missing:  # a renamed test would otherwise quietly join `make test-fast`
            raise pytest.UsageError(f"tests/conftest.py SLOW names {missing} that {item.path.name} does not define")
        if getattr(item, "originalname", item.name) in names:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def dgs10() -> pl.DataFrame:
    """The 10-year Treasury yield, the last 800 business days (tests/data/fred_DGS10_last800.csv)."""
    return load_fred("fred_DGS10_last800.csv", "DGS10")
