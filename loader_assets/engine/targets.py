"""Where a notice's rows live: a chunk (or overlap) table on the worker its chunk is placed on, or a regular table
on every worker; and dropping what attempts wrote there."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from loader_assets.catalog.layout import CaseLayout
from loader_assets.problems import ServerDown
from loader_assets.workers.attempt_partitions import drop_attempt_partitions
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.ddl import SchemaError, chunk_table_name

log = logging.getLogger(__name__)
ALL_WORKERS = "all"  # the worker of a regular table's notice: it is copied to every worker


@dataclass(frozen=True)
class Target:
    """Where one notice's rows live: a chunk (or overlap) table on one worker, or a regular table on all."""

    table: str
    chunk: int | None
    overlap: bool
    worker: str  # a worker name, or ALL_WORKERS

    @property
    def table_name(self) -> str:
        return self.table if self.chunk is None else chunk_table_name(self.table, self.chunk, self.overlap)

    def workers(self, cluster: Cluster) -> list[str]:
        return list(cluster.workers) if self.worker == ALL_WORKERS else [self.worker]


def drop_attempt_rows(
    cluster: Cluster, database: str, target: Target, attempts: list[int], warn: Callable[[str], None] = log.warning
) -> None:
    """Drop what these attempts wrote; a worker that is down keeps them until reconciliation or the next claim."""
    for worker in target.workers(cluster):
        try:
            drop_attempt_partitions(cluster.worker(worker), database, target.table_name, attempts)
        except (ServerDown, SchemaError) as error:  # the attempt is not done: its rows go later
            warn(f"rows of attempts {attempts} not dropped yet from {target.table_name} on {worker}: {error.cause}")


def chunk_sizes(chunks_and_sizes: Iterable[tuple[int | None, int]]) -> dict[int, int]:
    """Bytes to load per chunk (regular tables, chunk None, are on every worker and left out)."""
    sizes: dict[int, int] = {}
    for chunk, size in chunks_and_sizes:
        if chunk is not None:
            sizes[chunk] = sizes.get(chunk, 0) + size
    return sizes


def place_chunks(cluster: Cluster, layout: CaseLayout, sizes: dict[int, int]) -> dict[int, str]:
    """Worker of each chunk; new chunks are placed by size, placed ones never move."""
    if not sizes:
        return {}
    cluster.register_database(layout.database, layout.num_stripes, layout.num_sub_stripes, layout.overlap)
    return cluster.place_chunks(layout.database, sizes, sizes)
