"""The recovery rule every path shares: a notice held by a process that is dead on this host, or whose lease has
lapsed, is taken back at once — its attempt lost, its rows dropped — by whoever needs it next: a load before it
claims, the runner while it waits for other holders, the sweeper's run. Nobody waits out a lease for a holder
this host can see is gone."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.store import Released, Store
from loader_assets.engine.targets import Target, drop_attempt_rows
from loader_assets.workers.cluster import Cluster


def take_back(
    store: Store,
    cluster: Cluster,
    *,
    notice_ids: Iterable[int] | None = None,
    case: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Released]:
    """Take back the dead or lapsed holds among `notice_ids` (or of `case`, or everywhere) and drop what their
    attempts wrote (a worker that is down keeps those rows until reconciliation)."""
    released = store.reclaim(notice_ids=notice_ids, case=case)
    if released:
        databases = {name: layout.database for name, layout in case_layouts(store.db).items()}
        for item in released:
            if item.attempt_id is not None and item.worker is not None and item.case in databases:
                target = Target(item.table, item.chunk, item.overlap, item.worker)
                if warn is None:
                    drop_attempt_rows(cluster, databases[item.case], target, [item.attempt_id])
                else:
                    drop_attempt_rows(cluster, databases[item.case], target, [item.attempt_id], warn)
    return released
