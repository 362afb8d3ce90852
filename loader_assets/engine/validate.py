"""Validation of a director or a child table on the workers, and the gate it records in the catalog.

A blocking Dagster check only stops downstream steps of its own run, so the outcome is also written to
`level_gates`, which every later claim reads, whoever launches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from loader_assets import levels
from loader_assets.catalog.gates import record_gate
from loader_assets.catalog.layout import CaseLayout, TableLayout
from loader_assets.catalog.notices import ChunkFiles, done_chunks, warned_attempts
from loader_assets.catalog.store import Store
from loader_assets.engine.level_state import require_loaded
from loader_assets.qserv.files import read_key_column
from loader_assets.workers.census import index_keys_by_chunk, key_values, row_counts
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.schema import DirectorIndexError, build_director_index, chunk_table_name

DIRECTOR_CHECKS = {
    "objectids_on_workers": "every director key of the files is on the worker holding its chunk and in the index",
    "objectids_unique": "no director key twice in the whole table",
    "rows_match_files": "rows per chunk table on the workers equal rows loaded from the files",
    "no_load_warnings": "no done attempt had LOAD DATA warnings",
}
CHILD_CHECKS = {
    "director_keys_in_index": "every non-NULL director key of the child is in the director index, same chunk",
    "rows_match_files": "rows per chunk table on the workers equal rows loaded from the files",
    "no_load_warnings": "no done attempt had LOAD DATA warnings",
}
SHOWN_IDS = 10  # how many offending ids a check result lists


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    metadata: dict[str, object]


@dataclass
class Validation:
    outcomes: list[CheckOutcome] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [o.name for o in self.outcomes if not o.passed]


def validate_table(
    store: Store, cluster: Cluster, layout: CaseLayout, table: TableLayout, run_id: str, log: Callable[[str], None]
) -> Validation:
    """Validate one director or child table and record its gate; LevelNotLoaded while its load is unfinished."""
    level = levels.validation_level(table.kind)
    assert level is not None, f"{table.kind} tables are not validated"
    require_loaded(store.db, layout.case, table.name, table.level)
    chunks = done_chunks(store.db, layout.case, table.name)
    placement = cluster.place_chunks(layout.database, sorted({c.chunk for c in chunks}))
    if table.kind == levels.DIRECTOR:
        validation = _validate_director(store, cluster, layout, table, chunks, placement, log)
    else:
        validation = _validate_child(store, cluster, layout, table, chunks, placement, log)
    status = "failed" if validation.failed else "passed"
    details = {"failed_checks": validation.failed, "checks": {o.name: o.passed for o in validation.outcomes}}
    record_gate(store.db, layout.case, level, table.name, status, run_id, details)
    log(
        f"level {level} of {layout.case}/{table.name}: {status}"
        + (f" ({', '.join(validation.failed)})" if validation.failed else "")
    )
    return validation


def _rows_match(cluster: Cluster, layout: CaseLayout, table: TableLayout, chunks: list[ChunkFiles],
                placement: dict[int, str]) -> CheckOutcome:  # fmt: skip
    expected = {chunk_table_name(table.name, c.chunk, c.overlap): (c, placement[c.chunk]) for c in chunks}
    found: dict[str, int | None] = {}
    for worker in sorted(set(placement.values())):
        names = [name for name, (_, w) in expected.items() if w == worker]
        found.update(row_counts(cluster.worker_url(worker), layout.database, names))
    wrong = [
        f"{name} on {w}: {found[name]} rows, files {c.rows}"
        for name, (c, w) in expected.items()
        if found[name] != c.rows
    ]
    return CheckOutcome(
        "rows_match_files",
        not wrong,
        {"chunk tables": len(expected), "rows": sum(c.rows for c in chunks), "mismatches": len(wrong),
         "first mismatches": "; ".join(wrong[:SHOWN_IDS]) or "none"},
    )  # fmt: skip


def _no_warnings(store: Store, case: str, table: str) -> CheckOutcome:
    warned = warned_attempts(store.db, case, table)
    return CheckOutcome(
        "no_load_warnings",
        not warned,
        {"attempts with warnings": len(warned), "notices": str(warned[:SHOWN_IDS])},
    )


def _validate_director(store: Store, cluster: Cluster, layout: CaseLayout, table: TableLayout,
                       chunks: list[ChunkFiles], placement: dict[int, str], log: Callable[[str], None]) -> Validation:  # fmt: skip
    key = table.director_key or "objectId"
    own = [c for c in chunks if not c.overlap]
    validation = Validation()
    try:
        index_rows = build_director_index(
            cluster, layout.database, table.name, key, {c.chunk: placement[c.chunk] for c in own}
        )
        index_error = None
    except DirectorIndexError as error:
        index_rows, index_error = 0, str(error)
    log(f"director index of {layout.database}.{table.name}: {index_rows} rows")
    index = index_keys_by_chunk(cluster.czar, layout.database, table.name, key)
    missing_on_workers: list[int] = []
    missing_in_index: list[int] = []
    on_workers: list[np.ndarray] = []
    for chunk in own:
        in_files = np.concatenate(
            [read_key_column(layout.root / path, fmt, table.column_names, key, layout.dialect_of(fmt)) for path, fmt in chunk.paths]
        )  # fmt: skip
        stored = key_values(
            cluster.worker_url(placement[chunk.chunk]), layout.database, chunk_table_name(table.name, chunk.chunk), key
        )
        on_workers.append(stored)
        missing_on_workers += np.setdiff1d(in_files, stored).tolist()
        missing_in_index += np.setdiff1d(in_files, index.get(chunk.chunk, np.empty(0, np.int64))).tolist()
    everything = np.concatenate(on_workers) if on_workers else np.empty(0, np.int64)
    values, counts = np.unique(everything, return_counts=True)
    duplicates = values[counts > 1].tolist()
    validation.outcomes = [
        CheckOutcome(
            "objectids_on_workers",
            not missing_on_workers and not missing_in_index and index_error is None,
            {"missing on workers": len(missing_on_workers), "first missing on workers": str(missing_on_workers[:SHOWN_IDS]),
             "missing in index": len(missing_in_index), "first missing in index": str(missing_in_index[:SHOWN_IDS]),
             "index error": index_error or "none"},
        ),
        CheckOutcome("objectids_unique", not duplicates,
                     {"duplicates": len(duplicates), "first duplicates": str(duplicates[:SHOWN_IDS])}),
        _rows_match(cluster, layout, table, chunks, placement),
        _no_warnings(store, layout.case, table.name),
    ]  # fmt: skip
    validation.metadata = {"index rows": index_rows, "chunks": len(own), "keys on workers": int(everything.size)}
    return validation


def _validate_child(store: Store, cluster: Cluster, layout: CaseLayout, table: TableLayout,
                    chunks: list[ChunkFiles], placement: dict[int, str], log: Callable[[str], None]) -> Validation:  # fmt: skip
    director = layout.tables[table.director_table or ""]
    key = table.director_key or director.director_key or "objectId"
    index = index_keys_by_chunk(cluster.czar, layout.database, director.name, director.director_key or key)
    orphans: list[int] = []
    own = [c for c in chunks if not c.overlap]
    for chunk in own:
        stored = key_values(
            cluster.worker_url(placement[chunk.chunk]), layout.database, chunk_table_name(table.name, chunk.chunk), key
        )
        orphans += np.setdiff1d(stored, index.get(chunk.chunk, np.empty(0, np.int64))).tolist()
    log(f"{layout.case}/{table.name}: {len(orphans)} keys without a director row in the same chunk")
    return Validation(
        outcomes=[
            CheckOutcome("director_keys_in_index", not orphans,
                         {"orphan keys": len(orphans), "first orphan keys": str(orphans[:SHOWN_IDS])}),
            _rows_match(cluster, layout, table, chunks, placement),
            _no_warnings(store, layout.case, table.name),
        ],
        metadata={"chunks": len(own)},
    )  # fmt: skip
