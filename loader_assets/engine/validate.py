"""Validation of a director or a child table where the data is, and the gate it records in the catalog.

Every check is SQL on the worker that holds the chunk, all workers in parallel; counts and the first
offending keys come back, and a child's absent keys stream in bounded batches. The director's keys are
proved on the workers by the key fingerprint of each attempt (computed from the file while it loaded,
`workers.fingerprint`); only a file whose fingerprint differs is read again, to name a few of its keys. The
director index at the czar is built from the workers. A child's keys absent from its director chunk are
found by an anti-join on the worker, then told apart through the index: in another chunk (misplaced: an
error) or nowhere (orphans: loaded by Qserv, a warning unless the case is strict). A child is validated
only against a director whose gate passed, and its verdict holds only while that gate is unchanged.

A blocking Dagster check stops only its own run, so the verdict is written to the fenced gate in the
catalog, which every later claim reads.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from loader_assets import levels
from loader_assets.catalog import chunk_checks
from loader_assets.catalog.gates import (
    Validator,
    begin_validation,
    finish_validation,
    gate,
    release_validation,
    renew_validation,
)
from loader_assets.catalog.layout import CaseLayout, TableLayout
from loader_assets.catalog.notices import DoneFile, done_files
from loader_assets.catalog.store import Store
from loader_assets.engine.chunk_census import SHOWN_KEYS, ChunkCensus, census_of_worker, chunk_version, new_census
from loader_assets.engine.level_state import LevelNotLoaded, release_dead_validation, require_loaded
from loader_assets.engine.reconcile import reconcile
from loader_assets.workers import census
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.ddl import (
    DirectorIndexError,
    build_director_index,
    index_is_current,
    index_version,
    key_director_index,
)

log = logging.getLogger(__name__)

DIRECTOR_CHECKS = {
    "rows_match_files": "rows of every chunk and overlap table on its worker equal the records of its files",
    "objectids_on_workers": "every director key of the files is on the worker holding its chunk (key fingerprint "
    "of each attempt) and in the director index, in its chunk",
    "objectids_unique": "no director key twice: within a chunk on its worker, across chunks in the director index",
}
CHILD_CHECKS = {
    "rows_match_files": "rows of every chunk table on its worker and their key fingerprint equal those of its files",
    "misplaced_rows": "no child row whose director key is in the director, but in another chunk",
    "orphan_rows": "child rows whose director key is absent from the director (Qserv loads them: a warning, "
    "an error for a case registered with --strict-children)",
}

BeforeVerdict = Callable[[], None]  # test hook: runs after the checks, before the verdict is written


JOIN_SECONDS = 5.0
VERDICT_DROPPED = "verdict dropped: the table changed while it was validated (the gate stays pending)"


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    metadata: dict[str, object]
    blocking: bool = True  # False: a failure is a warning, the gate still passes


@dataclass
class Validation:
    outcomes: list[CheckOutcome] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)
    recorded: bool = False  # the verdict reached the gate (False: the gate moved on while validating)

    @property
    def failed(self) -> list[str]:
        return [o.name for o in self.outcomes if not o.passed and o.blocking]

    @property
    def warnings(self) -> list[str]:
        return [o.name for o in self.outcomes if not o.passed and not o.blocking]

    @property
    def status(self) -> str:
        """The verdict: `failed` when a blocking check failed, else `passed`."""
        return "failed" if self.failed else "passed"

    @property
    def summary(self) -> str:
        """`passed`, `failed: objectids_unique; warnings: orphan_rows`, or why the verdict was dropped."""
        if not self.recorded:
            return f"{self.status}, {VERDICT_DROPPED}"
        parts = [self.status]
        if self.failed:
            parts.append(f"failed: {', '.join(self.failed)}")
        if self.warnings:
            parts.append(f"warnings: {', '.join(self.warnings)}")
        return "; ".join(parts)


def validate_table(
    store: Store,
    cluster: Cluster,
    layout: CaseLayout,
    table: TableLayout,
    run_id: str,
    log: Callable[[str], None],
    *,
    before_verdict: BeforeVerdict | None = None,
) -> Validation:
    """Validate one director or child table and record its gate, fenced by the gate's generation.

    Raises gates.ValidationBusy when another validation of the table runs, LevelNotLoaded while its load
    level is unfinished."""
    level = table.validation_level
    assert level is not None, f"{table.kind} tables are not validated"
    who = Validator(run_id, socket.gethostname(), os.getpid())
    reconcile(store, cluster, layout, tables={table.name}, log=log)  # first: what is judged is what the catalog says
    release_dead_validation(store.db, layout.case, level, table.name)
    seen = begin_validation(store.db, layout.case, level, table.name, who, store.lease)
    try:
        with _lease_kept(store, layout.case, level, table.name, run_id):
            require_loaded(store.db, layout.case, table.name, table.level)
            director = _passed_director(store, layout, table)
            validation = _run_checks(store, cluster, layout, table)
            if before_verdict is not None:
                before_verdict()
            details = {
                "failed_checks": validation.failed,
                "warnings": validation.warnings,
                "checks": {o.name: o.passed for o in validation.outcomes},
                "generation": seen,
                **{o.name: _plain(o.metadata) for o in validation.outcomes if not o.passed},
            }
            validation.recorded = finish_validation(
                store.db, layout.case, level, table.name, who, seen, validation.status, details, director=director
            )
    finally:
        release_validation(store.db, layout.case, level, table.name, run_id)
    log(f"level {level} of {layout.case}/{table.name}: {validation.summary}")
    return validation


@contextmanager
def _lease_kept(store: Store, case: str, level: int, table: str, run_id: str) -> Iterator[None]:
    """The gate's lock renewed every quarter lease while the block runs, as a load renews its notices' leases: a
    validation that dies anywhere loses its lock within a lease (and one that lost it, its verdict)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(store.lease.total_seconds() / 4):
            try:
                if not renew_validation(store.db, case, level, table, run_id, store.lease):
                    log.warning("level %d of %s/%s: lock taken back, the verdict will be dropped", level, case, table)
                    return
            except Exception:  # a catalog hiccup: the next beat retries
                log.exception("renewing the lock of level %d of %s/%s failed", level, case, table)

    beat = threading.Thread(target=renew, name=f"gate-lease-{case}-{table}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(JOIN_SECONDS)  # a renew stuck on an unreachable catalog is harmless once the lock is released


def _passed_director(store: Store, layout: CaseLayout, table: TableLayout) -> tuple[str, int] | None:
    """For a child: its director and the generation at which the director's gate passed (else refused)."""
    if table.kind != levels.CHILD:
        return None
    director = layout.director_of(table)
    verdict = gate(store.db, layout.case, levels.VALIDATE_DIRECTOR, director.name)
    if verdict is None or verdict.status != "passed":
        raise LevelNotLoaded(
            f"level {table.validation_level} of case {layout.case} ({table.name}) waits for its director: the gate "
            f"of {director.name} is {verdict.status if verdict else 'missing'}"
        )
    return director.name, verdict.generation


def _plain(metadata: dict[str, object]) -> dict[str, object]:
    return {name: value if isinstance(value, int | float | bool) else str(value) for name, value in metadata.items()}


def _run_checks(store: Store, cluster: Cluster, layout: CaseLayout, table: TableLayout) -> Validation:
    files = done_files(store.db, layout.case, table.name)
    placement = cluster.place_chunks(layout.database, sorted({f.chunk for f in files})) if files else {}
    by_table: dict[tuple[int, bool], list[DoneFile]] = {}
    for item in files:
        by_table.setdefault((item.chunk, item.overlap), []).append(item)
    chunks = [
        new_census(table, chunk, overlap, placement[chunk], items)
        for (chunk, overlap), items in sorted(by_table.items())
    ]
    if table.kind != levels.CHILD:
        versions = {c.chunk: _index_version(layout, c) for c in chunks if not c.overlap}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="director-index") as pool:
            pool.submit(_key_index_now, cluster, layout, table, versions)  # the czar's work beside the workers'
            _census_in_parallel(cluster, layout, table, None, chunks)
        return _director_verdict(cluster, layout, table, chunks, placement)
    director = layout.director_of(table)
    chunks = _child_census(store, cluster, layout, table, director, chunks)
    return _child_verdict(layout, table, chunks)


