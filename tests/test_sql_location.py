"""SQL lives only in ``warehouse/`` (docs/architecture.md, ../shared/STYLE.md rule 1).

Every other package reaches the database through the named functions of ``warehouse/``. This
test scans each of their ``.py`` files (the AST, so comments do not count) for

- a string literal holding an SQL statement (``SELECT ... FROM``, ``INSERT INTO``,
  ``UPDATE ... SET``, ``DELETE FROM``, ``CREATE``/``ALTER``/``DROP TABLE``, ``ON CONFLICT``;
  f-strings with their literal parts); docstrings may describe SQL and are skipped;
- a use of the private raw-SQL entry points of :class:`warehouse.Warehouse` (``._execute``,
  ``._frame``, ``._registered``, ``._upsert``, ``._upsert_rows``, ``._con``) on anything but
  ``self``.

Like tests/test_import_direction.py, it also checks its own checker on planted violations.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Packages that must hold no SQL (``hazards`` once that room exists).
PACKAGES = ("core", "forecasting", "anomaly", "hazards", "alerts", "ingest", "pipelines", "dashboards")

#: Files allowed to break the rule: none. A file put here as known debt must name what removes
#: it (test_allowed_files_still_need_it fails once it is clean).
ALLOWED: set[str] = set()

#: Warehouse internals no other package may touch.
PRIVATE = {"_execute", "_frame", "_registered", "_upsert", "_upsert_rows", "_con"}

# SELECT ... FROM in capitals only (prose says "select ... from"); the others in any case.
_SQL = re.compile(
    r"\bSELECT\b.+?\bFROM\b"
    r"|(?i:\bINSERT\s+(?:OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(?:CREATE|ALTER|DROP)\s+(?:OR\s+REPLACE\s+)?(?:TEMP\w*\s+)?(?:TABLE|VIEW|INDEX|SEQUENCE)\b"
    r"|\bON\s+CONFLICT\b)",
    re.DOTALL,
)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                found.add(id(first.value))
    return found


def sql_violations(source: str) -> list[tuple[int, str]]:
    """(line, what) for each SQL string literal and each private raw-SQL use in ``source``."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    inside_fstring = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found = set()
    for node in ast.walk(tree):
        text = None
        if isinstance(node, ast.JoinedStr):
            text = "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in node.values)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and id(node) not in inside_fstring
        ):
            text = node.value
        if text is not None and (match := _SQL.search(text)):
            statement = match.group(0)
            found.add((node.lineno, f"SQL {statement.split()[0].upper()}: {statement[:40]!r}"))
        if (
            isinstance(node, ast.Attribute)
            and node.attr in PRIVATE
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.add((node.lineno, f"uses the warehouse's private .{node.attr}"))
    return sorted(found)


def find_violations(root: Path, allowed: Collection[str] = ()) -> list[str]:
    violations = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            if name in allowed:
                continue
            for line, what in sql_violations(path.read_text(encoding="utf-8")):
                violations.append(f"{name}:{line} {what}")
    return violations


def test_no_sql_outside_the_warehouse() -> None:
    assert find_violations(ROOT, ALLOWED) == []


def test_allowed_files_still_need_it() -> None:
    for name in ALLOWED:
        path = ROOT / name
        assert path.is_file() and sql_violations(path.read_text(encoding="utf-8")), (
            f"{name} no longer holds SQL: delete it from ALLOWED"
        )


def test_the_checker_sees_the_warehouse_statements() -> None:
    # run on warehouse/ (where SQL belongs), the checker finds every kind of statement there,
    # so its patterns match the SQL this engine really writes
    kinds = {
        what.split()[1].rstrip(":")
        for path in sorted((ROOT / "warehouse").glob("*.py"))
        for _, what in sql_violations(path.read_text(encoding="utf-8"))
        if what.startswith("SQL ")
    }
    assert {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE"} <= kinds


@pytest.mark.parametrize(
    ("package", "code"),
    [
        ("pipelines", 'ROWS = "SELECT count(*) FROM alerts"'),
        ("alerts", 'def f(wh):\n    wh.run("DELETE FROM judgments WHERE alert_id = ?")'),
        ("ingest", 'def f(table):\n    return f"INSERT INTO {table} SELECT * FROM incoming"'),
        ("core", 'Q = ("UPDATE alerts "\n     "SET level = ? WHERE alert_id = ?")'),
        ("forecasting", 'DDL = "create table t (a INTEGER)"'),
        ("anomaly", 'Q = "... on conflict (a) do nothing"'),
        ("hazards", 'Q = """\n    SELECT ds, y\n    FROM observations\n"""'),
        ("dashboards", "def f(wh):\n    return wh._frame(QUERY)"),
        ("pipelines", "def f(wh):\n    with wh._registered('x', frame):\n        pass"),
    ],
)
def test_checker_catches_sql_outside_the_warehouse(tmp_path: Path, package: str, code: str) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
    (tmp_path / package / "bad.py").write_text(code + "\n")
    violations = find_violations(tmp_path)
    assert len(violations) == 1 and violations[0].startswith(f"{package}/bad.py:")
    assert find_violations(tmp_path, {f"{package}/bad.py"}) == []


def test_checker_leaves_prose_docstrings_and_own_attributes_alone(tmp_path: Path) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
    (tmp_path / "pipelines" / "fine.py").write_text(
        '"""Writes with one ``INSERT ... SELECT ... FROM incoming ON CONFLICT`` (see warehouse)."""\n'
        'HELP = "select a model from the list, then update the settings"\n'
        "class Cache:\n"
        "    def get(self):\n"
        "        return self._frame\n"
    )
    assert find_violations(tmp_path) == []
