"""Load a frozen list of notices into the workers: claim, heartbeat, load, finish — every load path runs this.

The load assets, the batched `load_notices` job, `loader-assets load` and the notebook all end up here, so the
lease discipline lives in one place: nothing touches a worker before its notice is claimed, every claimed
notice is finished (done or failed) even when the run raises, and a notice whose lease was taken back is
never finished by this run: its rows are dropped instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from loader_assets import levels
from loader_assets.catalog import chunk_checks
from loader_assets.catalog.claims import Refusal, Refused
from loader_assets.catalog.layout import CaseLayout, TableLayout, case_layouts
from loader_assets.catalog.notices import done_files
from loader_assets.catalog.store import Claim, Owner, Store
from loader_assets.engine.chunk_census import census_of_worker, chunk_version, new_census
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.connection import WorkerUnavailable, connection
from loader_assets.workers.load_data import LoadError, LoadResult, load_file
from loader_assets.workers.partitions import drop_attempt_partitions
from loader_assets.workers.schema import (
    SchemaError,
    build_director_index,
    chunk_table_name,
    create_chunk_tables,
    create_database,
    create_table,
    index_version,
)

log = logging.getLogger(__name__)
ALL_WORKERS = "all"  # the worker of a regular table's notice: it is copied to every worker

LoadFailure = (LoadError, WorkerUnavailable, SchemaError)


class NoticeFailed(RuntimeError):
    """A notice could not be loaded on one of its workers; the message names the worker and the cause."""


@dataclass(frozen=True)
class Loaded:
    """One notice loaded by this run."""

    notice_id: int
    attempt_id: int
    case: str
    table: str
    chunk: int | None
    overlap: bool
    path: str
    worker: str
    rows: int
    bytes: int
    seconds: float


@dataclass
class LoadReport:
    """What a run did with the notices it was handed."""

    loaded: list[Loaded] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # notice id -> error
    skipped: dict[int, Refused] = field(default_factory=dict)  # notice id -> why it was not claimed
    lost: list[int] = field(default_factory=list)  # lease taken back while loading: discarded
    unfinished_targets: set[tuple[str, str, int | None]] = field(default_factory=set)  # (case, table, chunk)

    @property
    def rows(self) -> int:
        return sum(item.rows for item in self.loaded)

    @property
    def gate_refusals(self) -> list[Refused]:
        """Notices refused because their director's gate is not passed (a wait, not a failure)."""
        return [refused for refused in self.skipped.values() if refused.reason is Refusal.GATE_CLOSED]


class Heartbeat(threading.Thread):
    """Extends the leases of this process's attempts every `interval` seconds and remembers which notices
    were taken back."""

    def __init__(self, store: Store, run_id: str, claimed: Mapping[int, int], interval: float) -> None:
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.store, self.run_id, self.interval = store, run_id, interval
        self.claimed = dict(claimed)  # notice id -> attempt id
        self.lost: set[int] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        try:
            held = self.store.heartbeat(list(self.claimed.values()))
        except Exception:  # a catalog hiccup must not kill the load; the next beat retries
            log.exception("heartbeat of run %s failed", self.run_id)
            return
        self.lost |= set(self.claimed) - held

    def done_with(self, notice_id: int) -> None:
        self.claimed.pop(notice_id, None)

    def stop(self) -> None:
        self._stop_event.set()