def _child_census(store: Store, cluster: Cluster, layout: CaseLayout, table: TableLayout, director: TableLayout,
                  chunks: list[ChunkCensus]) -> list[ChunkCensus]:  # fmt: skip
    """Each child chunk's census: the one kept since it loaded when its version still holds, else taken now."""
    director_files: dict[int, list[DoneFile]] = {}
    for item in done_files(store.db, layout.case, director.name):
        director_files.setdefault(item.chunk, []).append(item)
    versions = {c.chunk: chunk_version(c.files, director_files.get(c.chunk, [])) for c in chunks}
    stored = chunk_checks.kept(store.db, layout.case, table.name)
    rows_now = _row_counts(cluster, layout, chunks)  # cheap on MyISAM: a census whose rows moved is taken again
    fresh = [
        c for c in chunks
        if stored.get(c.chunk, ("", {}))[0] != versions[c.chunk] or stored[c.chunk][1]["rows"] != rows_now[c.chunk]
    ]  # fmt: skip
    _census_in_parallel(cluster, layout, table, director, fresh)
    for chunk in fresh:
        chunk_checks.keep(store.db, layout.case, table.name, chunk.chunk, versions[chunk.chunk], chunk.to_json())
    taken = {c.chunk for c in fresh}
    return [c if c.chunk in taken else ChunkCensus.from_json(stored[c.chunk][1], c.files) for c in chunks]


