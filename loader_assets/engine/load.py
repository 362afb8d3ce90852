"""Load a frozen list of notices into the workers: claim, heartbeat, load, finish — every load path runs this.

The load assets, the batched `load_notices` job, `loader-assets load` and the notebook all end up here, so the
lease discipline lives in one place: nothing touches a worker before its notice is claimed, every claimed
notice is finished even when the run raises, and a notice whose lease was taken back is never finished by this
run: its rows are dropped instead.

A notice ends in one of three ways. Its file's fault (a bad record, a wrong column, a changed file): `failed`,
counted against it. Not its file's fault (its worker down or stalled, the czar down, an interrupt): given back
`ready`, not counted, and the load ends with that server's problem — the other workers' notices go on. Loaded:
`done`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from loader_assets import levels
from loader_assets.catalog import chunk_checks
from loader_assets.catalog.claims import Refusal, Refused
from loader_assets.catalog.gates import gate
from loader_assets.catalog.layout import CaseLayout, TableLayout, case_layouts
from loader_assets.catalog.notices import DoneFile, done_files
from loader_assets.catalog.store import Claim, Owner, Store
from loader_assets.engine.chunk_census import (
    DirectorKeys,
    census_from_keys,
    census_of_worker,
    chunk_version,
    new_census,
)
from loader_assets.engine.interruption import INTERRUPTION, Interruption
from loader_assets.engine.recovery import take_back
from loader_assets.engine.targets import ALL_WORKERS, Target, chunk_sizes, drop_attempt_rows, place_chunks
from loader_assets.engine.watchdog import Watchdog
from loader_assets.problems import CatalogDown, Interrupted, Problem, ServerDown
from loader_assets.wording import counted
from loader_assets.workers.attempt_partitions import drop_partitions
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.ddl import (
    SchemaError,
    build_director_index,
    chunk_table_name,
    create_database,
    create_table,
    index_version,
)
from loader_assets.workers.load_data import LoadError, LoadResult, load_file
from loader_assets.workers.statements import InFlight

log = logging.getLogger(__name__)

DEFAULT_STREAMS = 2  # LOAD DATA at once into each worker (benchmarks/end_to_end.py: more gain nothing here)
# Files' key columns kept for their chunk's census while it lags behind the loads; beyond this many bytes (8 a
# row), the census reads the worker instead (an anti-join there: ~10 % of a child's LOAD DATA CPU).
MAX_KEPT_KEY_BYTES = 256 << 20
DEFAULT_STALL_SECONDS = 300.0  # a statement waiting (full disk, lock) this long is abandoned (LOADER_STALL_SECONDS)


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
    started: float = 0.0  # time.monotonic() when its load began


@dataclass(frozen=True)
class Throughput:
    """What one worker took in during a run: files, rows and bytes over the seconds it was loading."""

    worker: str
    files: int
    rows: int
    bytes: int
    busy_seconds: float  # union of its files' load intervals: several streams at once count once
    wall_seconds: float  # from the first load's start to the last one's end, on any worker

    @property
    def busy_share(self) -> float:
        return self.busy_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def line(self) -> str:
        seconds = self.busy_seconds or 1e-9
        return (
            f"{self.worker}: {counted(self.files, 'file')}, {self.rows:,} rows, {self.bytes / 1e6:.1f} MB in "
            f"{self.busy_seconds:.1f} s"
            f" ({self.rows / seconds:,.0f} rows/s, {self.bytes / 1e6 / seconds:.1f} MB/s, busy {self.busy_share:.0%})"
        )


ChunkKey = tuple[str, str, int | None]  # (case, table, chunk)


@dataclass
class LoadReport:
    """What a run did with the notices it was handed (load streams record into it concurrently)."""

    loaded: list[Loaded] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # notice id -> error (counted against it)
    given_back: dict[int, str] = field(default_factory=dict)  # notice id -> why (not counted: not the file's fault)
    skipped: dict[int, Refused] = field(default_factory=dict)  # notice id -> why it was not claimed
    lost: list[int] = field(default_factory=list)  # lease taken back while loading: discarded
    problems: list[Problem] = field(default_factory=list)  # what ended the load early: servers down, an interrupt
    unfinished_targets: set[ChunkKey] = field(default_factory=set)
    failed_targets: dict[ChunkKey, str] = field(default_factory=dict)  # first error of each
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def rows(self) -> int:
        return sum(item.rows for item in self.loaded)

    @property
    def problem(self) -> Problem | None:
        """What stopped part of the load: an interrupt, else the first server found down; None if nothing did."""
        interrupts = [p for p in self.problems if isinstance(p, Interrupted)]
        return (interrupts or self.problems or [None])[0]

    def add_loaded(self, item: Loaded) -> None:
        with self._lock:
            self.loaded.append(item)

    def add_problem(self, problem: Problem) -> None:
        with self._lock:
            if all(p.cause != problem.cause for p in self.problems):
                self.problems.append(problem)

    def add_unfinished(self, claim: Claim, error: str | None, *, counted: bool = True) -> None:
        """A claimed notice this run did not load: failed with `error` (counted), given back (not counted), or
        lost to another holder (`error` None)."""
        with self._lock:
            target = (claim.case, claim.table, claim.chunk)
            if error is None:
                self.lost.append(claim.notice_id)
            elif counted:
                self.failed[claim.notice_id] = error
                self.failed_targets.setdefault(target, f"{claim.path}: {error}")
            else:
                self.given_back[claim.notice_id] = error
            self.unfinished_targets.add(target)

    def throughput(self) -> list[Throughput]:
        """Per worker (regular tables, loaded everywhere, left out), for the run's log and `load`'s summary."""
        chunked = [item for item in self.loaded if item.worker != ALL_WORKERS]
        if not chunked:
            return []
        wall = max(i.started + i.seconds for i in chunked) - min(i.started for i in chunked)
        by_worker: dict[str, list[Loaded]] = {}
        for item in chunked:
            by_worker.setdefault(item.worker, []).append(item)
        return [_throughput(worker, items, wall) for worker, items in sorted(by_worker.items())]

    @property
    def gate_refusals(self) -> list[Refused]:
        """Notices refused because their director's gate is not passed (a wait, not a failure)."""
        return [refused for refused in self.skipped.values() if refused.reason is Refusal.GATE_CLOSED]


