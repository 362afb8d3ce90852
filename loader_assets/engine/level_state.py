"""Where a level stands: the one judgement of "loaded" and "due for validation" that runner, checks and
sensors share. A table (or level) is loaded when none of its notices is anything but `done`: one without
notices has nothing to load."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from loader_assets import levels
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.gates import Gate, closed_gate_reason, gate, release_dead_holder
from loader_assets.catalog.layout import CaseLayout
from loader_assets.catalog.notices import first_unfinished, status_tally
from loader_assets.catalog.store import process_alive_here
from loader_assets.catalog.time import utcnow
from loader_assets.problems import GateClosed


def is_loaded(tally: dict[str, int]) -> bool:
    return not set(tally) - {"done"}


def describe(tally: dict[str, int], *, without_done: bool = False) -> str:
    """`3 done, 1 failed`; `no notices` for an empty tally."""
    parts = [f"{n} {status}" for status, n in sorted(tally.items()) if not (without_done and status == "done")]
    return ", ".join(parts) or "no notices"


class LevelNotLoaded(GateClosed):
    """A validation was asked for a table whose load level has not finished."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause, "load the level first (`loader-assets status` says what is left)")


def require_loaded(db: CatalogDB, case: str, table: str, level: int) -> None:
    tally = status_tally(db, case, table=table)
    if not is_loaded(tally):
        raise LevelNotLoaded(
            f"level {level} of case {case} is not finished for {table}: {describe(tally, without_done=True)}"
        )


def validator_alive(verdict: Gate, now: datetime | None = None) -> bool:
    """The validation holding the gate may still run: its lease has not lapsed, and its process is alive if it is
    on this host (one on another host that died loses the lock when its lease lapses)."""
    if verdict.validating_until is not None and verdict.validating_until < (now or utcnow()):
        return False
    return process_alive_here(verdict.validating_host, verdict.validating_pid)


def validation_due(
    db: CatalogDB,
    case: str,
    table: str,
    level: int,
    *,
    director: str | None = None,
    holder_alive: Callable[[Gate], bool] = validator_alive,
) -> Gate | None:
    """The gate to validate, when the table is loaded, its gate pending with no live validation, and (for a
    child, `director` named) its director's gate passed. A dead holder's lock is released first.

    Its generation changes with the data, its `validations` when a validation started and died: a run key
    built from both asks again exactly then."""
    verdict = gate(db, case, level, table)
    if verdict is None or verdict.status != "pending" or not is_loaded(status_tally(db, case, table=table)):
        return None
    if director is not None:
        director_gate = gate(db, case, levels.VALIDATE_DIRECTOR, director)
        if director_gate is None or director_gate.status != "passed":
            return None
    if verdict.validating_run is not None:
        if holder_alive(verdict):
            return None
        release_dead_holder(db, verdict)
        verdict = gate(db, case, level, table)
    return verdict


def release_dead_validation(db: CatalogDB, case: str, level: int, table: str) -> None:
    """Release the gate's lock when the validation holding it is dead (a killed `load`), before validating: where
    no daemon runs, nothing else would."""
    verdict = gate(db, case, level, table)
    if verdict is not None and verdict.validating_run is not None and not validator_alive(verdict):
        release_dead_holder(db, verdict)


def start_refusal(db: CatalogDB, layout: CaseLayout, level: int) -> str | None:
    """Why `level` cannot start now (the load level before it not finished, or the director's gate not passed,
    in the words the claim refusals use), or None."""
    if levels.waits_for_director_gate(level):
        with db.read() as connection:
            for child in layout.tables_of_kind(levels.CHILD):
                if (why := closed_gate_reason(connection, layout.case, child.name)) is not None:
                    return why + _unloaded(db, layout.case, levels.load_level(levels.DIRECTOR))
        return None
    if levels.is_load_level(level):
        return None
    tally = status_tally(db, layout.case, level=level - 1)  # a validation level: its tables' load level
    return None if is_loaded(tally) else f"level {level - 1} is not loaded ({describe(tally, without_done=True)})"


def _unloaded(db: CatalogDB, case: str, level: int) -> str:
    """`; level 1 is not loaded (…): <first file>: <its error>`, or nothing when it is."""
    tally = status_tally(db, case, level=level)
    if is_loaded(tally):
        return ""
    first = first_unfinished(db, case, level)
    shown = f": {first.path}: {first.error or first.status}" if first is not None else ""
    return f"; level {level} is not loaded ({describe(tally, without_done=True)}){shown}"