# -- on the workers -------------------------------------------------------------------------------------


def _row_counts(cluster: Cluster, layout: CaseLayout, chunks: list[ChunkCensus]) -> dict[int, int | None]:
    """Rows of each chunk table now, one connection per worker."""
    by_worker: dict[str, list[ChunkCensus]] = {}
    for chunk in chunks:
        by_worker.setdefault(chunk.worker, []).append(chunk)
    counts: dict[int, int | None] = {}
    for worker, of_worker in by_worker.items():
        found = census.row_counts(cluster.worker(worker), layout.database, [c.table_name for c in of_worker])
        counts.update({c.chunk: found[c.table_name] for c in of_worker})
    return counts


def _census_in_parallel(
    cluster: Cluster, layout: CaseLayout, table: TableLayout, director: TableLayout | None, chunks: list[ChunkCensus]
) -> None:
    """Each worker counts its own chunks, all workers at once."""
    by_worker: dict[str, list[ChunkCensus]] = {}
    for chunk in chunks:
        by_worker.setdefault(chunk.worker, []).append(chunk)
    if not by_worker:
        return
    with ThreadPoolExecutor(max_workers=len(by_worker), thread_name_prefix="census") as pool:
        futures = [
            pool.submit(census_of_worker, cluster, worker, layout, table, director, of_worker)
            for worker, of_worker in sorted(by_worker.items())
        ]
        for future in futures:
            future.result()


# -- verdicts -------------------------------------------------------------------------------------------


def _rows_outcome(chunks: list[ChunkCensus], fingerprinted: Callable[[ChunkCensus], bool]) -> CheckOutcome:
    """Rows of every table equal the records of its files; for the tables `fingerprinted` says, their keys too."""
    wrong = [
        f"{c.table_name} on {c.worker}: " + ("missing" if c.rows is None else f"{c.rows} rows, files {c.expected_rows}")
        for c in chunks
        if c.rows != c.expected_rows
    ]
    wrong += [f"{c.table_name} on {c.worker}: {bad}" for c in chunks if fingerprinted(c) for bad in c.bad_fingerprints]
    return CheckOutcome(
        "rows_match_files",
        not wrong,
        {"chunk tables": len(chunks), "rows": sum(c.expected_rows for c in chunks), "mismatches": len(wrong),
         "first mismatches": "; ".join(wrong[:SHOWN_KEYS]) or "none",
         "attempts without fingerprint": sum(c.unfingerprinted for c in chunks)},
    )  # fmt: skip


def _index_version(layout: CaseLayout, chunk: ChunkCensus) -> str:
    return index_version(layout.incarnation, (f.attempt_id for f in chunk.files))  # a reload changes it


def _key_index_now(cluster: Cluster, layout: CaseLayout, table: TableLayout, versions: dict[int, str]) -> None:
    """The director index's keys built while the workers count, when level 1 indexed every chunk as it is now
    (else the verdict first rebuilds what is stale, then keys it). A failure is met again, and told, there."""
    try:
        if index_is_current(cluster, layout.database, table.name, versions):
            key_director_index(cluster, layout.database, table.name, table.director_key or "")
    except Exception as error:  # the czar down, a duplicate key: the verdict names it
        log.info("director index of %s.%s left to the verdict: %s", layout.database, table.name, error)


