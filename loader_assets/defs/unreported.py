"""Loaded chunks Dagster does not show: a run killed between the catalog's finish and its event, or an instance
that lost its events (an asset wiped). Found by comparing the catalog's loaded chunks with Dagster's partitions,
and reported from the catalog once the runs that loaded them can no longer report them themselves.

A chunk counts as reported when Dagster shows its partition materialized, or when one of the partition's
materializations names the chunk's current attempts (a later run that planned the partition shows it in progress,
then failed if it skipped it as loaded already).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import dagster as dg

from loader_assets.catalog.layout import CaseLayout
from loader_assets.catalog.notices import LoadedFile, done_signature, loaded_chunks, loaded_files
from loader_assets.catalog.store import Store, process_alive_here
from loader_assets.catalog.time import utcnow
from loader_assets.defs.assets import table_key
from loader_assets.defs.chunk_partitions import chunk_partitions
from loader_assets.defs.events import ATTEMPT_IDS, materialization
from loader_assets.defs.jobs import IN_FLIGHT
from loader_assets.engine.load import Loaded

SLICE = 1000  # chunks whose files and runs are read at once
DESCRIPTION = "reported from the catalog: Dagster had no event of this load (its run died first, or it was lost)"


@dataclass
class Unreported:
    events: list[dg.AssetMaterialization] = field(default_factory=list)
    waiting: int = 0  # chunks left to runs that may still report them


def unreported(instance: dg.DagsterInstance, store: Store, case: str, limit: int) -> Unreported:
    """Materializations of up to `limit` loaded chunks (and regular tables) of `case` that Dagster does not show
    and that no run in flight will report."""
    found = Unreported()
    loaded = loaded_chunks(store.db, case)
    # The case's partition keys, read once for all its chunked tables (tens of thousands each time).
    known = set(_partition_keys(instance, case)) if any(None not in c for c in loaded.values()) else set()
    for table, chunks in loaded.items():
        key = table_key(case, table)
        for part in _slices(_not_shown(instance, case, key, chunks, known)):
            files = loaded_files(store.db, case, table, part)
            ended = _run_ended(instance, {f.run_id for f in files}, store.lease)
            by_chunk: dict[int | None, list[LoadedFile]] = {}
            for item in files:
                by_chunk.setdefault(item.chunk, []).append(item)
            ready = [items for items in by_chunk.values() if all(ended(f) for f in items)]
            found.waiting += len(by_chunk) - len(ready)
            # Read after the runs were seen ended: an event logged just before its run ended is seen here.
            reported = _reported_attempts(instance, key, [items[0].chunk for items in ready])
            new = [items for items in ready if {f.attempt_id for f in items} - reported]
            found.events += [_from_catalog(case, items) for items in new[: limit - len(found.events)]]
            if len(found.events) >= limit:
                return found
    return found


def _slices(chunks: list[int | None]) -> Iterator[list[int | None]]:
    for start in range(0, len(chunks), SLICE):
        yield chunks[start : start + SLICE]


def signature(instance: dg.DagsterInstance, store: Store, layout: CaseLayout) -> str:
    """Changes when a notice of the case becomes done, a table of it gets (or loses: a wipe) a materialization, or
    its partitions change (a key added back)."""
    latest = []
    for table in sorted(layout.tables):
        records = instance.fetch_materializations(table_key(layout.case, table), limit=1).records
        latest.append(str(records[0].storage_id) if records else "-")
    partitions = len(_partition_keys(instance, layout.case))
    return f"{done_signature(store.db, layout.case)}/{partitions}/{','.join(latest)}"


def _partition_keys(instance: dg.DagsterInstance, case: str) -> list[str]:
    name = chunk_partitions(case).name
    assert name is not None
    return instance.get_dynamic_partitions(name)


def _not_shown(
    instance: dg.DagsterInstance, case: str, key: dg.AssetKey, chunks: list[int | None], known: set[str]
) -> list[int | None]:
    """The chunks (or [None]: the regular table) Dagster does not show materialized, among its partitions `known`
    (a key missing there could never be shown)."""
    if None in chunks:
        return [] if instance.get_latest_materialization_event(key) is not None else [None]
    keys = [str(chunk) for chunk in chunks if str(chunk) in known]
    shown = instance.get_status_by_partition(key, keys, chunk_partitions(case)) or {}
    return [int(k) for k in keys if shown.get(k) != dg.AssetPartitionStatus.MATERIALIZED]


def _run_ended(instance: dg.DagsterInstance, run_ids: Iterable[str], lease: timedelta) -> Callable[[LoadedFile], bool]:
    """Whether the run that loaded a file can no longer report it: not in flight in Dagster, its process gone
    from this host, or silent for a lease since (a run killed after its last notice holds nothing a sweep would
    see, so Dagster may show it started for hours)."""
    ids = sorted(run_ids)
    records = instance.get_run_records(dg.RunsFilter(run_ids=ids, statuses=IN_FLIGHT)) if ids else []
    in_flight = {record.dagster_run.run_id for record in records}
    now = utcnow()

    def ended(item: LoadedFile) -> bool:
        if item.run_id not in in_flight or not process_alive_here(item.host, item.pid):
            return True
        return item.finished_at is not None and now - item.finished_at > lease

    return ended


def _reported_attempts(instance: dg.DagsterInstance, key: dg.AssetKey, chunks: list[int | None]) -> set[int]:
    """Attempt ids the partitions' materializations name (a regular table's: none, it has no partition)."""
    partitions = [str(chunk) for chunk in chunks if chunk is not None]
    reported: set[int] = set()
    cursor = None
    while partitions:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=SLICE, cursor=cursor
        )
        for record in result.records:
            event = record.asset_materialization
            value = event.metadata.get(ATTEMPT_IDS) if event is not None else None
            if isinstance(value, dg.JsonMetadataValue) and isinstance(value.value, list):
                reported |= set(value.value)
        if not result.has_more:
            break
        cursor = result.cursor
    return reported


def _from_catalog(case: str, items: list[LoadedFile]) -> dg.AssetMaterialization:
    """The chunk's materialization as its run would have logged it, untimed (the catalog has the claim's time, not
    the load's)."""
    loaded = [
        Loaded(f.notice_id, f.attempt_id, case, f.table, f.chunk, f.overlap, f.path, f.worker or "", f.rows or 0,
               f.size, 0.0)
        for f in items
    ]  # fmt: skip
    return materialization(loaded, description=DESCRIPTION, timed=False)
