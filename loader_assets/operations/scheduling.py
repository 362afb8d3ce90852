"""Selecting notices and handing them to the run queue: select, schedule (+ list, cancel, watch), saved selections."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loader_assets.catalog import schedules
from loader_assets.engine.interruption import INTERRUPTION
from loader_assets.operations.context import Context
from loader_assets.operations.doctor import preflight
from loader_assets.problems import BadInput
from loader_assets.selection import PREVIEW_ROWS, saved

if TYPE_CHECKING:  # the selections (and pandas, which they hold) are imported where used: start-up stays short
    import pandas as pd

    from loader_assets.selection.selection import BatchSelection, Scheduled, SchedulePreview, Selection


def select(
    ctx: Context, query: str, *, batches: bool = False, limit: int | None = PREVIEW_ROWS
) -> Selection | BatchSelection:
    """The notices (or batches) `query` selects: the first `limit` rows, with the total counted by the catalog."""
    from loader_assets.selection.selection import preview, select_batches

    if batches:
        return select_batches(query, store=ctx.store, limit=limit)
    return preview(query, store=ctx.store, limit=limit)


def schedule(
    ctx: Context, selection: Selection, *, priority: int = 0, force: bool = False, check: bool = True
) -> Scheduled:
    """Hand every notice the selection's query selects to the run queue (the `scheduled_loads` sensor turns it
    into runs). With `check`, refused unless the servers answer and a dagster-daemon runs (nothing would start)."""
    if check:
        preflight(ctx)
        if (problem := ctx.dagster.daemon_problem()) is not None:
            raise problem
    from loader_assets.selection.selection import Scheduled

    scheduled = selection.schedule(priority=priority, force=force)
    assert isinstance(scheduled, Scheduled)
    return scheduled


def dry_run(selection: Selection, *, priority: int = 0, force: bool = False) -> SchedulePreview:
    """What scheduling the selection would request, per case and level; nothing written."""
    from loader_assets.selection.selection import SchedulePreview

    found = selection.schedule(priority=priority, force=force, dry_run=True)
    assert isinstance(found, SchedulePreview)
    return found


def watch(ctx: Context, scheduled: Scheduled, *, progress: Callable[[str], object] = print,
          timeout: float = 24 * 3600) -> pd.DataFrame:  # fmt: skip
    """Until none of the schedule's notices is ready or running (a line per change); the final counts. An
    interrupt ends the watch (the runs go on)."""
    final = scheduled.watch(timeout=timeout, progress=progress, runs=ctx.dagster, stop=INTERRUPTION.event)
    if INTERRUPTION.is_set:
        raise INTERRUPTION.problem(f"stopped watching schedule {scheduled.schedule_id}; its runs go on")
    return final


def listing(ctx: Context) -> list[schedules.Schedule]:
    return schedules.listing(ctx.store.db)


def cancel(ctx: Context, ids: list[int]) -> list[schedules.Schedule]:
    if not ids:
        raise BadInput("which schedule?", "`loader-assets schedule cancel ID [ID ...]`")
    return [schedules.cancel(ctx.store.db, schedule_id) for schedule_id in ids]


def save_selection(
    ctx: Context, name: str, query: str, *, batches: bool = False, priority: int = 0, enabled: bool = True,
    comment: str | None = None,
) -> str:  # fmt: skip
    """Save (or update) a named query: it becomes the sensor `selection_<name>`; returns what the code-location
    reload said."""
    from loader_assets.defs.platform import reload_code_location  # Dagster is imported only when used

    saved.save(ctx.store, name, query, target="batches" if batches else "notices", priority=priority,
               enabled=enabled, comment=comment)  # fmt: skip
    return reload_code_location(ctx.settings)


def saved_selections(ctx: Context) -> pd.DataFrame:
    return saved.list_saved(ctx.store)


def enable_selection(ctx: Context, name: str, enabled: bool) -> None:
    saved.set_enabled(ctx.store, name, enabled)


def delete_selection(ctx: Context, name: str) -> None:
    saved.delete(ctx.store, name)
