"""The vocabulary is defined once, in ``core/vocabulary.py`` (../shared/STYLE.md, "One vocabulary").

Warning levels, alert statuses, release states, verdicts, roles and domains are enums there;
every other module imports them. The checker below walks the source of every package outside
``core/`` and fails on a tuple, list, set or dict (keys or values) spelled out of those values:
one whose text elements are two or more names of one vocabulary and nothing else, or one that
lists every name of a vocabulary among other words. SQL text is a string, not a collection, so
``warehouse/`` may keep literal values inside its SQL. The checker checks itself on planted
copies, as tests/test_import_direction.py does.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from core.vocabulary import (
    LEVEL_NAMES,
    LEVEL_RANK,
    WARNING_LEVEL_NAMES,
    WARNING_LEVELS,
    AlertStatus,
    Domain,
    Level,
    ReleaseState,
    Role,
    Verdict,
    per_level,
)

ROOT = Path(__file__).resolve().parent.parent

VOCABULARIES: dict[str, frozenset[str]] = {
    "warning levels": frozenset(LEVEL_NAMES),
    "alert statuses": frozenset(AlertStatus.values()),
    "release states": frozenset(ReleaseState.values()),
    "verdicts": frozenset(Verdict.values()),
    "roles": frozenset(Role.values()),
    "domains": frozenset(Domain.values()),
}
#: A collection that holds all of these (even among other words) copies the vocabulary.
_COMPLETE = {
    "warning levels": frozenset(WARNING_LEVEL_NAMES),
    "alert statuses": VOCABULARIES["alert statuses"],
    "roles": VOCABULARIES["roles"],
    "domains": VOCABULARIES["domains"],
}


def _texts(nodes: list[ast.expr | None]) -> list[str] | None:
    """The string constants of a collection's elements, or None if it holds anything else."""
    texts = []
    for node in nodes:
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            return None
        texts.append(node.value)
    return texts


def _copied(nodes: list[ast.expr | None]) -> str | None:
    """The vocabulary a collection's elements spell out, if they do."""
    strings = [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    texts = _texts(nodes)
    for name, words in VOCABULARIES.items():
        if texts is not None and len(set(texts)) >= 2 and set(texts) <= words:
            return name
        if name in _COMPLETE and _COMPLETE[name] <= set(strings):
            return name
    return None


def vocabulary_copies(source: str) -> list[tuple[int, str]]:
    """(line, vocabulary) of every collection in ``source`` that spells out a vocabulary."""
    found = []
    for node in ast.walk(ast.parse(source)):
        groups: list[list[ast.expr | None]] = []
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            groups.append(list(node.elts))
        elif isinstance(node, ast.Dict):
            groups += [[k for k in node.keys if k is not None], list(node.values)]
        for group in groups:
            name = _copied(group)
            if name is not None:
                found.append((node.lineno, name))
                break
    return found


def find_copies(root: Path) -> list[str]:
    """Every vocabulary copy in the packages under ``root`` other than ``core`` (and tests)."""
    packages = sorted(p.parent for p in root.glob("*/__init__.py") if p.parent.name not in ("core", "tests"))
    if (root / "benchmarks").is_dir():
        packages.append(root / "benchmarks")
    copies = []
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            for line, name in vocabulary_copies(path.read_text(encoding="utf-8")):
                copies.append(
                    f"{path.relative_to(root)}:{line} spells out the {name}; import them from core.vocabulary"
                )
    return copies


def test_the_vocabulary_is_defined_once() -> None:
    assert find_copies(ROOT) == []


@pytest.mark.parametrize(
    ("line", "vocabulary"),
    [
        ('LEVELS = ("blue", "yellow", "orange", "red")', "warning levels"),
        ('ORDER = ["none", "blue", "yellow", "orange", "red"]', "warning levels"),
        ('HIGH = frozenset({"orange", "red"})', "warning levels"),
        ('ZH = {"红色": "red", "蓝色": "blue"}', "warning levels"),
        ('ALLOWED = frozenset({"ai", "cap", "red", "orange", "yellow", "blue"})', "warning levels"),
        ('closed = status in ("expired", "resolved", "cancelled")', "alert statuses"),
        ('STATES = ("pending", "released", "rejected", "suppressed")', "release states"),
        ('GRANTS = {"viewer": 1, "analyst": 2, "duty_officer": 3, "admin": 4}', "roles"),
        ('TABS = {"seismic": "Seismic", "hydro": "Rivers"}', "domains"),
        ('CHOICES = ["confirmed", "false_alarm"]', "verdicts"),
    ],
)
def test_checker_catches_a_planted_copy(tmp_path: Path, line: str, vocabulary: str) -> None:
    for name in ("core", "alerts", "pipelines"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "core" / "vocabulary.py").write_text(f"def f():\n    {line}\n")  # core may
    (tmp_path / "alerts" / "ok.py").write_text(
        'A = ("open", "closed")\nB = ("blue",)\nC = {"level": "red", "status": "open"}\n'
        'D = ("pending", "delivered", "dead")\nE = "CASE level WHEN \'red\' THEN 4 WHEN \'blue\' THEN 1 END"\n'
    )
    (tmp_path / "pipelines" / "bad.py").write_text(f"def f():\n    {line}\n")
    copies = find_copies(tmp_path)
    assert copies == [f"pipelines/bad.py:2 spells out the {vocabulary}; import them from core.vocabulary"]


def test_levels_keep_their_names_order_and_numerals() -> None:
    assert LEVEL_NAMES == ("none", "blue", "yellow", "orange", "red")
    assert WARNING_LEVELS == (Level.BLUE, Level.YELLOW, Level.ORANGE, Level.RED)
    assert LEVEL_RANK == {"none": 0, "blue": 1, "yellow": 2, "orange": 3, "red": 4}
    assert [(lv.roman, lv.zh) for lv in WARNING_LEVELS] == [
        ("IV", "蓝色"),
        ("III", "黄色"),
        ("II", "橙色"),
        ("I", "红色"),
    ]
    assert Level.parse("Orange") is Level.ORANGE


def test_text_vocabularies_behave_as_the_stored_strings() -> None:
    assert AlertStatus.values() == ("open", "resolved", "expired", "cancelled")
    assert ReleaseState.values() == ("pending", "released", "rejected", "suppressed")
    assert Verdict.values() == ("confirmed", "false_alarm")
    assert Role.values() == ("viewer", "analyst", "duty_officer", "admin")
    assert [r.rank for r in Role] == [0, 1, 2, 3]
    assert Domain.values() == ("market", "seismic", "geodetic", "hydro", "satellite")
    assert AlertStatus.OPEN == "open" and f"{AlertStatus.OPEN}" == "open" and str(Domain.HYDRO) == "hydro"
    assert {AlertStatus.OPEN: 1}["open"] == 1


def test_a_per_level_table_must_name_every_warning_level() -> None:
    assert list(per_level(red=1, orange=2, yellow=3, blue=4)) == ["red", "orange", "yellow", "blue"]
    assert list(per_level(none=0, blue=1, yellow=2, orange=3, red=4)) == list(LEVEL_NAMES)
    with pytest.raises(Exception, match=r"unknown level\(s\) \['purple'\] and lacks \['red'\]"):
        per_level(blue=1, yellow=2, orange=3, purple=4)


def test_the_control_store_checks_the_same_roles() -> None:
    from warehouse import users

    check = re.search(r"role IN \(([^)]*)\)", users._SCHEMA[0])
    assert check is not None
    assert tuple(v.strip().strip("'") for v in check.group(1).split(",")) == Role.values()
