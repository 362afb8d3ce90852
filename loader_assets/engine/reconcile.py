"""Reconciliation: the partitions on each worker equal the done attempts the catalog knows, and nothing else.

Every partition of a chunk or regular table is the rows of one attempt. One that belongs to no done or
running attempt of its table (a late writer that woke after its lease was taken over, a drop that found its
worker down) is dropped, with a line in that attempt's history; a done attempt whose partition is gone fails
its notice, so it loads again. Either bumps the table's gate. Run before a validation and on a timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from loader_assets.catalog.layout import CaseLayout
from loader_assets.catalog.notices import PartitionOwner, partition_owners
from loader_assets.catalog.store import Store
from loader_assets.engine.targets import ALL_WORKERS
from loader_assets.problems import ServerDown
from loader_assets.workers.attempt_partitions import drop_attempt_partitions, partitions_by_table
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.ddl import chunk_table_name

Place = tuple[str, str]  # (worker, table name on it)


@dataclass
class Reconciliation:
    dropped: dict[Place, list[int]] = field(default_factory=dict)  # attempts whose stray partitions went
    missing: dict[int, str] = field(default_factory=dict)  # notice id -> which partition was gone
    unreachable: list[str] = field(default_factory=list)  # workers that could not be listed

    @property
    def changed(self) -> bool:
        return bool(self.dropped or self.missing)


def reconcile(
    store: Store, cluster: Cluster, layout: CaseLayout, *, tables: set[str] | None = None,
    log: Callable[[str], None] = print, dry_run: bool = False,
) -> Reconciliation:  # fmt: skip
    """Make the workers' partitions of the case (or of some of its tables) match its attempts; with `dry_run`,
    only say what would change (the sweeper's sensor asks, its run acts)."""
    result = Reconciliation()
    names = tables if tables is not None else set(layout.tables)
    before = partition_owners(store.db, layout.case, names)  # done before the listing: their partitions are there
    present: dict[Place, set[int]] = {}
    reachable = set()
    for worker in cluster.workers:
        try:
            listed = partitions_by_table(cluster.worker(worker), layout.database)
        except ServerDown as problem:  # a worker down: reconciled once it is back
            result.unreachable.append(problem.cause)
            continue
        reachable.add(worker)
        present.update({(worker, table_name): set(attempts) for table_name, attempts in listed.items()})
    # Read after the listing: an attempt claimed since cannot have a partition in it yet.
    allowed = _places(cluster, partition_owners(store.db, layout.case, names))
    ours = {_table_name(owner) for owner in before}
    for (worker, table_name), attempts in sorted(present.items()):
        stray = sorted(attempts - allowed.get((worker, table_name), set()))
        if stray and table_name in ours:
            if not dry_run:
                drop_attempt_partitions(cluster.worker(worker), layout.database, table_name, stray)
            result.dropped[(worker, table_name)] = stray
    for owner in before:
        if owner.status == "done" and owner.worker is not None:
            for worker in sorted(set(_workers_of(cluster, owner)) & reachable):
                if owner.attempt_id not in present.get((worker, _table_name(owner)), set()):
                    result.missing[owner.notice_id] = (
                        f"partition p{owner.attempt_id} of {_table_name(owner)} missing on {worker}"
                    )
    if result.changed and not dry_run:
        by_name = {_table_name(owner): owner.table for owner in before}
        notes = {
            a: f"partition dropped from {t} on {w} by reconciliation"
            for (w, t), ids in result.dropped.items()
            for a in ids
        }
        store.record_reconciliation(layout.case, notes, result.missing, {by_name[t] for _, t in result.dropped})
        log(f"reconciled {layout.case}: {sum(map(len, result.dropped.values()))} stray partitions dropped, "
            f"{len(result.missing)} notices failed for a missing partition")  # fmt: skip
    return result


def _table_name(owner: PartitionOwner) -> str:
    return owner.table if owner.chunk is None else chunk_table_name(owner.table, owner.chunk, owner.overlap)


def _workers_of(cluster: Cluster, owner: PartitionOwner) -> list[str]:
    return list(cluster.workers) if owner.worker == ALL_WORKERS else [owner.worker or ""]


def _places(cluster: Cluster, owners: list[PartitionOwner]) -> dict[Place, set[int]]:
    """Where the partitions of done and running attempts may be."""
    places: dict[Place, set[int]] = {}
    for owner in owners:
        if owner.status in ("done", "running") and owner.worker is not None:
            for worker in _workers_of(cluster, owner):
                places.setdefault((worker, _table_name(owner)), set()).add(owner.attempt_id)
    return places
