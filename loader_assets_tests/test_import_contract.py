"""The import contract of the package's rooms: Dagster only in `defs/` (and the entry point), catalog SQL only
below `defs/` and `engine/`, and no room reaching up past its neighbour.

Read from the source (ast), so a violation shows even in code no test imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "loader_assets"

# room -> top-level names its modules must not import (a room is a sub-package or a top-level module)
FORBIDDEN = {
    "qserv": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.workers", "loader_assets.engine",
              "loader_assets.selection", "loader_assets.defs"},
    "workers": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.engine", "loader_assets.selection",
                "loader_assets.defs"},
    "catalog": {"dagster", "loader_assets.workers", "loader_assets.engine", "loader_assets.selection",
                "loader_assets.defs"},
    "selection": {"dagster", "loader_assets.workers", "loader_assets.engine", "loader_assets.defs"},
    "engine": {"dagster", "sqlalchemy", "loader_assets.defs", "loader_assets.selection"},
    "defs": {"sqlalchemy"},
    "levels": {"dagster", "sqlalchemy"},
    "tags": {"dagster", "sqlalchemy"},
    "settings": {"dagster", "sqlalchemy"},
    "problems": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.workers", "loader_assets.engine",
                 "loader_assets.selection", "loader_assets.defs"},
    "capacity": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.workers", "loader_assets.engine",
                 "loader_assets.selection", "loader_assets.defs"},
    "doctor": {"dagster", "sqlalchemy", "loader_assets.engine", "loader_assets.selection", "loader_assets.defs"},
}  # fmt: skip


def imported_names(source: str) -> set[str]:
    """Every module a source file imports, at any depth (lazy imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(package: Path, forbidden: dict[str, set[str]]) -> list[str]:
    """`file: imports X` for every import a room must not make."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        room = relative.parts[0].removesuffix(".py")
        banned = forbidden.get(room, set())
        for name in sorted(imported_names(path.read_text())):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{relative}: imports {name}")
    return found


def test_the_package_keeps_its_import_contract() -> None:
    assert violations(PACKAGE, FORBIDDEN) == []


def test_every_room_is_under_contract() -> None:
    rooms = {p.stem for p in PACKAGE.iterdir() if not p.name.startswith("__") and (p.is_dir() or p.suffix == ".py")}
    rooms -= {"definitions", "cli", "notebook"}  # the entry points: they wire the rooms together
    assert rooms <= set(FORBIDDEN), f"rooms without a contract: {sorted(rooms - set(FORBIDDEN))}"


@pytest.mark.parametrize(
    ("room", "line"),
    [
        ("engine", "import dagster as dg"),
        ("engine", "from sqlalchemy import select"),
        ("defs", "from sqlalchemy import select"),
        ("catalog", "from dagster import AssetKey"),
        ("workers", "from loader_assets.catalog.store import Store"),
        ("selection", "def later():\n    from loader_assets.defs.runs import InstanceRuns"),
    ],
)
def test_a_deliberate_violation_is_caught(tmp_path: Path, room: str, line: str) -> None:
    (tmp_path / room).mkdir()
    (tmp_path / room / "bad.py").write_text(line + "\n")
    [violation] = violations(tmp_path, FORBIDDEN)
    assert violation.startswith(f"{room}/bad.py: imports ")
