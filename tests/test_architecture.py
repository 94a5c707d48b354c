"""docs/architecture.md is true: its room table names every package, no room holds more than
30% of the lines, and its schema table lists exactly the tables the migrations create."""

from __future__ import annotations

import re
from pathlib import Path

from warehouse import Warehouse
from warehouse.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
#: The folders whose lines the 30% rule counts (a folder not yet created counts zero).
CODE_FOLDERS = (
    "core",
    "forecasting",
    "anomaly",
    "hazards",
    "alerts",
    "warehouse",
    "ingest",
    "pipelines",
    "dashboards",
    "benchmarks",
)
SHARE_CEILING = 0.30


def _section(text: str, title: str) -> str:
    """The body of ``## title`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"docs/architecture.md has no '## {title}' section"
    return match.group(1)


def _table_rows(section: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``section``, as stripped cells."""
    rows = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return [row for row in cells[2:] if row]  # skip the header and the |---| line


def documented_tables(text: str) -> dict[str, set[str]]:
    """Schema table of the doc: version ('1', '2', ..., or '–' for the ledger) -> table names."""
    rows = _table_rows(_section(text, "Schema versions"))
    return {row[0]: set(re.findall(r"`(\w+)`", row[2])) for row in rows}


def line_counts(root: Path, folders: tuple[str, ...] = CODE_FOLDERS) -> dict[str, int]:
    """Lines of the ``*.py`` files under each folder of ``root``."""
    return {
        name: sum(len(path.read_text(encoding="utf-8").splitlines()) for path in (root / name).rglob("*.py"))
        for name in folders
    }


def oversized(counts: dict[str, int], ceiling: float = SHARE_CEILING) -> dict[str, float]:
    """Folders holding more than ``ceiling`` of all the lines, with their share."""
    total = sum(counts.values())
    return {name: round(n / total, 3) for name, n in counts.items() if n > ceiling * total}


def test_the_documented_tables_are_those_of_a_fresh_warehouse(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = documented_tables(text)
    with Warehouse.open(tmp_path / "fresh.duckdb") as wh:
        tables = set(wh.tables())
    assert set().union(*documented.values()) == tables
    stated = re.search(r"(\d+) tables", _section(text, "Schema versions"))
    assert stated and int(stated.group(1)) == len(tables)


def test_each_documented_version_creates_what_its_migration_creates() -> None:
    documented = documented_tables(DOC.read_text(encoding="utf-8"))
    created = {
        str(m.version): set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", "\n".join(m.statements)))
        for m in MIGRATIONS
    }
    assert {version: names for version, names in documented.items() if version.isdigit()} == created


def test_every_package_is_in_the_room_table() -> None:
    listed = {row[0].strip("`").rstrip("/") for row in _table_rows(_section(DOC.read_text(encoding="utf-8"), "Rooms"))}
    packages = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}
    assert packages <= listed, f"not in docs/architecture.md's room table: {sorted(packages - listed)}"


def test_no_room_holds_more_than_30_percent_of_the_lines() -> None:
    counts = line_counts(ROOT)
    assert oversized(counts) == {}, f"lines per folder: {counts}"


def test_the_share_check_flags_a_room_that_is_too_big(tmp_path: Path) -> None:
    for name, lines in {"core": 10, "pipelines": 50, "ingest": 40}.items():
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "m.py").write_text("x = 1\n" * lines, encoding="utf-8")
    counts = line_counts(tmp_path, ("core", "pipelines", "ingest", "hazards"))
    assert counts == {"core": 10, "pipelines": 50, "ingest": 40, "hazards": 0}
    assert oversized(counts) == {"pipelines": 0.5, "ingest": 0.4}


def test_no_script_shadows_a_room() -> None:
    """A benchmark runs with benchmarks/ first on sys.path: a script named like a room (once
    benchmarks/ingest.py) hides that package from every other benchmark."""
    rooms = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    for folder in ("benchmarks", "tests"):
        clashes = sorted(p.stem for p in (ROOT / folder).glob("*.py") if p.stem in rooms)
        assert clashes == [], f"{folder}/ scripts named like a package: {clashes}; rename them"


def _bare_helper_imports(tests_dir: Path) -> list[str]:
    """Lines of test files that import a helper module of ``tests/`` by its bare name."""
    helpers = {p.stem for p in tests_dir.glob("*.py") if not p.stem.startswith(("test_", "__"))}
    pattern = re.compile(rf"^\s*(from|import) ({'|'.join(sorted(helpers))})\b", re.M)
    return [
        f"{p.name}: {m.group(0).strip()}"
        for p in sorted(tests_dir.glob("*.py"))
        for m in pattern.finditer(p.read_text())
    ]


def test_test_helpers_are_imported_through_the_tests_package(tmp_path: Path) -> None:
    # a bare `from sql import ...` finds nothing once tests/ is a package (it is one, so that a
    # site-packages `tests`, which mlforecast installs, cannot shadow it): `from tests.sql import`
    assert _bare_helper_imports(ROOT / "tests") == []
    (tmp_path / "sql.py").write_text("X = 1\n")
    (tmp_path / "test_x.py").write_text("from sql import X\nfrom tests.sql import X\n")
    assert _bare_helper_imports(tmp_path) == ["test_x.py: from sql"]
