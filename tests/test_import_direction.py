"""Dependencies flow one way (docs/architecture.md, ../shared/STYLE.md rule 1).

- ``core`` imports nothing of ours.
- ``forecasting``, ``anomaly`` and ``hazards`` (libraries) import only ``core``.
- ``alerts`` imports only ``core`` (its modules are pure).
- ``warehouse`` imports only ``core``.
- ``ingest`` (parsers, connectors, batch loading) imports ``core`` and ``warehouse``.
- ``dashboards`` may read through ``warehouse`` but never imports a model folder; of
  ``ingest`` it imports only ``ingest.preview`` (the upload preview: it reads a file and a
  read snapshot, and writes nothing), never the loading machinery.
- ``pipelines`` wires everything and may import all of the above, except ``dashboards``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"core", "forecasting", "anomaly", "hazards", "alerts", "warehouse", "ingest", "pipelines", "dashboards"}

# package -> packages of ours it must not import
FORBIDDEN = {
    "core": OURS - {"core"},
    "forecasting": {"warehouse", "pipelines", "dashboards", "alerts", "anomaly", "hazards"},
    "anomaly": {"warehouse", "pipelines", "dashboards", "alerts", "forecasting", "hazards"},
    "hazards": {"warehouse", "ingest", "pipelines", "dashboards", "alerts", "forecasting", "anomaly"},
    "alerts": {"warehouse", "pipelines", "dashboards", "forecasting", "anomaly", "hazards"},
    "warehouse": {"pipelines", "dashboards", "forecasting", "anomaly", "hazards", "alerts", "ingest"},
    "ingest": {"pipelines", "dashboards", "forecasting", "anomaly", "hazards", "alerts"},
    "dashboards": {"forecasting", "anomaly", "hazards", "pipelines", "ingest"},
    "pipelines": {"dashboards"},
}
# package -> modules of a forbidden package it may import all the same
ALLOWED_MODULES = {"dashboards": {"ingest.preview"}}


def imported_modules(source: str) -> set[str]:
    """Full module names a module imports (absolute imports, any depth in the file)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def imported_packages(source: str) -> set[str]:
    """Top-level package names a module imports (absolute imports, any depth in the file)."""
    return {name.split(".")[0] for name in imported_modules(source)}


def find_violations(root: Path) -> list[str]:
    violations = []
    for package, forbidden in FORBIDDEN.items():
        allowed = ALLOWED_MODULES.get(package, set())
        for path in sorted((root / package).rglob("*.py")):
            modules = imported_modules(path.read_text(encoding="utf-8")) - allowed
            bad = {name.split(".")[0] for name in modules} & forbidden
            for name in sorted(bad):
                violations.append(f"{path.relative_to(root)} imports {name}")
    return violations


def test_project_imports_flow_one_way() -> None:
    assert find_violations(ROOT) == []


def test_library_folders_exist() -> None:
    for package in FORBIDDEN:
        assert (ROOT / package / "__init__.py").is_file(), package


@pytest.mark.parametrize(
    ("package", "line"),
    [
        ("forecasting", "from warehouse import Warehouse"),
        ("anomaly", "import pipelines.cli"),
        ("hazards", "from anomaly.changepoints import shift_scores"),
        ("anomaly", "import hazards.earthquakes"),
        ("core", "import forecasting"),
        ("dashboards", "from anomaly import grade"),
        ("dashboards", "import forecasting.statistical as fs"),
        ("dashboards", "from ingest.batches import ingest_file"),
        ("dashboards", "import ingest"),
    ],
)
def test_checker_catches_a_wrong_way_import(tmp_path: Path, package: str, line: str) -> None:
    for name in FORBIDDEN:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / package / "bad.py").write_text(f"def f():\n    {line}\n")
    violations = find_violations(tmp_path)
    assert len(violations) == 1 and violations[0].startswith(f"{package}/bad.py imports")


def test_dashboards_may_import_the_upload_preview_and_nothing_else_of_ingest(tmp_path: Path) -> None:
    for name in FORBIDDEN:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "dashboards" / "page.py").write_text("from ingest.preview import preview_bytes\n")
    assert find_violations(tmp_path) == []
    (tmp_path / "dashboards" / "page.py").write_text("from ingest.preview import x\nfrom ingest.rules import y\n")
    assert find_violations(tmp_path) == ["dashboards/page.py imports ingest"]