class Loader:
    """Loads claims into a cluster; remembers which databases and tables it already created."""

    def __init__(self, store: Store, cluster: Cluster) -> None:
        self.store, self.cluster = store, cluster
        self._layouts: dict[str, CaseLayout] = {}
        self._created: set[tuple[str, str, str]] = set()  # (worker, database, table)
        # Beside the next LOAD DATA: a director chunk into the czar's index, a child chunk's census (level 4
        # then recounts only chunks that changed since).
        self._indexing: list[Future[None]] = []
        self._indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-checks")

    def layout(self, case: str) -> CaseLayout:
        if case not in self._layouts:
            self._layouts.update(case_layouts(self.store.db, case))
        return self._layouts[case]

    def load(
        self,
        notice_ids: Iterable[int],
        owner: Owner,
        *,
        force: bool = False,
        progress: Callable[[str], None] = log.info,
    ) -> LoadReport:
        """Claim `notice_ids` for `owner`, load what was claimed, finish every attempt."""
        wanted = sorted(set(notice_ids))
        claims = self.store.claim(wanted, owner, force=force)
        report = LoadReport(
            skipped=self.store.why_not_claimed(set(wanted) - {c.notice_id for c in claims}, force=force)
        )
        if not claims:
            return report
        heartbeat = Heartbeat(
            self.store, owner.run_id, {c.notice_id: c.attempt_id for c in claims}, self.store.lease.total_seconds() / 4
        )
        heartbeat.start()
        try:  # from here on, whatever happens, every claimed notice is finished
            placement = self._place(claims, progress)
            for number, claim in enumerate(claims, 1):
                self._load_claim(claim, placement, heartbeat, report)
                if number % 50 == 0 or number == len(claims):
                    progress(
                        f"{number}/{len(claims)} notices: {len(report.loaded)} loaded, {len(report.failed)} failed"
                    )
        finally:
            heartbeat.stop()
            self._fail_unfinished(claims, report)
            wait(self._indexing)
            self._indexing.clear()
        return report

    # -- one notice -------------------------------------------------------------------------------------

    def _load_claim(
        self, claim: Claim, placement: dict[tuple[str, int], str], beat: Heartbeat, report: LoadReport
    ) -> None:
        layout = self.layout(claim.case)
        worker = ALL_WORKERS if claim.chunk is None else placement[(claim.case, claim.chunk)]
        target = Target(claim.table, claim.chunk, claim.overlap, worker)
        # The heartbeat may not have noticed yet (a run stopped beyond its lease, then resumed): set_worker
        # checks the lease in the same statement, so nothing is ever written under a lease already lost.
        if claim.notice_id in beat.lost or not self.store.set_worker(claim.attempt_id, worker):
            self._give_up(claim, report, "lease lost before loading; nothing written")
            return
        started = time.monotonic()
        before = _file_identity(layout.root / claim.path)
        try:
            results = self._load_everywhere(claim, layout, target)
        except NoticeFailed as error:
            drop_attempt_rows(self.cluster, layout.database, target, [claim.attempt_id])
            if self.store.finish(claim.attempt_id, "failed", error=str(error)):
                report.failed[claim.notice_id] = str(error)
                report.unfinished_targets.add((claim.case, claim.table, claim.chunk))
            else:  # the lease went first (e.g. the sweeper dropped the partition it was writing): not ours
                report.lost.append(claim.notice_id)
                report.unfinished_targets.add((claim.case, claim.table, claim.chunk))
            beat.done_with(claim.notice_id)
            return
        rows = results[0].rows  # a regular table holds the same rows on every worker
        note = "empty file: loaded as 0 rows" if rows == 0 else None
        keys, unproved = results[0].fingerprint, results[0].unproved
        status = self.store.finish(
            claim.attempt_id, "done", rows=rows, warnings=results[0].warnings, error=note,
            fingerprint=keys.to_json() if keys else ({"error": unproved} if unproved else None),
            claimed_file=(claim.size, claim.mtime), changed_on_disk=_changed_since(before, layout.root / claim.path),
        )  # fmt: skip
        if status is None:
            self._discard(claim, layout, target, report)
            return
        if status == "ready":  # the file changed while it loaded: these rows are of neither version
            drop_attempt_rows(self.cluster, layout.database, target, [claim.attempt_id])
            report.failed[claim.notice_id] = f"{claim.path}: changed during its load; ready to load again"
            report.unfinished_targets.add((claim.case, claim.table, claim.chunk))
            beat.done_with(claim.notice_id)
            return
        beat.done_with(claim.notice_id)
        table = layout.tables[claim.table]
        if table.kind == levels.DIRECTOR and not claim.overlap:
            self._indexing.append(self._indexer.submit(self._index_chunk, layout, table, claim.chunk, worker))
        elif table.kind == levels.CHILD:
            self._indexing.append(self._indexer.submit(self._census_chunk, layout, table, claim.chunk, worker))
        report.loaded.append(
            Loaded(
                notice_id=claim.notice_id, attempt_id=claim.attempt_id, case=claim.case, table=claim.table,
                chunk=claim.chunk, overlap=claim.overlap, path=claim.path, worker=worker, rows=rows,
                bytes=results[0].bytes, seconds=time.monotonic() - started,
            )
        )  # fmt: skip

    def _index_chunk(self, layout: CaseLayout, table: TableLayout, chunk: int | None, worker: str) -> None:
        """The director chunk's keys into the czar's director index now, so level 2 mostly verifies it. Level 2
        rebuilds any chunk whose index is stale or missing: a failure here costs time, never correctness."""
        done = done_files(self.store.db, layout.case, table.name, chunk=chunk)
        version = index_version(f.attempt_id for f in done if not f.overlap)
        try:
            build_director_index(
                self.cluster, layout.database, table.name, table.director_key or "", {chunk: worker}, {chunk: version}
            )
        except Exception as error:  # the czar busy or down, a duplicate key: level 2 judges it
            log.warning(
                "director index of chunk %s of %s.%s left to level 2: %s", chunk, layout.database, table.name, error
            )

    def _census_chunk(self, layout: CaseLayout, table: TableLayout, chunk: int | None, worker: str) -> None:
        """A loaded child chunk's census on its worker, kept with its version for level 4 (which takes it
        again if anything changed or this failed)."""
        assert chunk is not None
        director = layout.director_of(table)
        files = done_files(self.store.db, layout.case, table.name, chunk=chunk)
        version = chunk_version(files, done_files(self.store.db, layout.case, director.name, chunk=chunk))
        found = new_census(table, chunk, False, worker, files)
        try:
            census_of_worker(self.cluster, worker, layout, table, director, [found])
            chunk_checks.keep(self.store.db, layout.case, table.name, chunk, version, found.to_json())
        except Exception as error:  # a worker or the czar busy or down: level 4 takes it
            log.warning("census of chunk %s of %s.%s left to level 4: %s", chunk, layout.database, table.name, error)

    def _load_everywhere(self, claim: Claim, layout: CaseLayout, target: Target) -> list[LoadResult]:
        """Load the notice on each worker of its target; a failure names the worker (URLs say little)."""
        results = []
        for name in target.workers(self.cluster):
            try:
                results.append(self._load_on(name, claim, layout, target))
            except LoadFailure as error:
                raise NoticeFailed(f"on {name}: {error}") from error
        return results

    def _load_on(self, worker: str, claim: Claim, layout: CaseLayout, target: Target) -> LoadResult:
        url = self.cluster.worker_url(worker)
        table = layout.tables[claim.table]
        self._ensure_tables(worker, url, layout, table, claim.chunk)
        if claim.discard_attempts:
            drop_attempt_partitions(url, layout.database, target.table_name, claim.discard_attempts)
        return load_file(
            url, layout.database, target.table_name, layout.root / claim.path, claim.format,
            layout.dialect_of(claim.format, table), layout.charset, claim.attempt_id, table.column_names,
            key=table.director_key if table.kind != levels.REGULAR else None, max_warnings=layout.max_num_warnings,
        )  # fmt: skip

    def _ensure_tables(self, worker: str, url: str, layout: CaseLayout, table: TableLayout, chunk: int | None) -> None:
        """The database and the table (a chunk's table and its overlap twin), once per process."""
        key = (worker, layout.database, table.name if chunk is None else chunk_table_name(table.name, chunk))
        if key in self._created:
            return
        with connection(url) as conn:
            create_database(conn, layout.database, layout.charset, self.store.db.catalog_id)
            if chunk is None:
                create_table(conn, layout.database, table.name, table.columns, table.indexes, layout.charset)
            else:
                create_chunk_tables(
                    conn, layout.database, table.name, table.columns, table.indexes, chunk, layout.charset
                )
        self._created.add(key)

    def _discard(self, claim: Claim, layout: CaseLayout, target: Target, report: LoadReport) -> None:
        """Our lease was taken back: drop what this attempt wrote and leave the notice to its new holder."""
        drop_attempt_rows(self.cluster, layout.database, target, [claim.attempt_id])
        self._give_up(claim, report, "lease lost while loading; rows discarded")

    def _give_up(self, claim: Claim, report: LoadReport, why: str) -> None:
        """Leave a notice whose lease is gone to its new holder; `finish` records this attempt as lost."""
        self.store.finish(claim.attempt_id, "failed", error=why)
        report.lost.append(claim.notice_id)
        report.unfinished_targets.add((claim.case, claim.table, claim.chunk))

    def _fail_unfinished(self, claims: list[Claim], report: LoadReport) -> None:
        """The run is stopping (an exception, a kill signal turned into one): release what it still holds."""
        finished = {item.notice_id for item in report.loaded} | set(report.failed) | set(report.lost)
        for claim in claims:
            if claim.notice_id not in finished:
                self.store.finish(claim.attempt_id, "failed", error="run stopped before this notice was loaded")
                report.failed[claim.notice_id] = "run stopped before this notice was loaded"
                report.unfinished_targets.add((claim.case, claim.table, claim.chunk))

    # -- placement --------------------------------------------------------------------------------------

    def _place(self, claims: list[Claim], report_problem: Callable[[str], None]) -> dict[tuple[str, int], str]:
        """Worker of every claimed chunk, placing new chunks (placement is decided once, at the czar).

        A worker whose disk lacks room for what this run assigns to it is reported before anything loads.
        """
        placement: dict[tuple[str, int], str] = {}
        for case in sorted({c.case for c in claims}):
            sizes = chunk_sizes((c.chunk, c.size) for c in claims if c.case == case)
            of_case = place_chunks(self.cluster, self.layout(case), sizes)
            for problem in self.cluster.check_room(of_case, sizes):
                report_problem(f"warning: {problem}")
            placement.update({(case, chunk): worker for chunk, worker in of_case.items()})
        return placement


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
    """Drop what these attempts wrote; a worker that is down keeps them until the next claim drops them."""
    for worker in target.workers(cluster):
        try:
            drop_attempt_partitions(cluster.worker_url(worker), database, target.table_name, attempts)
        except (WorkerUnavailable, SchemaError) as error:  # the attempt is not done: its rows go later
            warn(f"rows of attempts {attempts} not dropped yet from {target.table_name} on {worker}: {error}")


def _file_identity(path: Path) -> tuple[int, float] | None:
    try:
        stat = path.stat()
    except OSError:
        return None  # gone: the load fails naming it, or the next registration says so
    return stat.st_size, stat.st_mtime


def _changed_since(before: tuple[int, float] | None, path: Path) -> tuple[int, float] | None:
    """The file's size and mtime now, when they differ from those just before its load."""
    after = _file_identity(path)
    return after if after is not None and after != before else None


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