class Heartbeat(threading.Thread):
    """Extends the leases of this process's attempts four times a lease and remembers which notices were taken
    back."""

    def __init__(self, store: Store, run_id: str, claimed: Mapping[int, int], lease: float) -> None:
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.store, self.run_id, self.lease, self.interval = store, run_id, lease, lease / 4
        self.claimed = dict(claimed)  # notice id -> attempt id
        self.lost: set[int] = set()
        self.beaten_at = time.monotonic()  # of the last beat that went through; the claim was the first
        self.failure: Exception | None = None  # of the last beat that did not
        self._stop_event = threading.Event()
        self._lock = threading.Lock()  # the load streams finish notices while it beats

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        with self._lock:
            attempts = list(self.claimed.values())
        sent = time.monotonic()  # the lease runs from before the beat: a freeze after it must not look fresh
        try:
            held = self.store.heartbeat(attempts)
        except Exception as error:  # a catalog hiccup must not kill the load; the next beat retries
            log.exception("heartbeat of run %s failed", self.run_id)
            self.failure = error
            return
        with self._lock:
            self.lost |= set(self.claimed) - held
            self.beaten_at = sent

    def still_held(self, notice_id: int, *, fresh: bool = False) -> bool:
        """Whether the notice is still ours, judged on a beat at most half a beat old (`fresh`: on a beat now): a
        process frozen beyond its lease (SIGSTOP, a paused VM) beats again before it writes, so it never writes
        under a lease taken over (the monotonic clock runs on while a process is stopped). When no beat went
        through for a whole lease, the notice may be another run's by now: the catalog's failure is raised."""
        if fresh or time.monotonic() - self.beaten_at > self.interval / 2:
            self.beat()
        if time.monotonic() - self.beaten_at > self.lease:
            raise self._unconfirmed()
        return notice_id not in self.lost

    def _unconfirmed(self) -> CatalogDown:
        """A new exception each time: the streams raise it at once, each with its own traceback."""
        if isinstance(self.failure, CatalogDown):
            return CatalogDown(self.failure.cause, self.failure.fix)
        return CatalogDown(
            f"the leases of run {self.run_id} went unconfirmed for over {self.lease:g} s: {self.failure}",
            "bring the catalog back; its notices are taken back and loaded again by the next load",
        )

    def done_with(self, notice_id: int) -> None:
        with self._lock:
            self.claimed.pop(notice_id, None)

    def stop(self) -> None:
        self._stop_event.set()


