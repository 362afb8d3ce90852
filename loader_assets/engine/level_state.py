"""Where a level stands: the one judgement of "loaded" and "due for validation" that runner, checks and
sensors share. A table (or level) is loaded when none of its notices is anything but `done`: one without
notices has nothing to load."""

from __future__ import annotations

from loader_assets.catalog.engine import CatalogDB
from loader_assets.catalog.gates import gate
from loader_assets.catalog.notices import last_finished_at, status_tally


def is_loaded(tally: dict[str, int]) -> bool:
    return not set(tally) - {"done"}


def describe(tally: dict[str, int], *, without_done: bool = False) -> str:
    """`3 done, 1 failed`; `no notices` for an empty tally."""
    parts = [f"{n} {status}" for status, n in sorted(tally.items()) if not (without_done and status == "done")]
    return ", ".join(parts) or "no notices"


class LevelNotLoaded(RuntimeError):
    """A validation was asked for a table whose load level has not finished."""


def require_loaded(db: CatalogDB, case: str, table: str, level: int) -> None:
    tally = status_tally(db, case, table=table)
    if not is_loaded(tally):
        raise LevelNotLoaded(
            f"level {level} of case {case} is not finished for {table}: {describe(tally, without_done=True)}"
        )


def validation_due(db: CatalogDB, case: str, table: str, level: int) -> str | None:
    """A token naming the data to validate, when the table is loaded and its gate has not judged that data."""
    if not is_loaded(status_tally(db, case, table=table)):
        return None
    last_load = last_finished_at(db, case, table)
    verdict = gate(db, case, level, table)
    judged = verdict is not None and verdict.status != "pending"
    if judged and (last_load is None or verdict.updated_at >= last_load):
        return None
    return f"{last_load:%Y%m%dT%H%M%S%f}" if last_load is not None else "empty"
