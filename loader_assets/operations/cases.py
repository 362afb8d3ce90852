"""A case's life: the instance it is loaded through (`init`), its registration, pause and resume, and its drop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loader_assets import levels
from loader_assets.catalog.layout import CaseLayout, case_layout
from loader_assets.catalog.register import CaseOptions, Registration, register_case
from loader_assets.catalog.retire import delete_case, start_dropping
from loader_assets.operations.context import Context
from loader_assets.operations.doctor import preflight
from loader_assets.problems import BadInput
from loader_assets.workers.ddl import director_index_tables, drop_database


def init(ctx: Context) -> Path:
    """Write the Dagster instance's dagster.yaml for the settings (storage, run-queue limits) and create its load
    pool; returns the file. `register` does it once when there is none yet."""
    from loader_assets.defs.instance import init_instance  # Dagster is imported only when used

    return init_instance(ctx.settings)


@dataclass(frozen=True)
class Registered:
    registration: Registration
    new_partitions: int  # chunk partitions added to the Dagster instance
    reload: str  # what the webserver said (or how the new case will appear)


def register(
    ctx: Context, root: Path, case: str | None = None, *, comment: str | None = None,
    options: CaseOptions | None = None, allow_links_out: bool = False,
) -> Registered:  # fmt: skip
    """Register (or register again) the case at `root`. Its chunk partitions reach the Dagster instance before
    the case opens, so no chunk is loaded unseen; interrupted anywhere, registering again finishes the job."""
    from loader_assets.defs.instance import config_path  # Dagster is imported only when used

    if not config_path(ctx.settings).exists():
        init(ctx)
    platform = ctx.dagster  # opened before the catalog commits anything: an unusable instance fails first
    added: list[int] = []
    registration = register_case(
        ctx.store, root, case, comment=comment, options=options or CaseOptions(), allow_links_out=allow_links_out,
        on_chunks=lambda name, chunks: added.append(platform.add_chunks(name, chunks)),
    )  # fmt: skip
    return Registered(registration, sum(added), platform.reload_code_location())


def known_case(ctx: Context, case: str) -> CaseLayout:
    """The registered case (`Unknown` naming it otherwise)."""
    return case_layout(ctx.store.db, case)


def pause(ctx: Context, case: str) -> None:
    """No new claims in the case (what runs goes on)."""
    ctx.store.set_case_state(case, "paused")


def resume(ctx: Context, case: str) -> None:
    ctx.store.set_case_state(case, "active")


@dataclass(frozen=True)
class Dropped:
    lines: list[str]  # what went, server by server


def drop(ctx: Context, case: str, *, force: bool, log: Callable[[str], None] = lambda _line: None) -> Dropped:
    """Retire a case: its tables on every worker, its placement and index at the czar, its catalog rows and its
    Dagster partitions. Refused while any of its notices is held; the case is marked `dropping` first, so nothing
    new starts (and no sweep makes it whole) while its data goes, until a drop finishes."""
    layout = known_case(ctx, case)
    if not force:
        raise BadInput(f"drop retires case {case}: its tables on every worker, its placement and index at the czar, "
                       "its catalog rows and Dagster partitions", "add --force to do it")  # fmt: skip
    preflight(ctx)
    lines: list[str] = []

    def said(line: str) -> None:
        lines.append(line)
        log(line)

    _ = ctx.dagster  # the instance opens before anything changes: else the case's partitions would outlive its rows
    start_dropping(ctx.store.db, case)
    for name, server in ctx.cluster.workers.items():
        with server.connect() as conn:
            dropped = drop_database(conn, layout.database, ctx.store.db.catalog_id)
        said(f"{name}: database {layout.database} {'dropped' if dropped else 'was not there'}")
    directors = [t.name for t in layout.tables.values() if t.kind == levels.DIRECTOR]
    index_tables = [table for d in directors for table in director_index_tables(layout.database, d)]
    ctx.cluster.unregister_database(layout.database, index_tables)
    said(f"czar: placement and director index of {layout.database} forgotten")
    # The catalog's rows go last: a drop cut short by a server down is run again (the case still known) to finish.
    said(f"Dagster: {ctx.dagster.remove_chunks(case)} chunk partitions removed")
    delete_case(ctx.store.db, case)
    said(f"catalog: case {case} deleted")
    said(ctx.dagster.reload_code_location())
    return Dropped(lines)
