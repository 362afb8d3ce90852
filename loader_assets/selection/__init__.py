"""Selections of notices and batches for operators: `select`, `select_batches`, saved selections, the language.

from loader_assets.selection import select, select_batches, saved, QueryError

They are imported on first use: the selections hold pandas, which a command that selects nothing (a load, a
registration) should not import at start-up.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from loader_assets.selection import saved
    from loader_assets.selection.language import QueryError
    from loader_assets.selection.selection import select, select_batches

PREVIEW_ROWS = 10_000  # a preview holds this many rows of a selection; the rest are counted, not read
_HOMES = {"select": "selection", "select_batches": "selection", "QueryError": "language", "saved": "saved"}

__all__ = ["PREVIEW_ROWS", "QueryError", "saved", "select", "select_batches"]


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(f"{__name__}.{_HOMES[name]}")
    return module if name == _HOMES[name] else getattr(module, name)


def __dir__() -> list[str]:
    return sorted(__all__)
