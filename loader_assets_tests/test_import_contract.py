"""The contract of the package's rooms, read from the source (ast), so a violation shows even in code no test
imports:

- each room reaches only the rooms below it (`operations → defs → engine → selection, catalog, workers → qserv`),
  Dagster only in `defs/` (`operations` reaches it through `defs`), catalog SQL only in `catalog/` and `selection/`;
- no module imports Dagster's private API (`dagster._…`, `dagster_celery._…`, …);
- no module reads the environment but `settings.py`.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "loader_assets"

UPPER = {"loader_assets.defs", "loader_assets.operations"}
# room -> top-level names its modules must not import (a room is a sub-package or a top-level module)
FORBIDDEN = {
    "qserv": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.workers", "loader_assets.engine",
              "loader_assets.selection", *UPPER},
    "workers": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.engine", "loader_assets.selection",
                *UPPER},
    "catalog": {"dagster", "loader_assets.workers", "loader_assets.engine", "loader_assets.selection", *UPPER},
    "selection": {"dagster", "loader_assets.workers", "loader_assets.engine", *UPPER},
    "engine": {"dagster", "sqlalchemy", "loader_assets.selection", *UPPER},
    "defs": {"sqlalchemy", "loader_assets.operations"},
    "operations": {"dagster", "sqlalchemy"},
    "levels": {"dagster", "sqlalchemy"},
    "tags": {"dagster", "sqlalchemy"},
    "settings": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.workers", "loader_assets.engine",
                 "loader_assets.selection", *UPPER},
    "problems": {"dagster", "sqlalchemy", "loader_assets"},
    "wording": {"dagster", "sqlalchemy", "loader_assets"},
    "capacity": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.workers", "loader_assets.engine",
                 "loader_assets.selection", *UPPER},
    "skymap": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.workers", "loader_assets.engine",
               "loader_assets.selection", *UPPER},
    "startup": {"dagster", "sqlalchemy", "loader_assets.catalog", "loader_assets.workers", "loader_assets.engine",
                "loader_assets.selection", *UPPER},  # the console script: it imports the command line, paused
    "alerts": {"dagster", "sqlalchemy", "loader_assets.workers", "loader_assets.engine", "loader_assets.selection",
               *UPPER},
}  # fmt: skip
# file -> imports it may make despite its room: the Dagster instance's own connections (SQLAlchemy's pools inside
# dagster-postgres, the engines of its SQLite files), which are not catalog SQL
EXCEPTIONS = {"defs/instance.py": {"sqlalchemy.engine", "sqlalchemy.event", "sqlalchemy.exc", "sqlalchemy.pool"}}
ENVIRONMENT_READERS = {"settings.py"}  # the one module that reads os.environ / os.getenv


def imported_names(tree: ast.AST) -> set[str]:
    """Every module a source file imports, at any depth (lazy imports inside functions count too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def private_dagster(name: str) -> bool:
    """`dagster._core…`, `dagster_celery._…`: a module of Dagster's (or an integration's) private API."""
    top, *rest = name.split(".")
    return (top == "dagster" or top.startswith("dagster_")) and any(part.startswith("_") for part in rest)


def reads_environment(tree: ast.AST) -> bool:
    """`os.environ`, `os.getenv`, `environ` or `getenv` imported from os, anywhere in the source."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv"):
            return True
        names = {alias.name for alias in node.names} if isinstance(node, ast.ImportFrom) and node.module == "os" else ()
        if set(names) & {"environ", "getenv", "putenv", "unsetenv"}:
            return True
    return False


def violations(package: Path, forbidden: dict[str, set[str]]) -> list[str]:
    """`file: imports X`, `file: private Dagster API X`, `file: reads the environment` for every breach."""
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        room = relative.parts[0].removesuffix(".py")
        banned = forbidden.get(room, set())
        allowed = EXCEPTIONS.get(str(relative), set())
        tree = ast.parse(path.read_text())
        for name in sorted(imported_names(tree)):
            if name not in allowed and any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{relative}: imports {name}")
            if private_dagster(name):
                found.append(f"{relative}: private Dagster API {name}")
        if str(relative) not in ENVIRONMENT_READERS and reads_environment(tree):
            found.append(f"{relative}: reads the environment")
    return found


def test_the_package_keeps_its_import_contract() -> None:
    assert violations(PACKAGE, FORBIDDEN) == []


def test_every_room_is_under_contract() -> None:
    rooms = {p.stem for p in PACKAGE.iterdir() if not p.name.startswith("__") and (p.is_dir() or p.suffix == ".py")}
    rooms -= {"definitions", "cli", "notebook"}  # the entry points: they wire the rooms together
    assert rooms <= set(FORBIDDEN), f"rooms without a contract: {sorted(rooms - set(FORBIDDEN))}"


@pytest.mark.parametrize(
    ("room", "line", "said"),
    [
        ("engine", "import dagster as dg", "imports dagster"),
        ("engine", "from sqlalchemy import select", "imports sqlalchemy"),
        ("defs", "from sqlalchemy import select", "imports sqlalchemy"),
        ("catalog", "from dagster import AssetKey", "imports dagster"),
        ("workers", "from loader_assets.catalog.store import Store", "imports loader_assets.catalog.store"),
        (
            "selection",
            "def later():\n    from loader_assets.defs.platform import DagsterPlatform",
            "imports loader_assets.defs.platform",
        ),
        ("defs", "from dagster._core.events import DagsterEvent", "private Dagster API dagster._core.events"),
        ("defs", "from dagster_celery._config import x", "private Dagster API dagster_celery._config"),
        ("engine", "import os\nstreams = int(os.environ.get('LOADER_STREAMS', 2))", "reads the environment"),
        ("catalog", "from os import getenv\nURL = getenv('X')", "reads the environment"),
    ],
)
def test_a_deliberate_violation_is_caught(tmp_path: Path, room: str, line: str, said: str) -> None:
    (tmp_path / room).mkdir()
    (tmp_path / room / "bad.py").write_text(line + "\n")
    [violation] = violations(tmp_path, FORBIDDEN)
    assert violation == f"{room}/bad.py: {said}"


def test_the_command_line_starts_without_the_heavy_libraries_it_may_not_need() -> None:
    """Importing the command line costs ~1 s less without them: pandas (for the commands that print frames; a load
    gets it from pyarrow), Alembic (for an old catalog's migration; Dagster's storage brings its own), Dagster
    (for the commands that use the instance)."""
    probe = "import sys, loader_assets.cli; print(sorted({'pandas', 'alembic', 'dagster'} & set(sys.modules)))"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_the_definitions_import_celery_only_for_the_celery_executor() -> None:
    """Celery costs 0.2 s of the start-up of every process that opens Dagster (a command, a run, the daemon)."""
    probe = "import sys, loader_assets.definitions; print(sorted({'celery', 'dagster_celery'} & set(sys.modules)))"
    environment = {k: v for k, v in os.environ.items() if k != "LOADER_EXECUTOR"}
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=environment)
    assert found.stdout.strip() == "[]"
