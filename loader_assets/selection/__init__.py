"""Selections of notices and batches for operators: `select`, `select_batches`, saved selections, the language.

from loader_assets.selection import select, select_batches, saved, QueryError
"""

from loader_assets.selection import saved
from loader_assets.selection.language import QueryError
from loader_assets.selection.selection import select, select_batches

__all__ = ["QueryError", "saved", "select", "select_batches"]