def _director_verdict(cluster: Cluster, layout: CaseLayout, table: TableLayout, chunks: list[ChunkCensus],
                      placement: dict[int, str]) -> Validation:  # fmt: skip
    key = table.director_key or ""
    own = [c for c in chunks if not c.overlap and c.rows is not None]
    index_error, index_rows, per_chunk = None, 0, {}
    try:
        versions = {c.chunk: _index_version(layout, c) for c in own}
        index_rows = build_director_index(
            cluster, layout.database, table.name, key, {c.chunk: c.worker for c in own}, versions
        )
        key_director_index(cluster, layout.database, table.name, key)
        with cluster.czar.connect() as czar, czar.cursor() as cursor:
            per_chunk = census.index_rows_per_chunk(cursor, layout.database, table.name, [c.chunk for c in own])
    except DirectorIndexError as error:
        index_error = str(error)
    not_indexed = [f"chunk {c.chunk}: {c.rows} rows, {per_chunk.get(c.chunk, 0)} in the index"
                   for c in own if per_chunk.get(c.chunk, 0) != c.rows]  # fmt: skip
    bad_keys = [f"chunk {c.chunk} ({bad})" for c in chunks if not c.overlap for bad in c.bad_fingerprints]
    duplicates = sorted({key for c in own for key in c.duplicates})
    outcomes = [
        CheckOutcome(
            "objectids_on_workers",
            not bad_keys and not not_indexed and index_error is None,
            {"chunks with other keys than their files": len(bad_keys), "first": "; ".join(bad_keys[:SHOWN_KEYS]) or "none",
             "first missing on workers": str(sorted(k for c in own for k in c.missing_keys)[:SHOWN_KEYS]),
             "first unexpected on workers": str(sorted(k for c in own for k in c.unexpected_keys)[:SHOWN_KEYS]),
             "chunks not fully indexed": len(not_indexed), "first not indexed": "; ".join(not_indexed[:SHOWN_KEYS]) or "none",
             "attempts without fingerprint": sum(c.unfingerprinted for c in chunks)},
        ),
        CheckOutcome(
            "objectids_unique",
            not duplicates and index_error is None,
            {"duplicated keys within a chunk": str(duplicates[:SHOWN_KEYS]), "index error": index_error or "none"},
        ),
        _rows_outcome(chunks, fingerprinted=lambda c: c.overlap),  # own chunks: objectids_on_workers
    ]  # fmt: skip
    return Validation(outcomes, {"index rows": index_rows, "chunks": len(own), "rows": sum(c.rows or 0 for c in own)})


def _child_verdict(layout: CaseLayout, table: TableLayout, chunks: list[ChunkCensus]) -> Validation:
    misplaced = sum(c.misplaced_rows for c in chunks)
    orphans = sum(c.orphan_rows for c in chunks)
    outcomes = [
        _rows_outcome(chunks, fingerprinted=lambda c: True),
        CheckOutcome(
            "misplaced_rows",
            misplaced == 0,
            {"rows": misplaced, "first keys (key: rows)": _first_keys(chunks, "misplaced")},
        ),
        CheckOutcome(
            "orphan_rows",
            orphans == 0,
            {"rows": orphans, "first keys (key: rows)": _first_keys(chunks, "orphans"),
             "severity": "error (strict children)" if layout.strict_children else "warning (Qserv loads them)"},
            blocking=layout.strict_children,
        ),
    ]  # fmt: skip
    metadata = {
        "chunks": len(chunks),
        "rows": sum(c.rows or 0 for c in chunks),
        "NULL keys": sum(c.null_keys for c in chunks),
    }
    return Validation(outcomes, metadata)


def _first_keys(chunks: list[ChunkCensus], which: str) -> str:
    found: dict[int, int] = {}
    for chunk in chunks:
        for key, rows in getattr(chunk, which).items():
            found[key] = found.get(key, 0) + rows
    return ", ".join(f"{key}: {rows}" for key, rows in sorted(found.items())[:SHOWN_KEYS]) or "none"
