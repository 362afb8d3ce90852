"""Loading a case here, level by level, through Dagster runs in this process; and verifying what it loaded.

`load` runs in a thread of its own while the calling thread waits: a signal then reaches the command at once,
the load stops starting files, kills its statements in flight, gives back what it holds, and the command ends
with one line (exit 130/143).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loader_assets import levels
from loader_assets.catalog.notices import case_files, status_tally
from loader_assets.engine.interruption import INTERRUPTION
from loader_assets.engine.level_state import start_refusal
from loader_assets.engine.runner import LevelResult, Progress, Silent, load_case
from loader_assets.operations.cases import known_case
from loader_assets.operations.context import Context
from loader_assets.operations.doctor import preflight
from loader_assets.problems import CasePaused, GateClosed
from loader_assets.workers.census import row_counts
from loader_assets.workers.ddl import chunk_table_name
from loader_assets.workers.formats import file_records

if TYPE_CHECKING:
    import pandas as pd  # imported where used: half a second of every command's start-up

GIVE_BACK_SECONDS = 120  # how long an interrupted load may take to give back what it holds


def load(
    ctx: Context, case: str, *, level: int | None = None, force: bool = False, progress: Progress | None = None
) -> list[LevelResult]:
    """Load the case's levels in order (or one level), gates included; the first level that does not succeed
    raises its problem (`LevelFailed`, a server down, a closed gate, an interrupt)."""
    to_run = (level,) if level else levels.ALL
    preflight(ctx)
    layout = known_case(ctx, case)
    if layout.state != "active":
        raise CasePaused.of(case, layout.state)
    if (why := start_refusal(ctx.store.db, layout, to_run[0])) is not None:
        raise GateClosed.at(to_run[0], case, why)
    executor = ctx.dagster.executor(ctx.settings.catalog_url, verbose=ctx.verbose)
    told = progress or Silent()

    def run() -> list[LevelResult]:
        if reported := ctx.dagster.report_loaded(ctx.store, case):  # a run killed before it reported them
            told.note(f"{reported} loaded chunks of {case} materialized in Dagster from the catalog")
        if INTERRUPTION.is_set:
            return []
        return load_case(case, executor, ctx.store, ctx.cluster, levels_to_run=to_run, force=force, progress=told)

    return _interruptible(run)


def files_done(ctx: Context, case: str, level: int) -> int:
    """Notices of the level done (what a progress bar shows)."""
    return status_tally(ctx.store.db, case, level=level).get("done", 0)


def _interruptible(work: Any) -> Any:
    """Run `work` in a thread; the calling thread (the one signals reach) waits, and after an interrupt waits for
    the work to give back what it holds before the interrupt's problem is raised."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, name="load", daemon=True)
    thread.start()
    while thread.is_alive() and not INTERRUPTION.is_set:
        thread.join(0.2)
    if INTERRUPTION.is_set:
        thread.join(GIVE_BACK_SECONDS)
        raise INTERRUPTION.problem("its notices were given back")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@dataclass(frozen=True)
class Verified:
    frame: pd.DataFrame  # per table: records in its files, rows the catalog recorded, rows on the workers, exact

    @property
    def exact(self) -> bool:
        return bool(self.frame["exact"].all())


def verify(ctx: Context, case: str) -> Verified:
    """Per table: records in its files, rows the catalog recorded, rows on the workers (a regular table: on the
    worker holding fewest, each should hold them all); `exact` when the three are equal."""
    import pandas as pd

    layout = known_case(ctx, case)
    files = case_files(ctx.store.db, case)
    placement = ctx.cluster.placement_or_empty(layout.database) if any(f.chunk is not None for f in files) else {}
    per_table: dict[str, dict[str, int]] = {}
    places: dict[str, set[tuple[str, str]]] = {}  # table -> (worker, table name on it), each counted once
    for item in files:
        counts = per_table.setdefault(item.table, {"file": 0, "catalog": 0})
        counts["file"] += file_records(
            layout.root / item.path, item.format, layout.dialect_of(item.format, layout.tables[item.table])
        )
        counts["catalog"] += item.rows or 0
        if item.chunk is None:
            places.setdefault(item.table, set()).update((w, item.table) for w in ctx.cluster.workers)
        elif item.chunk in placement:
            places.setdefault(item.table, set()).add(
                (placement[item.chunk], chunk_table_name(item.table, item.chunk, item.overlap))
            )
    for table, counts in per_table.items():
        on_workers = _rows_on_workers(ctx, layout.database, places.get(table, set()))
        regular = layout.tables[table].kind == levels.REGULAR
        counts["workers"] = min(on_workers.values(), default=0) if regular else sum(on_workers.values())
    frame = pd.DataFrame.from_dict(per_table, orient="index", columns=["file", "catalog", "workers"])
    frame.index.name = "table"
    frame["exact"] = (frame["file"] == frame["catalog"]) & (frame["catalog"] == frame["workers"])
    return Verified(frame.sort_index())


def _rows_on_workers(ctx: Context, database: str, places: set[tuple[str, str]]) -> dict[str, int]:
    """Rows per worker over the given tables (a missing table holds none)."""
    by_worker: dict[str, list[str]] = {}
    for worker, name in places:
        by_worker.setdefault(worker, []).append(name)
    return {
        worker: sum(n or 0 for n in row_counts(ctx.cluster.worker(worker), database, names).values())
        for worker, names in by_worker.items()
    }