class Loader:
    """Loads claims into a cluster; remembers which databases and tables it already created."""

    def __init__(
        self,
        store: Store,
        cluster: Cluster,
        *,
        streams: int = DEFAULT_STREAMS,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
        interruption: Interruption = INTERRUPTION,
    ) -> None:
        self.store, self.cluster, self.streams, self.interruption = store, cluster, streams, interruption
        self.stall_seconds = stall_seconds
        self.statements = InFlight()
        self._layouts: dict[str, CaseLayout] = {}
        self._made: set[tuple[str, str, str]] = set()  # (worker, database, table or "") made by this process
        # (worker, database, table, attempt) made with its partition: nothing to reset before its load
        self._fresh: set[tuple[str, str, str, int]] = set()
        self._table_locks: dict[tuple[str, str, str], threading.Lock] = {}  # streams of a chunk and its overlap
        self._locks_guard = threading.Lock()  # `_table_locks`, `_fresh`, the chunk checks in flight
        self._loading: set[tuple[str, str]] = set()  # (case, table name) this run's notices load into
        self._down: dict[str, Problem] = {}  # workers (and "czar") found down during this load
        # Beside the next LOAD DATA: director chunks into the czar's index, a child chunk's census (level 4 then
        # recounts only chunks that changed since). One index writer takes every chunk loaded since its last
        # build (a build per chunk lagged behind the loads); the censuses run a thread per worker (a chunk's
        # censuses in turn: a later one is never overwritten by an earlier one).
        self._indexing: list[Future[None]] = []
        self._indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="director-index")
        self._to_index: dict[tuple[str, str], dict[int, str]] = {}  # (case, director) -> chunk -> worker
        self._census: dict[str, ThreadPoolExecutor] = {}  # worker -> its censuses, one at a time
        self._director_keys = DirectorKeys()
        self._director_done: dict[tuple[str, str, int], list[DoneFile]] = {}  # (case, director, chunk): its files
        self._proved: set[tuple[str, str]] = set()  # (case, director) whose index level 2 proved
        self._kept_bytes = 0  # of the key columns waiting in `_indexing` (under `_locks_guard`)

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
        on_chunk: Callable[[list[Loaded]], None] | None = None,
    ) -> LoadReport:
        """Claim `notice_ids` for `owner` (first taking back those a dead process holds), load what was claimed,
        finish every attempt.

        `on_chunk` is called (in this thread, while the other loads go on) with the loaded notices of each chunk
        (or regular table) once all of this run's notices of it loaded."""
        wanted = sorted(set(notice_ids))
        take_back(self.store, self.cluster, notice_ids=wanted, warn=progress)
        claims = self.store.claim(wanted, owner, force=force)
        report = LoadReport(
            skipped=self.store.why_not_claimed(set(wanted) - {c.notice_id for c in claims}, force=force)
        )
        if not claims:
            return report
        heartbeat = Heartbeat(
            self.store, owner.run_id, {c.notice_id: c.attempt_id for c in claims}, self.store.lease.total_seconds()
        )
        heartbeat.start()
        watchdog = Watchdog(self.statements, self.cluster, self.stall_seconds)
        watchdog.start()
        self.interruption.register(self.statements)
        try:  # from here on, whatever happens, every claimed notice is finished
            placement = self._place(claims, progress)
            self._load_in_streams(claims, placement, heartbeat, report, progress, on_chunk or (lambda _items: None))
        except ServerDown as problem:  # the czar, while placing: nothing was loaded
            report.add_problem(problem)
        finally:
            heartbeat.stop()
            watchdog.stop()
            self.interruption.unregister(self.statements)
            self._finish_unfinished(claims, report)
            wait(self._indexing)
            self._indexing.clear()
        for problem in self._down.values():
            report.add_problem(problem)
        if self.interruption.is_set:
            report.add_problem(self.interruption.problem(f"{counted(len(report.given_back), 'notice')} given back"))
        for throughput in report.throughput():
            progress(throughput.line())
        return report

    def _load_in_streams(
        self,
        claims: list[Claim],
        placement: dict[tuple[str, int], str],
        beat: Heartbeat,
        report: LoadReport,
        progress: Callable[[str], None],
        on_chunk: Callable[[list[Loaded]], None],
    ) -> None:
        """`self.streams` LOAD DATA at once into each worker, all workers at once; regular tables (loaded on
        every worker in turn) in a stream of their own. The first unexpected error stops what has not started."""
        left: dict[ChunkKey, int] = {}  # notices of each chunk not finished yet
        loaded_of: dict[ChunkKey, list[Loaded]] = {}  # and those of them loaded
        for claim in claims:
            left[_chunk_of(claim)] = left.get(_chunk_of(claim), 0) + 1
        lanes: dict[str, list[Claim]] = {}
        for claim in claims:
            lanes.setdefault(_worker_of(claim, placement), []).append(claim)
        self._loading = {
            (c.case, c.table if c.chunk is None else chunk_table_name(c.table, c.chunk, c.overlap)) for c in claims
        }
        held = self.store.set_workers({c.attempt_id: _worker_of(c, placement) for c in claims})
        pools = {
            worker: ThreadPoolExecutor(
                1 if worker == ALL_WORKERS else self.streams, thread_name_prefix=f"load-{worker}"
            )
            for worker in lanes
        }
        futures = {
            pools[worker].submit(self._load_claim, claim, placement, claim.attempt_id in held, beat, report): claim
            for worker, of_worker in lanes.items()
            for claim in of_worker
        }
        # Each worker's tables are made ahead of its streams: a CREATE TABLE (files synced on the worker) then
        # overlaps the LOAD DATA before it instead of delaying the next one.
        ahead = ThreadPoolExecutor(max(len(lanes), 1), thread_name_prefix="tables-ahead")
        ending = threading.Event()
        for worker, of_worker in lanes.items():
            if worker != ALL_WORKERS:
                ahead.submit(self._prepare_ahead, worker, [c for c in of_worker if c.attempt_id in held], beat, ending)
        try:
            for number, future in enumerate(as_completed(futures), 1):
                chunk = _chunk_of(futures[future])
                if (item := future.result()) is not None:
                    loaded_of.setdefault(chunk, []).append(item)
                left[chunk] -= 1
                if not left[chunk] and chunk not in report.unfinished_targets:
                    on_chunk(loaded_of.pop(chunk))
                if number % 50 == 0 or number == len(claims):
                    progress(
                        f"{number}/{len(claims)} notices: {len(report.loaded)} loaded, {len(report.failed)} failed"
                    )
        except BaseException as error:
            if not isinstance(error, Exception):  # a signal raised in this thread (Dagster raises a step's here)
                self.interruption.interrupt(None)
            raise
        finally:  # what has not started will not; what runs ends before the claims are finished for it
            ending.set()
            for future in futures:
                future.cancel()
            for pool in [*pools.values(), ahead]:
                pool.shutdown(wait=True)

    # -- one notice -------------------------------------------------------------------------------------

    def _load_claim(
        self, claim: Claim, placement: dict[tuple[str, int], str], held: bool, beat: Heartbeat, report: LoadReport
    ) -> Loaded | None:
        """Load one claimed notice; what it loaded, or None when it did not (recorded in `report` either way)."""
        layout = self.layout(claim.case)
        worker = _worker_of(claim, placement)
        target = Target(claim.table, claim.chunk, claim.overlap, worker)
        # The lease was checked when its worker was recorded (`held`), and a beat at most half a beat old
        # still holds it: nothing is written under a lease already lost, even by a run frozen and resumed.
        if not held or not beat.still_held(claim.notice_id):
            self._give_up(claim, report, "lease lost before loading; nothing written")
            return None
        if (why := self._why_not_start(target)) is not None:
            self._give_back(claim, report, beat, why)
            return None
        started = time.monotonic()
        before = _file_identity(layout.root / claim.path)
        try:
            results = self._load_everywhere(claim, layout, target)
        except ServerDown as problem:  # not the file's fault: the notice goes back, the worker is skipped
            if not beat.still_held(claim.notice_id, fresh=True):  # frozen past its lease, a handshake timed out:
                self._give_up(claim, report, f"lease lost while loading; {problem.cause}")  # not the server's fault
                return None
            if not self.interruption.is_set:  # an interrupt abandons statements: no server is at fault
                self._mark_down(target, problem)
            # What it wrote stays in its attempt's partition until the next claim or the sweep drops it: a worker
            # gone (or a statement still waiting on its server, holding the table) takes no DDL now.
            self._give_back(claim, report, beat, problem.cause)
            return None
        except (LoadError, SchemaError) as error:
            drop_attempt_rows(self.cluster, layout.database, target, [claim.attempt_id])
            # A falsy finish: the lease went first (e.g. the sweeper dropped the partition it was writing).
            ours = self.store.finish(claim.attempt_id, "failed", error=error.cause)
            report.add_unfinished(claim, error.cause if ours else None)
            beat.done_with(claim.notice_id)
            return None
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
            return None
        if status == "ready":  # the file changed while it loaded: these rows are of neither version
            drop_attempt_rows(self.cluster, layout.database, target, [claim.attempt_id])
            report.add_unfinished(claim, f"{claim.path}: changed during its load; ready to load again")
            beat.done_with(claim.notice_id)
            return None
        beat.done_with(claim.notice_id)
        self._check_chunk_soon(layout, claim, worker, results[0].keys)
        loaded = Loaded(
            notice_id=claim.notice_id, attempt_id=claim.attempt_id, case=claim.case, table=claim.table,
            chunk=claim.chunk, overlap=claim.overlap, path=claim.path, worker=worker, rows=rows,
            bytes=results[0].bytes, started=started, seconds=time.monotonic() - started,
        )  # fmt: skip
        report.add_loaded(loaded)
        return loaded

    def _why_not_start(self, target: Target) -> str | None:
        """Why a notice is not started now: an interrupt, or one of its workers found down."""
        if self.interruption.is_set:
            return f"interrupted by {self.interruption.name} before it was loaded"
        for worker in target.workers(self.cluster):
            if worker in self._down:
                return f"not loaded: {self._down[worker].cause}"
        return None

    def _mark_down(self, target: Target, problem: ServerDown) -> None:
        self._down.setdefault(problem.server or target.worker, problem)

    def _check_chunk_soon(self, layout: CaseLayout, claim: Claim, worker: str, keys: pa.Array | None) -> None:
        table = layout.tables[claim.table]
        with self._locks_guard:  # the streams call this at once; what is done is dropped (its errors are logged)
            self._indexing = [f for f in self._indexing if not f.done()]
            if table.kind == levels.DIRECTOR and not claim.overlap:
                waiting = self._to_index.setdefault((layout.case, table.name), {})
                if not waiting:  # else a build is queued that will take this chunk too
                    self._indexing.append(self._indexer.submit(self._index_chunks, layout, table))
                waiting[claim.chunk] = worker
            elif table.kind == levels.CHILD:
                size = keys.nbytes if keys is not None else 0
                kept = keys if self._kept_bytes + size <= MAX_KEPT_KEY_BYTES else None  # bound the memory
                self._kept_bytes += size if kept is not None else 0
                loaded = (claim.attempt_id, kept)
                if worker not in self._census:
                    self._census[worker] = ThreadPoolExecutor(1, thread_name_prefix=f"census-{worker}")
                census = self._census[worker].submit(self._census_chunk, layout, table, claim.chunk, worker, loaded)
                self._indexing.append(census)

    def _index_chunks(self, layout: CaseLayout, table: TableLayout) -> None:
        """The director chunks loaded since the last build into the czar's director index now, so level 2 mostly
        verifies it. Level 2 rebuilds any chunk whose index is stale or missing: a failure here costs time, never
        correctness."""
        with self._locks_guard:
            placed = self._to_index.pop((layout.case, table.name), {})
        versions = {}
        for chunk in placed:
            done = done_files(self.store.db, layout.case, table.name, chunk=chunk)
            versions[chunk] = index_version(layout.incarnation, (f.attempt_id for f in done if not f.overlap))
        try:
            build_director_index(self.cluster, layout.database, table.name, table.director_key or "", placed, versions)
        except Exception as error:  # the czar busy or down, a duplicate key: level 2 judges it
            log.warning("director index of chunks %s of %s.%s left to level 2: %s",
                        sorted(placed), layout.database, table.name, error)  # fmt: skip

    def _census_chunk(self, layout: CaseLayout, table: TableLayout, chunk: int | None, worker: str,
                      loaded: tuple[int, pa.Array | None]) -> None:  # fmt: skip
        """A loaded child chunk's census, kept with its version for level 4 (which takes it again if anything
        changed or this failed). `loaded`: the attempt just loaded and its file's keys; when that file is the
        whole chunk, its keys tell the absent ones, else an anti-join on the worker does."""
        try:
            self._take_census(layout, table, chunk, worker, loaded)
        finally:
            with self._locks_guard:
                self._kept_bytes -= loaded[1].nbytes if loaded[1] is not None else 0

    def _take_census(self, layout: CaseLayout, table: TableLayout, chunk: int | None, worker: str,
                     loaded: tuple[int, pa.Array | None]) -> None:  # fmt: skip
        assert chunk is not None
        director = layout.director_of(table)
        files = done_files(self.store.db, layout.case, table.name, chunk=chunk)
        version = chunk_version(files, self._director_files(layout, director, chunk))
        found = new_census(table, chunk, False, worker, files)
        attempt_id, keys = loaded
        try:
            if (
                keys is not None
                and [f.attempt_id for f in files] == [attempt_id]
                and self._index_proved(layout, director)
            ):
                census_from_keys(self.cluster, layout, table, director, found, keys, self._director_keys)
            else:
                census_of_worker(self.cluster, worker, layout, table, director, [found])
            chunk_checks.keep(self.store.db, layout.case, table.name, chunk, version, found.to_json())
        except Exception as error:  # a worker or the czar busy or down: level 4 takes it
            log.warning("census of chunk %s of %s.%s left to level 4: %s", chunk, layout.database, table.name, error)

    # Read once per Loader (a run's step) for all its child chunks (a catalog read each was a third of a census's
    # CPU), before the census reads the director's keys: a director chunk loaded again meanwhile changes its
    # attempts, so level 4 finds the census's version stale and retakes it.
    def _director_files(self, layout: CaseLayout, director: TableLayout, chunk: int) -> list[DoneFile]:
        key = (layout.case, director.name, chunk)
        if (found := self._director_done.get(key)) is None:
            found = self._director_done[key] = done_files(self.store.db, layout.case, director.name, chunk=chunk)
        return found

    def _index_proved(self, layout: CaseLayout, director: TableLayout) -> bool:
        """Whether level 2 proved the director index equal to the workers (its gate passed when first asked by this
        Loader: a census kept meanwhile is versioned by the director's attempts, which a reload changes)."""
        key = (layout.case, director.name)
        if key not in self._proved:
            found = gate(self.store.db, layout.case, levels.VALIDATE_DIRECTOR, director.name)
            if found is None or found.status != "passed":
                return False
            self._proved.add(key)
        return True

    def _load_everywhere(self, claim: Claim, layout: CaseLayout, target: Target) -> list[LoadResult]:
        """Load the notice on each worker of its target (a regular table on all of them)."""
        return [self._load_on(name, claim, layout, target) for name in target.workers(self.cluster)]

    def _prepare_ahead(self, worker: str, claims: list[Claim], beat: Heartbeat, ending: threading.Event) -> None:
        """Make the tables of a worker's claims, in their loading order, until the load ends; as a stream, nothing
        for a notice whose lease is lost. Any failure stops it: the stream that needs the table tries again and
        reports it."""
        for claim in claims:
            if ending.is_set() or self.interruption.is_set or worker in self._down:
                return
            try:
                if not beat.still_held(claim.notice_id):
                    continue
                layout = self.layout(claim.case)
                self._prepare(worker, layout, claim, Target(claim.table, claim.chunk, claim.overlap, worker))
            except Exception as error:
                log.debug("tables of %s made by its streams from now on: %s", worker, error)
                return

    def _load_on(self, worker: str, claim: Claim, layout: CaseLayout, target: Target) -> LoadResult:
        server = self.cluster.worker(worker)
        table = layout.tables[claim.table]
        self._prepare(worker, layout, claim, target)
        made_with_partition = (worker, layout.database, target.table_name, claim.attempt_id)
        with self._locks_guard:
            fresh = made_with_partition in self._fresh
            self._fresh.discard(made_with_partition)
        if claim.discard_attempts and not fresh:
            what = f"DROP PARTITION of earlier attempts of {target.table_name}"
            with (
                server.connect(reuse=True) as conn,
                self.statements.running(server, conn, what, layout.database),
                conn.cursor() as cursor,
            ):
                drop_partitions(cursor, layout.database, target.table_name, list(claim.discard_attempts))
        return load_file(
            server, layout.database, target.table_name, layout.root / claim.path, claim.format,
            layout.dialect_of(claim.format, table), layout.charset, claim.attempt_id, table.column_names,
            key=table.director_key if table.kind != levels.REGULAR else None, max_warnings=layout.max_num_warnings,
            partition_ready=fresh, statements=self.statements,
        )  # fmt: skip

    def _prepare(self, worker: str, layout: CaseLayout, claim: Claim, target: Target) -> None:
        """The notice's table on `worker`, made with the attempt's partition when new (one DDL: under load, a
        worker's DDL is what a stream waits for most; `_fresh` then holds it). A chunk's FullOverlap twin (Qserv
        wants both) is made now unless a notice of this run loads into it."""
        server = self.cluster.worker(worker)
        table = layout.tables[claim.table]
        spec = (layout.database, table.columns, table.indexes, layout.charset)
        with self._made_once(worker, layout.database, None) as made:
            if not made:
                what = f"CREATE DATABASE {layout.database}"
                with server.connect(reuse=True) as conn, self.statements.running(server, conn, what, layout.database):
                    create_database(conn, layout.database, layout.charset, self.store.db.catalog_id)
        with self._made_once(worker, layout.database, target.table_name) as made:
            if not made and self._create(worker, target.table_name, *spec, attempt_id=claim.attempt_id):
                with self._locks_guard:
                    self._fresh.add((worker, layout.database, target.table_name, claim.attempt_id))
        if claim.chunk is not None:
            twin = chunk_table_name(claim.table, claim.chunk, not claim.overlap)
            if (claim.case, twin) not in self._loading:
                with self._made_once(worker, layout.database, twin) as made:
                    if not made:
                        self._create(worker, twin, *spec)

    def _create(self, worker: str, name: str, database: str, columns: list, indexes: list, charset: str,
                **kw: int) -> bool:  # fmt: skip
        server = self.cluster.worker(worker)
        with (
            server.connect(reuse=True) as conn,
            self.statements.running(server, conn, f"CREATE TABLE {name}", database),
        ):
            return create_table(conn, database, name, columns, indexes, charset, **kw)

    @contextmanager
    def _made_once(self, worker: str, database: str, table: str | None) -> Iterator[bool]:
        """Whether this process made it already; the streams wanting it wait for the one making it."""
        key = (worker, database, table or "")
        with self._locks_guard:
            lock = self._table_locks.setdefault(key, threading.Lock())
        with lock:
            yield key in self._made
            self._made.add(key)

    def _discard(self, claim: Claim, layout: CaseLayout, target: Target, report: LoadReport) -> None:
        """Our lease was taken back: drop what this attempt wrote and leave the notice to its new holder."""
        drop_attempt_rows(self.cluster, layout.database, target, [claim.attempt_id])
        self._give_up(claim, report, "lease lost while loading; rows discarded")

    def _give_up(self, claim: Claim, report: LoadReport, why: str) -> None:
        """Leave a notice whose lease is gone to its new holder; `finish` records this attempt as lost."""
        self.store.finish(claim.attempt_id, "failed", error=why)
        report.add_unfinished(claim, None)

    def _give_back(self, claim: Claim, report: LoadReport, beat: Heartbeat, why: str) -> None:
        """Not the file's fault: the notice is ready again, this attempt not counted."""
        given = self.store.give_back([claim.attempt_id], why)
        report.add_unfinished(claim, why if given else None, counted=False)
        beat.done_with(claim.notice_id)

    def _finish_unfinished(self, claims: list[Claim], report: LoadReport) -> None:
        """The load is ending early (a server down, an interrupt, an error): what it still holds goes back, not
        counted against the notices (their files were never tried)."""
        finished = {item.notice_id for item in report.loaded} | set(report.failed) | set(report.lost)
        finished |= set(report.given_back)
        left = [claim for claim in claims if claim.notice_id not in finished]
        if not left:
            return
        why = (
            f"interrupted by {self.interruption.name} before it was loaded"
            if self.interruption.is_set
            else (report.problem.cause if report.problem else "the run stopped before this notice was loaded")
        )
        try:
            given = self.store.give_back([claim.attempt_id for claim in left], why)
        except CatalogDown as problem:  # the leases lapse; the next load or the sweeper takes them back
            log.warning("notices of this run not given back: %s", problem.cause)
            return
        for claim in left:
            report.add_unfinished(claim, why if claim.notice_id in given else None, counted=False)

    # -- placement --------------------------------------------------------------------------------------

    def _place(self, claims: list[Claim], report_problem: Callable[[str], None]) -> dict[tuple[str, int], str]:
        """Worker of every claimed chunk, placing new chunks (placement is decided once, at the czar).

        A worker whose disk lacks room for what this run assigns to it is reported before anything loads.
        """
        placement: dict[tuple[str, int], str] = {}
        for case in sorted({c.case for c in claims}):
            sizes = chunk_sizes((c.chunk, c.size) for c in claims if c.case == case)
            of_case = place_chunks(self.cluster, self.layout(case), sizes)
            for worker, found in self.cluster.check_room(of_case, sizes, self.layout(case).database).items():
                if isinstance(found, ServerDown):  # its notices go back; the others load
                    self._down.setdefault(worker, found)
                elif found.refused:  # not a byte onto a disk that cannot take them all
                    self._down.setdefault(worker, found.problem())
                else:
                    report_problem(f"warning: {found.line()}")
            placement.update({(case, chunk): worker for chunk, worker in of_case.items()})
        return placement


def _chunk_of(claim: Claim) -> ChunkKey:
    return claim.case, claim.table, claim.chunk


def _worker_of(claim: Claim, placement: dict[tuple[str, int], str]) -> str:
    return ALL_WORKERS if claim.chunk is None else placement[(claim.case, claim.chunk)]


def _throughput(worker: str, items: list[Loaded], wall: float) -> Throughput:
    busy = busy_seconds([(i.started, i.started + i.seconds) for i in items])
    return Throughput(worker, len(items), sum(i.rows for i in items), sum(i.bytes for i in items), busy, wall)


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


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
