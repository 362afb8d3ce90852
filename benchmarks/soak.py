"""Soak: N random faults over a 200-notice case on PostgreSQL with the daemon, then everything finishes, exact.

Starts a throwaway local cluster (czar + 2 workers), a throwaway PostgreSQL catalog database, a Dagster instance
in a temp DAGSTER_HOME and `dagster-daemon run` on it (sensors every --sensor-interval s, leases of --lease s),
writes and registers a sample case of --chunks chunks (50: 200 notices), then injects --faults faults one after
the other, kinds and targets drawn by a seeded RNG (every round of five draws each kind once), each while loads
are running:

- kill_run: SIGKILL of the process holding notices: a `loader-assets load --force` subprocess, or the step
  process of a queued run the daemon launched (forced schedule); survived when its notices were taken back;
- stop_past_lease: SIGSTOP of such a process at a moment it is inside no statement (no worker, czar or catalog
  statement, no open catalog transaction, no SQLite write lock), held until the stale sweeper took its notices
  back, past the lease, then SIGCONT; survived when it exited leaving no partition of its lost attempts;
- worker_restart: a worker's mariadbd stopped while a load writes into it, started again once the attempts
  writing there gave up and one more was refused (or 5 s); survived when those attempts all ended;
- forced_reload_race: some notices reset and scheduled (the run queue loads them) and, once a queued run holds
  some, `loader-assets load --level L --force` of the whole level, both held at their first worker write by a
  read lock on every worker until both hold notices; survived when both sides ended, none stuck;
- duplicate_schedule: the same notices scheduled twice (reset first, or both forced); survived when all their
  runs ended and, not forced, no notice was loaded twice by them.

After each fault the unfinished notices are scheduled again (as an operator would), without waiting. Then
everything finishes: failed notices are scheduled again (parked ones reset first) until every level-1 and
level-3 notice is done and the gates of levels 2 and 4 passed (validated by the daemon's level_gates sensor),
nothing is in flight, and the result is checked:

- every notice done, with exactly one `done` attempt, the one it points at; every gate passed;
- on every worker, for every table: its partitions are exactly the done attempts of the notices placed there
  (chunk tables on their worker, regular tables on every worker), each holding the records of its file (counted
  with `count_records` in the table's dialect); no other partition or row anywhere; the czar's director index
  holds one row per director record.

    .venv/bin/python benchmarks/soak.py [--faults 30] [--seed 1] [--timeout 1200] [--chunks 50]
                                        [--rows-per-chunk 200] [--lease 6] [--sensor-interval 2]
                                        [--children-share 0.3]

Prints every fault (kind, what it hit, survived or not, seconds), the faults injected and survived by kind, the
seconds of each phase and `EXACT` or `NOT EXACT` with what was left; exits 1 when not exact.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # loader_assets_tests: helpers shared with the tests

import dagster as dg
import pyarrow.parquet as pq
from sqlalchemy import case as sql_case
from sqlalchemy import func, select, text

from loader_assets import levels, tags
from loader_assets.catalog import schedules
from loader_assets.catalog.gates import gate
from loader_assets.catalog.layout import CaseLayout, case_layout
from loader_assets.catalog.schema import attempts, notices
from loader_assets.catalog.store import Store, pid_alive
from loader_assets.catalog.time import utcnow
from loader_assets.defs.jobs import IN_FLIGHT
from loader_assets.engine.targets import ALL_WORKERS
from loader_assets.operations import cases
from loader_assets.operations.context import Context
from loader_assets.qserv.sample import write_sample_case
from loader_assets.selection import select as select_notices
from loader_assets.workers import local
from loader_assets.workers.cluster import META_DB, Cluster, ClusterConfig
from loader_assets.workers.ddl import STAMP_TABLE, TRANS_ID, chunk_table_name, director_index_table
from loader_assets.workers.formats import count_records
from loader_assets_tests.recovery.helpers import all_threads_stopped
from loader_assets_tests.servers import REPOSITORY, dagster_daemon, postgres_database

FAULT_KINDS = ("kill_run", "stop_past_lease", "worker_restart", "forced_reload_race", "duplicate_schedule")
LOAD_LEVELS = (levels.LOAD_DIRECTOR, levels.LOAD_CHILDREN)
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
WRITE_TIMEOUT = "10"  # a worker stopped under an upload is noticed in seconds
HOLDER_TIMEOUT = 120.0  # for a load to get going: a queued run is a process, then a step process, on 2 cores
RETRIES = 3  # draws of a kind in a row when it could not be injected (its load ended first)
EPISODE_TIMEOUT = 300.0  # for both sides of a race, or both schedules of a duplicate, to end
FINISH_RESERVE = (180.0, 0.2)  # seconds, share of --timeout: the larger is kept for finishing after the faults
PLACEMENT_LOCK = "qservMeta.chunk_placement"  # the czar's user lock around placing chunks (workers/cluster.py)
BUSY_PG_STATES = ("active", "idle in transaction", "idle in transaction (aborted)")
T = TypeVar("T")


# ------------------------------------------------------------------------------------------- what it reports


@dataclass
class Fault:
    number: int
    kind: str
    variant: str = ""
    at: float = 0.0  # seconds since the soak began
    seconds: float = 0.0  # from injection to recovery (or giving up)
    injected: bool = False
    survived: bool = False
    detail: str = ""

    def line(self) -> str:
        verdict = "survived" if self.survived else ("NOT SURVIVED" if self.injected else "not injected")
        return (
            f"fault {self.number:2d} at {self.at:6.1f} s  {self.kind:18s} {self.variant:22s} "
            f"{verdict:12s} {self.seconds:5.1f} s  {self.detail}"
        )


@dataclass
class SoakResult:
    faults: list[Fault]
    problems: list[str]  # empty: exact
    timings: dict[str, float]
    tables: dict[str, tuple[int, int]]  # table -> (rows of the files, rows on the workers)
    notes: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.problems

    @property
    def injected(self) -> list[Fault]:
        return [f for f in self.faults if f.injected]

    @property
    def survived(self) -> list[Fault]:
        return [f for f in self.faults if f.injected and f.survived]

    def lines(self) -> list[str]:
        out = ["", "faults by kind (injected / survived):"]
        injected, survived = Counter(f.kind for f in self.injected), Counter(f.kind for f in self.survived)
        for kind in FAULT_KINDS:
            out.append(f"  {kind:20s} {injected[kind]:3d} / {survived[kind]:3d}")
        out.append(f"  {'all':20s} {len(self.injected):3d} / {len(self.survived):3d}"
                   f"  ({len(self.faults) - len(self.injected)} draws not injected)")  # fmt: skip
        out += ["", "seconds: " + ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in self.timings.items())]
        out += ["", "rows per table (files = workers):"]
        for table, (files, workers) in sorted(self.tables.items()):
            out.append(f"  {table:20s} {files:9d} {'=' if files == workers else '!='} {workers:9d}")
        out += [f"note: {note}" for note in self.notes]
        out.append("")
        if self.exact:
            out.append(f"EXACT: {len(self.injected)} faults injected, {len(self.survived)} survived")
        else:
            out.append(f"NOT EXACT: {len(self.problems)} problems")
            out += [f"  {problem}" for problem in self.problems[:60]]
            if len(self.problems) > 60:
                out.append(f"  … and {len(self.problems) - 60} more")
        return out


# ------------------------------------------------------------------------------------------- what it drives


@dataclass(frozen=True)
class Load:
    """A load a fault hits: a CLI subprocess, or a schedule the daemon turns into runs; begun at `since`."""

    process: subprocess.Popen | None
    schedule_id: int | None
    since: datetime


@dataclass
class Platform:
    """A registered case, its catalog, instance and local cluster, and the running daemon."""

    case: str
    store: Store
    instance: dg.DagsterInstance
    cluster: Cluster
    cluster_state: Path  # the local cluster's state dir: servers are stopped and started there
    logs: Path  # logs of the subprocesses
    daemon_pid: int
    lease: float
    sensor_interval: float


class Soak:
    def __init__(self, platform: Platform, *, faults: int, seed: int, timeout: float, children_share: float = 0.3,
                 out: Callable[[str], None] = print) -> None:  # fmt: skip
        self.p = platform
        self.children_share = children_share  # of the faults hitting a level-3 load
        self.wanted = faults
        self.rng = random.Random(seed)
        self.out = out
        self.began = time.monotonic()
        self.deadline = self.began + timeout
        self.timeout = timeout
        self.children: list[subprocess.Popen] = []
        self.stopped: set[int] = set()  # pids we stopped and have not continued yet
        self.layout: CaseLayout = case_layout(platform.store.db, platform.case)
        self.director = self.layout.tables_of_kind(levels.DIRECTOR)[0].name
        self.host = socket.gethostname()
        self.notes: list[str] = []

    # -- the soak ---------------------------------------------------------------------------------------

    def run(self) -> SoakResult:
        timings: dict[str, float] = {}
        try:
            faults = self.inject_faults()
            timings["faults"] = time.monotonic() - self.began
            started = time.monotonic()
            finished = self.finish()
            timings["finish"] = time.monotonic() - started
        finally:
            self.release_processes()
        started = time.monotonic()
        problems = [] if finished else [f"not finished within --timeout {self.timeout:.0f} s"]
        tables, found = self.check()
        problems += found
        timings["check"] = time.monotonic() - started
        timings["soak"] = time.monotonic() - self.began
        return SoakResult(faults, problems, timings, tables, self.notes)

    def inject_faults(self) -> list[Fault]:
        budget = self.began + self.timeout - max(FINISH_RESERVE[0], FINISH_RESERVE[1] * self.timeout)
        faults: list[Fault] = []
        kinds: list[str] = []
        while sum(f.injected for f in faults) < self.wanted and time.monotonic() < budget:
            if not kinds:
                kinds = self.rng.sample(FAULT_KINDS, len(FAULT_KINDS))
            fault = Fault(len(faults) + 1, kinds.pop(0), at=time.monotonic() - self.began)
            try:
                getattr(self, fault.kind)(fault)
            except Exception as error:  # the soak's own trouble (a server refusing a probe): noted, soak goes on
                fault.detail += f" soak error: {type(error).__name__}: {error}"
                self.notes.append(f"fault {fault.number} ({fault.kind}): {traceback.format_exc(limit=3)}")
            faults.append(fault)
            self.out(fault.line())
            if not fault.injected and sum(f.kind == fault.kind for f in faults[-RETRIES:]) < RETRIES:
                kinds.insert(0, fault.kind)  # the load ended before it was hit: the same kind again, soon
            self.keep_going()
        return faults

    # -- faults -----------------------------------------------------------------------------------------

    def kill_run(self, fault: Fault) -> None:
        load = self.start_load(fault, "kill")
        pid = self.catch(load, self.rng.randint(0, 8))
        if pid is None:
            fault.detail = "the load ended before it could be hit"
            return
        held = self.held_by(pid)
        os.kill(pid, signal.SIGKILL)
        fault.injected, injected = True, time.monotonic()
        if load.process is not None:
            load.process.wait(timeout=60)
        taken_back = self.wait_until(lambda: not self.still_held(held), self.recovery_timeout())
        fault.seconds = time.monotonic() - injected
        fault.survived = bool(taken_back)
        fault.detail = f"pid {pid} killed holding {len(held)} notices; " + (
            "all taken back" if taken_back else f"still held: {sorted(self.still_held(held))[:10]}"
        )

    def stop_past_lease(self, fault: Fault) -> None:
        load = self.start_load(fault, "stop")
        pid = self.catch(load, self.rng.randint(0, 8))
        held: dict[int, int] | None = None
        if pid is not None:
            caught = self.wait_until(lambda: self.stopped_between_statements(pid) or not pid_alive(pid), 60, 0.05)
            held = caught if isinstance(caught, dict) else None
        if not held:
            fault.detail = "the load ended before it could be hit" if pid is None else f"pid {pid} never caught idle"
            return
        assert pid is not None
        fault.injected, injected = True, time.monotonic()
        swept = self.wait_until(lambda: not self.still_held(held), 2 * self.p.lease + self.recovery_timeout())
        frozen = time.monotonic() - injected
        os.kill(pid, signal.SIGCONT)
        self.stopped.discard(pid)
        if load.process is not None:
            exited = self.wait_until(lambda: load.process.poll() is not None, 240) is not None
        else:
            exited = self.wait_until(lambda: not pid_alive(pid), 240) is not None
        left = self.partitions_of_lost_attempts(pid, load.since) if exited else []
        fault.seconds = time.monotonic() - injected
        fault.survived = bool(swept) and exited and not left
        fault.detail = (
            f"pid {pid} stopped {frozen:.1f} s holding {len(held)} notices "
            + ("(swept)" if swept else f"(NOT swept: {sorted(self.still_held(held))[:10]})")
            + ("; resumed and exited" if exited else "; did not exit after SIGCONT")
            + (f"; partitions of its lost attempts left: {left[:5]}" if left else "")
        )

    def worker_restart(self, fault: Fault) -> None:
        worker = self.rng.choice(sorted(self.p.cluster.workers))
        load = self.start_load(fault, "worker")
        fault.variant = f"{worker} {fault.variant}"
        pid = self.catch(load, self.rng.randint(0, 5), worker)
        if pid is None:
            fault.detail = f"the load ended before it wrote into {worker}"
            return
        writing = self.attempts_on(worker)
        fault.injected, injected, stopped_at = True, time.monotonic(), utcnow()
        local.stop_server(self.p.cluster_state, worker)
        # Down until the loads writing there gave up (or 20 s), and a load more was refused (or 5 s more).
        self.wait_until(lambda: not self.running(writing), 20)
        self.wait_until(lambda: self.refused_on(worker, stopped_at, writing), 5)
        down = time.monotonic() - injected
        local.start_server(self.p.cluster_state, worker)
        ended = self.wait_until(lambda: not self.running(writing), float(WRITE_TIMEOUT) + self.recovery_timeout())
        with self.p.cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        fault.seconds = time.monotonic() - injected
        fault.survived = ended is not None
        outcomes = Counter(self.outcomes(writing).values())
        refused = self.refused_on(worker, stopped_at, writing)
        fault.detail = (
            f"down {down:.1f} s; {len(writing)} attempts writing there at the stop"
            + "".join(f", {n} {o}" for o, n in sorted(outcomes.items()))
            + f"; {refused} more refused while down"
        )

    def forced_reload_race(self, fault: Fault) -> None:
        level = self.pick_level()
        fault.variant = f"level {level}"
        ids = self.ids_of(level)
        subset = sorted(self.rng.sample(ids, max(2, int(len(ids) * self.rng.uniform(0.3, 0.8)))))
        reset, began = self.p.store.reset(subset), time.monotonic()
        with self.writes_held():  # both sides claim and place, then wait at their first write: they overlap
            queued = Load(None, self.schedule(subset, force=False), utcnow())
            if self.catch(queued, 0) is None:
                fault.detail = f"{reset} reset and queued: the queued run never got going"
                return
            queued_at = time.monotonic()
            process = self.cli(["load", self.p.case, "--level", str(level), "--force"], f"{fault.number:02d}-race")
            self.catch(Load(process, None, queued.since), 0)  # None: the CLI found nothing to claim, still a race
            waits = f"queued run caught {queued_at - began:.1f} s, CLI {time.monotonic() - queued_at:.1f} s later; "
        fault.injected, injected = True, time.monotonic()
        ended = self.wait_until(lambda: process.poll() is not None and self.ended(queued), EPISODE_TIMEOUT)
        fault.seconds = time.monotonic() - injected
        runs = self.schedule_runs([queued.schedule_id or 0])
        by_cli = self.loaded_by(pids=[process.pid], since=queued.since)
        by_queue = self.loaded_by(runs=runs, since=queued.since)
        stuck = self.still_running(runs=runs, pids=[process.pid])
        fault.survived = bool(ended) and not stuck and not self.doubly_done()
        fault.detail = waits + (
            f"{reset} reset + queued; forced CLI (exit {process.returncode}) loaded {sum(by_cli.values())}, "
            f"queued runs loaded {sum(by_queue.values())}"
            + ("" if ended else "; did not end")
            + (f"; left running {stuck[:10]}" if stuck else "")
        )

    def duplicate_schedule(self, fault: Fault) -> None:
        level, forced = self.pick_level(), self.rng.random() < 0.5
        ids = self.ids_of(level)
        subset = sorted(self.rng.sample(ids, max(2, int(len(ids) * self.rng.uniform(0.2, 0.6)))))
        fault.variant = f"{'forced' if forced else 'reset'} level {level}"
        reset = 0 if forced else self.p.store.reset(subset)
        since = utcnow()
        twice = [self.schedule(subset, force=forced), self.schedule(subset, force=forced)]
        fault.injected, injected = True, time.monotonic()
        ended = self.wait_until(lambda: self.schedules_ended(twice), EPISODE_TIMEOUT)
        fault.seconds = time.monotonic() - injected
        runs = self.schedule_runs(twice)
        loads = self.loaded_by(runs=runs, since=since)
        reloaded = [] if forced else self.loaded_twice(subset, runs, since)
        stuck = self.still_running(runs=runs)
        fault.survived = bool(ended) and not stuck and not reloaded and not self.doubly_done()
        fault.detail = (
            f"{len(subset)} notices ({reset} reset) in schedules {twice}: {sum(loads.values())} loads"
            + ("" if forced else f", {len(reloaded)} loaded twice by them {reloaded[:10]}")
            + ("" if ended else "; runs did not end")
            + (f"; left running {stuck[:10]}" if stuck else "")
        )

    # -- between faults, and at the end ------------------------------------------------------------------

    def keep_going(self) -> None:
        """What an operator does between incidents: schedule what is left, unless the queue is busy."""
        self.reap()
        if schedules.pending(self.p.store.db, 1) or len(self.runs_in_flight()) > 2:
            return
        ids = self.unfinished()
        if ids:
            self.schedule(ids, force=False)

    def finish(self) -> bool:
        """Until every notice is done and every gate passed, with nothing in flight; False at the deadline."""
        quiet_since: dict[tuple[int, str, int], float] = {}
        revalidated: set[tuple[int, str, int]] = set()
        while time.monotonic() < self.deadline:
            if not self.quiet():
                quiet_since.clear()
            elif self.complete():
                return True
            else:
                rows = self.notice_rows()
                parked = [n.id for n in rows if n.status == "failed" and n.attempts >= self.p.store.max_attempts]
                if parked:
                    self.p.store.reset(parked)
                ids = self.unfinished()
                if ids:
                    self.schedule(ids, force=False)
                else:
                    for verdict in self.gates():
                        self.revalidate_if_stuck(verdict, quiet_since, revalidated)
            time.sleep(1)  # pacing of the poll
        return False

    def revalidate_if_stuck(self, verdict: Any, quiet_since: dict[tuple[int, str, int], float],
                            revalidated: set[tuple[int, str, int]]) -> None:  # fmt: skip
        """A gate failed, or pending for a minute with its table loaded and nothing in flight: the level_gates
        sensor should have validated it. Noted, and validated once by `loader-assets load --level N`."""
        key = (verdict.level, verdict.table, verdict.generation)
        if verdict.status == "passed" or key in revalidated or not self.loaded(verdict):
            return
        if verdict.level == levels.VALIDATE_CHILDREN:
            director = gate(self.p.store.db, self.p.case, levels.VALIDATE_DIRECTOR, self.director)
            if director is None or director.status != "passed":
                return
        if verdict.status == "pending" and time.monotonic() - quiet_since.setdefault(key, time.monotonic()) < 60:
            return
        what = f"failed: {verdict.details}" if verdict.status == "failed" else "pending 60 s with nothing in flight"
        self.notes.append(f"gate {verdict.table} level {verdict.level} generation {verdict.generation} {what}; "
                          "validated again by `loader-assets load --level`")  # fmt: skip
        revalidated.add(key)
        process = self.cli(["load", self.p.case, "--level", str(verdict.level)], f"revalidate-{verdict.level}")
        self.wait_until(lambda: process.poll() is not None, 300)

    def check(self) -> tuple[dict[str, tuple[int, int]], list[str]]:
        """Rows and partitions on every worker against the files and the done attempts; statuses; gates."""
        problems: list[str] = []
        rows = [n for n in self.notice_rows() if n.level in LOAD_LEVELS]
        for n in rows:
            if n.status != "done":
                problems.append(f"notice {n.id} ({n.path}) is {n.status}: {n.error}")
        done: defaultdict[int, list[int]] = defaultdict(list)
        with self.p.store.db.read() as conn:
            for notice, attempt in conn.execute(
                select(attempts.c.notice, attempts.c.id)
                .join(notices, notices.c.id == attempts.c.notice)
                .where(notices.c.case == self.p.case, attempts.c.outcome == "done")
            ):
                done[notice].append(attempt)
        for n in rows:
            if n.status == "done" and done.get(n.id) != [n.attempt_id]:
                problems.append(f"notice {n.id} ({n.path}): done attempts {done.get(n.id)}, points at {n.attempt_id}")
        for verdict in self.gates():
            if verdict.status != "passed":
                problems.append(f"gate {verdict.table} level {verdict.level} is {verdict.status}: {verdict.details}")

        placement = self.p.cluster.placement(self.layout.database)
        expected: defaultdict[tuple[str, str], dict[int, int]] = defaultdict(dict)
        file_rows: Counter[str] = Counter()
        director_records = 0
        for n in rows:
            records = self.records(n)
            name = n.table if n.chunk is None else chunk_table_name(n.table, n.chunk, n.overlap)
            if n.chunk is not None and n.chunk not in placement:
                problems.append(f"notice {n.id} ({n.path}): chunk {n.chunk} placed on no worker")
                continue
            for worker in sorted(self.p.cluster.workers) if n.chunk is None else [placement[n.chunk]]:
                if n.status == "done":
                    expected[(worker, name)][n.attempt_id] = records
                file_rows[_family(name)] += records
            if n.table == self.director and not n.overlap:
                director_records += records
        actual = self.on_workers()
        worker_rows: Counter[str] = Counter()
        for key, partitions in actual.items():
            worker_rows[_family(key[1])] += sum(partitions.values())
        for key in sorted(set(expected) | set(actual)):
            want, have = expected.get(key, {}), actual.get(key, {})
            if want != have:
                problems.append(f"{key[0]} {key[1]}: partitions {{attempt: rows}} {have}, expected {want}")
        indexed = self.director_index_rows()
        if indexed != director_records:
            problems.append(f"director index at the czar: {indexed} rows, {director_records} director records")
        tables = {name: (file_rows[name], worker_rows[name]) for name in set(file_rows) | set(worker_rows)}
        tables[f"{self.director} index (czar)"] = (director_records, indexed)
        return tables, problems

    # -- loads, schedules, processes ---------------------------------------------------------------------

    def pick_level(self) -> int:
        """Level 3 (children) for a share of the faults, once the director's gate passed (waited for, up to
        90 s, while the unfinished notices are scheduled); else level 1."""
        if self.rng.random() < self.children_share and self.wait_until(self.director_ready, 90, 1):
            return levels.LOAD_CHILDREN
        return levels.LOAD_DIRECTOR

    def director_ready(self) -> bool:
        verdict = gate(self.p.store.db, self.p.case, levels.VALIDATE_DIRECTOR, self.director)
        if verdict is not None and verdict.status == "passed":
            return True
        self.keep_going()
        return False

    def start_load(self, fault: Fault, name: str) -> Load:
        """A forced load of a whole level: a CLI subprocess, or a schedule for the run queue."""
        variant, level = self.rng.choice(["cli", "queued"]), self.pick_level()
        fault.variant = f"{variant} level {level}"
        since = utcnow()
        if variant == "cli":
            command = ["load", self.p.case, "--level", str(level), "--force"]
            return Load(self.cli(command, f"{fault.number:02d}-{name}"), None, since)
        return Load(None, self.schedule(self.ids_of(level), force=True), since)

    @contextlib.contextmanager
    def writes_held(self) -> Iterator[None]:
        """A barrier on every worker (FLUSH TABLES WITH READ LOCK): a load claims its notices and records their
        worker in the catalog, then waits at its first write on a worker until the barrier is lifted."""
        with contextlib.ExitStack() as stack:
            for worker in sorted(self.p.cluster.workers):
                conn = stack.enter_context(self.p.cluster.worker(worker).connect())
                cursor = stack.enter_context(conn.cursor())
                cursor.execute("FLUSH TABLES WITH READ LOCK")
                stack.callback(cursor.execute, "UNLOCK TABLES")
            yield

    def catch(self, load: Load, done_first: int, worker: str | None = None) -> int | None:
        """Pid of the load's process once it writes a notice (into `worker`) after `done_first` done; None when
        the load ended first (or did not get going in HOLDER_TIMEOUT)."""

        def caught() -> int:
            pid = self.holder(load, done_first, worker)
            return pid if pid is not None else (-1 if self.ended(load) else 0)

        pid = self.wait_until(caught, HOLDER_TIMEOUT, poll=0.05)  # a small case loads in a second or two
        return pid if pid is not None and pid > 0 else None

    def ended(self, load: Load) -> bool:
        if load.process is not None:
            return load.process.poll() is not None
        return self.schedules_ended([load.schedule_id or 0])

    def cli(self, args: list[str], name: str) -> subprocess.Popen:
        with (self.p.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "loader_assets.cli", *args], cwd=REPOSITORY,
                                       env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self.children.append(process)
        return process

    def schedule(self, ids: list[int], *, force: bool) -> int:
        query = f"case = '{self.p.case}' AND id IN ({', '.join(map(str, sorted(ids)))})"
        return select_notices(query, store=self.p.store).schedule(force=force).schedule_id  # type: ignore[union-attr]

    def reap(self) -> None:
        self.children = [process for process in self.children if process.poll() is None]

    def release_processes(self) -> None:
        """Whatever happened: stopped processes continued, our subprocesses ended and reaped."""
        for pid in sorted(self.stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.stopped.clear()
        for process in self.children:
            if process.poll() is None and self.wait_until(lambda p=process: p.poll() is not None, 120) is None:
                process.kill()
            process.wait(timeout=60)
        self.children = []

    def holder(self, load: Load, done_first: int, worker: str | None = None) -> int | None:
        """Pid of the load's process writing a notice of the case now (into `worker`), `done_first` done before:
        the CLI process, or the step process of one of the schedule's runs (a descendant of the daemon)."""
        a, n = attempts.c, notices.c
        busy = (a.outcome == "running") & a.worker.is_not(None)
        if worker is not None:
            busy &= a.worker.in_([worker, ALL_WORKERS])
        query = (
            select(a.pid, func.sum(sql_case((busy, 1), else_=0)), func.sum(sql_case((a.outcome == "done", 1), else_=0)))
            .join(notices, n.id == a.notice)
            .where(n.case == self.p.case, a.started_at >= load.since, a.host == self.host)
            .group_by(a.pid)
        )
        if load.process is not None:
            query = query.where(a.pid == load.process.pid)
        else:
            query = query.where(a.run_id.in_(self.schedule_runs([load.schedule_id or 0])))
        with self.p.store.db.read() as conn:
            rows = conn.execute(query).all()
        for pid, writing, finished in rows:
            if writing and (finished or 0) >= done_first and (load.process is not None or self.launched(pid)):
                return int(pid)
        return None

    def launched(self, pid: int) -> bool:
        """A descendant of our daemon (a run worker or its step process), not one of our CLI loads."""
        if any(child.pid == pid for child in self.children):
            return False
        for _ in range(32):
            pid = _parent(pid)
            if pid == self.p.daemon_pid:
                return True
            if pid <= 1:
                return False
        return False

    def stopped_between_statements(self, pid: int) -> dict[int, int] | None:
        """SIGSTOP `pid` at a moment it is inside no statement and holds notices; their attempts, else None
        (continued again: the caller polls)."""
        if not pid_alive(pid):
            return None
        os.kill(pid, signal.SIGSTOP)
        self.stopped.add(pid)
        if self.wait_until(lambda: all_threads_stopped(pid), 5, 0.01) and not self._busy(pid):
            held = self.held_by(pid)
            if held:
                return held
        os.kill(pid, signal.SIGCONT)
        self.stopped.discard(pid)
        return None

    def _busy(self, pid: int) -> bool:
        """Inside a statement on a server or a catalog transaction, or holding a SQLite (Dagster) write lock."""
        ports = _tcp_ports(pid)
        for server in [self.p.cluster.czar, *self.p.cluster.workers.values()]:
            with contextlib.ExitStack() as stack:
                try:
                    conn = stack.enter_context(server.connect())
                except Exception:  # a server that does not answer: no moment to judge
                    return True
                cursor = stack.enter_context(conn.cursor())
                cursor.execute("SELECT ID, HOST, COMMAND FROM information_schema.PROCESSLIST")
                mine = {row[0]: row[2] for row in cursor.fetchall() if _port(row[1]) in ports}
                if any(command != "Sleep" for command in mine.values()):
                    return True
                if server is self.p.cluster.czar and mine:
                    cursor.execute("SELECT IS_USED_LOCK(%s)", (PLACEMENT_LOCK,))
                    if cursor.fetchone()[0] in mine:
                        return True
        with self.p.store.db.read() as conn:
            states = conn.execute(
                text("SELECT client_port, state FROM pg_stat_activity WHERE datname = current_database()")
            ).all()
        if any(port in ports and state in BUSY_PG_STATES for port, state in states):
            return True
        return _holds_write_lock(pid)

    # -- reading the catalog, the instance and the workers ------------------------------------------------

    def notice_rows(self) -> list[Any]:
        n = notices.c
        with self.p.store.db.read() as conn:
            return conn.execute(
                select(
                    n.id,
                    n.level,
                    n.table,
                    n.chunk,
                    n.overlap,
                    n.path,
                    n.format,
                    n.status,
                    n.attempts,
                    n.attempt_id,
                    n.error,
                    n.owner_pid,
                    n.owner_host,
                )
                .where(n.case == self.p.case)
                .order_by(n.id)
            ).all()

    def ids_of(self, level: int) -> list[int]:
        return [n.id for n in self.notice_rows() if n.level == level]

    def running_ids(self, level: int) -> list[int]:
        return [n.id for n in self.notice_rows() if n.level == level and n.status == "running"]

    def unfinished(self) -> list[int]:
        """Ready and failed notices that may be claimed now: level 3 only once its director's gate passed."""
        verdict = gate(self.p.store.db, self.p.case, levels.VALIDATE_DIRECTOR, self.director)
        open_levels = {levels.LOAD_DIRECTOR} | (
            {levels.LOAD_CHILDREN} if verdict is not None and verdict.status == "passed" else set()
        )
        return [n.id for n in self.notice_rows() if n.level in open_levels and n.status in ("ready", "failed")]

    def held_by(self, pid: int) -> dict[int, int]:
        """Notices `pid` holds now: notice -> attempt."""
        return {
            n.id: n.attempt_id
            for n in self.notice_rows()
            if n.status == "running" and n.owner_pid == pid and n.owner_host == self.host
        }

    def still_held(self, held: dict[int, int]) -> list[int]:
        rows = {n.id: n for n in self.notice_rows() if n.id in held}
        return [i for i, a in held.items() if rows[i].status == "running" and rows[i].attempt_id == a]

    def refused_on(self, worker: str, since: datetime, before: list[int]) -> int:
        """Attempts at writing into `worker` (not one of `before`) that failed since `since`."""
        a, n = attempts.c, notices.c
        with self.p.store.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(attempts)
                    .join(notices, n.id == a.notice)
                    .where(
                        n.case == self.p.case,
                        a.worker.in_([worker, ALL_WORKERS]),
                        a.outcome == "failed",
                        a.finished_at >= since,
                        a.id.not_in(before or [0]),
                    )
                ).scalar_one()
            )

    def attempts_on(self, worker: str) -> list[int]:
        a, n = attempts.c, notices.c
        with self.p.store.db.read() as conn:
            return list(
                conn.execute(
                    select(a.id)
                    .join(notices, n.id == a.notice)
                    .where(n.case == self.p.case, a.outcome == "running", a.worker.in_([worker, ALL_WORKERS]))
                ).scalars()
            )

    def outcomes(self, attempt_ids: list[int]) -> dict[int, str]:
        with self.p.store.db.read() as conn:
            return dict(
                conn.execute(select(attempts.c.id, attempts.c.outcome).where(attempts.c.id.in_(attempt_ids))).all()
            )

    def running(self, attempt_ids: list[int]) -> list[int]:
        return [i for i, outcome in self.outcomes(attempt_ids).items() if outcome == "running"]

    def loaded_by(self, *, pids: list[int] | None = None, runs: list[str] | None = None,
                  since: datetime) -> dict[int, int]:  # fmt: skip
        """Per notice, attempts since `since` that loaded it (done, or done then superseded), by pids or runs."""
        a = attempts.c
        query = select(a.notice, func.count()).where(a.started_at >= since, a.outcome.in_(["done", "superseded"]))
        query = (
            query.where(a.pid.in_(pids) & (a.host == self.host))
            if pids is not None
            else query.where(a.run_id.in_(runs or []))
        )
        with self.p.store.db.read() as conn:
            return dict(conn.execute(query.group_by(a.notice)).all())

    def doubly_done(self) -> list[int]:
        a = attempts.c
        with self.p.store.db.read() as conn:
            return list(
                conn.execute(
                    select(a.notice).where(a.outcome == "done").group_by(a.notice).having(func.count() > 1)
                ).scalars()
            )

    def still_running(self, *, runs: list[str] | None = None, pids: list[int] | None = None) -> list[int]:
        """Notices of the case still held by these runs or processes (which have ended)."""
        a, n = attempts.c, notices.c
        holders = a.run_id.in_(runs or [])
        if pids:
            holders |= a.pid.in_(pids) & (a.host == self.host)
        with self.p.store.db.read() as conn:
            return list(
                conn.execute(
                    select(n.id)
                    .join(attempts, a.id == n.attempt_id)
                    .where(n.case == self.p.case, n.status == "running", holders)
                ).scalars()
            )

    def loaded_twice(self, subset: list[int], runs: list[str], since: datetime) -> list[int]:
        """Notices these runs loaded twice with no other attempt in between (nothing else made them loadable)."""
        a = attempts.c
        with self.p.store.db.read() as conn:
            rows = conn.execute(
                select(a.notice, a.run_id, a.outcome)
                .where(a.notice.in_(subset), a.started_at >= since)
                .order_by(a.notice, a.id)
            ).all()
        twice: set[int] = set()
        last: dict[int, bool] = {}  # notice -> its last attempt was a load by these runs
        mine = set(runs)
        for notice, run_id, outcome in rows:
            loaded = run_id in mine and outcome in ("done", "superseded")
            if loaded and last.get(notice):
                twice.add(notice)
            if run_id not in mine:
                last[notice] = False
            elif loaded:
                last[notice] = True
        return sorted(twice)

    def partitions_of_lost_attempts(self, pid: int, since: datetime) -> list[tuple[str, str, int]]:
        """(worker, table, attempt) partitions still on the workers of attempts of `pid` that did not end done."""
        a, n = attempts.c, notices.c
        with self.p.store.db.read() as conn:
            rows = conn.execute(
                select(a.id, a.worker, n.table, n.chunk, n.overlap)
                .join(notices, n.id == a.notice)
                .where(
                    a.pid == pid,
                    a.host == self.host,
                    a.started_at >= since,
                    a.worker.is_not(None),
                    a.outcome.not_in(["done", "superseded", "running"]),
                )
            ).all()
        present = self.on_workers()
        left = []
        for row in rows:
            name = row.table if row.chunk is None else chunk_table_name(row.table, row.chunk, row.overlap)
            for worker in sorted(self.p.cluster.workers) if row.worker == ALL_WORKERS else [row.worker]:
                if row.id in present.get((worker, name), {}):
                    left.append((worker, name, row.id))
        return left

    def schedule_runs(self, schedule_ids: list[int]) -> list[str]:
        return [
            record.dagster_run.run_id
            for sid in schedule_ids
            for record in self.p.instance.get_run_records(dg.RunsFilter(tags={tags.SCHEDULE: str(sid)}))
        ]

    def schedules_ended(self, schedule_ids: list[int]) -> bool:
        for sid in schedule_ids:
            row = schedules.get(self.p.store.db, sid)
            if row.state != "submitted":
                return False
            records = self.p.instance.get_run_records(dg.RunsFilter(tags={tags.SCHEDULE: str(sid)}))
            if len(records) < len(row.runs or []) or any(r.dagster_run.status not in FINISHED for r in records):
                return False
        return True

    def runs_in_flight(self) -> list[dg.RunRecord]:
        """Runs the daemon queued or launched for the case (loads of schedules, validations of gates) not ended;
        the runs of our CLI loads are followed by their processes."""
        records = self.p.instance.get_run_records(dg.RunsFilter(tags={tags.CASE: self.p.case}, statuses=IN_FLIGHT))
        return [r for r in records if tags.SCHEDULE in r.dagster_run.tags or tags.GATE in r.dagster_run.tags]

    def quiet(self) -> bool:
        self.reap()
        return (
            not self.children
            and not schedules.pending(self.p.store.db, 1)
            and not self.runs_in_flight()
            and not any(n.status == "running" for n in self.notice_rows())
        )

    def gates(self) -> list[Any]:
        found = []
        for table in self.layout.validated_tables():
            verdict = gate(self.p.store.db, self.p.case, table.validation_level or 0, table.name)
            if verdict is not None:
                found.append(verdict)
        return found

    def loaded(self, verdict: Any) -> bool:
        return all(n.status == "done" for n in self.notice_rows() if n.table == verdict.table)

    def complete(self) -> bool:
        gates = self.gates()
        return (
            all(n.status == "done" for n in self.notice_rows() if n.level in LOAD_LEVELS)
            and len(gates) == len(self.layout.validated_tables())
            and all(verdict.status == "passed" for verdict in gates)
        )

    def records(self, notice: Any) -> int:
        path = self.layout.root / notice.path
        if notice.format == "parquet":
            return pq.ParquetFile(path).metadata.num_rows
        return count_records(path, self.layout.dialect_of(notice.format, self.layout.tables[notice.table]))

    def on_workers(self) -> dict[tuple[str, str], dict[int, int]]:
        """(worker, table) -> {attempt: rows}: every partition (but the p0 placeholder) and every row's attempt."""
        database = self.layout.database
        found: dict[tuple[str, str], dict[int, int]] = {}
        for worker, server in sorted(self.p.cluster.workers.items()):
            with server.connect() as conn, conn.cursor() as cursor:
                cursor.execute(
                    "SELECT TABLE_NAME, PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = %s",
                    (database,),
                )
                names: defaultdict[str, list[str]] = defaultdict(list)
                for table, partition in cursor.fetchall():
                    names[table].append(partition)
                for table in sorted(t for t, parts in names.items() if t != STAMP_TABLE and any(parts)):
                    partitions = {int(p[1:]): 0 for p in names[table] if p and p != "p0"}
                    cursor.execute(f"SELECT `{TRANS_ID}`, COUNT(*) FROM `{database}`.`{table}` GROUP BY 1")
                    partitions.update({int(attempt): int(count) for attempt, count in cursor.fetchall()})
                    if partitions:
                        found[(worker, table)] = partitions
        return found

    def director_index_rows(self) -> int:
        index = director_index_table(self.layout.database, self.director)
        with self.p.cluster.czar.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                           (META_DB, index))  # fmt: skip
            if not cursor.fetchone()[0]:
                return 0
            cursor.execute(f"SELECT COUNT(*) FROM `{META_DB}`.`{index}`")
            return int(cursor.fetchone()[0])

    # -- time ---------------------------------------------------------------------------------------------

    def recovery_timeout(self) -> float:
        """A lease, a few sweeps, and room for a loaded two-core machine."""
        return self.p.lease + 4 * self.p.sensor_interval + 30

    def wait_until(self, condition: Callable[[], T], timeout: float, poll: float = 0.2) -> T | None:
        """The first truthy value of `condition()` within `timeout` seconds (and the soak's deadline), else None."""
        deadline = min(time.monotonic() + timeout, self.deadline)
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll)


def _family(table_name: str) -> str:
    """`Object_1234` -> `Object`, `ObjectFullOverlap_1234` -> `ObjectFullOverlap`, `Filter` -> `Filter`."""
    head, _, tail = table_name.rpartition("_")
    return head if head and tail.isdigit() else table_name


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _tcp_ports(pid: int) -> set[int]:
    """Local ports of the TCP sockets `pid` has open (its client ends on loopback)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _port(host: str | None) -> int | None:
    if not host or ":" not in host:
        return None
    tail = host.rsplit(":", 1)[1]
    return int(tail) if tail.isdigit() else None


def _holds_write_lock(pid: int) -> bool:
    with open("/proc/locks") as lines:
        return any(fields[1] == "POSIX" and fields[3] == "WRITE" and fields[4] == str(pid)
                   for fields in (line.split() for line in lines) if len(fields) > 4)  # fmt: skip


# ------------------------------------------------------------------------------------------- the set-up


@contextlib.contextmanager
def local_cluster(state: Path) -> Iterator[None]:
    local.start_cluster(state, 2)
    try:
        yield
    finally:
        local.stop_cluster(state)


def soak_environment(lease: float, sensor_interval: float) -> dict[str, str]:
    """What every process of the soak reads: short leases and sensor intervals, worker outages seen fast, and
    one LOAD DATA at a time per worker, so a small case's loads last long enough for a fault to meet them."""
    return {
        "LOADER_STREAMS_PER_WORKER": "1",
        "LOADER_LEASE_SECONDS": str(lease),
        "LOADER_SENSOR_INTERVAL": str(int(sensor_interval)),
        "LOADER_WORKER_WRITE_TIMEOUT": WRITE_TIMEOUT,
    }


def register(ctx: Context, root: Path, chunks: int, rows_per_chunk: int, seed: int) -> str:
    """A sample case registered with its chunk partitions, as `loader-assets register` does."""
    case = f"soak{uuid.uuid4().hex[:6]}"
    directory = write_sample_case(root / case, chunks=chunks, rows_per_chunk=rows_per_chunk, database=case, seed=seed)
    cases.register(ctx, directory, case)
    return case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--timeout", type=float, default=1200,
        help="seconds for faults and finishing, at most; max(180 s, 20%%) of it is kept for finishing",
    )  # fmt: skip
    parser.add_argument("--chunks", type=int, default=50, help="50 chunks: 200 notices")
    parser.add_argument("--rows-per-chunk", type=int, default=200)
    parser.add_argument("--lease", type=float, default=6.0)
    parser.add_argument("--sensor-interval", type=float, default=2.0)
    parser.add_argument("--children-share", type=float, default=0.3, help="share of faults hitting a level-3 load")
    args = parser.parse_args()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="loader-soak-") as directory:
        root = Path(directory)
        (root / "logs").mkdir()
        with postgres_database("loader_soak") as catalog_url, local_cluster(root / "cluster"):
            config = ClusterConfig.load(root / "cluster")
            os.environ.update(
                LOADER_STATE_DIR=str(root / "state"),
                DAGSTER_HOME=str(root / "dagster"),
                LOADER_CATALOG_URL=catalog_url,
                LOADER_CZAR=config.czar_url,
                LOADER_WORKERS=",".join(f"{name}={url}" for name, url in config.workers.items()),
                LOADER_DAGSTER_WEBSERVER="127.0.0.1:1",  # registering asks no webserver to reload (none is ours)
                **soak_environment(args.lease, args.sensor_interval),
            )
            ctx = Context.from_env()
            cases.init(ctx)  # the temp DAGSTER_HOME's dagster.yaml, before the daemon and the CLI loads read it
            store, cluster, instance = ctx.store, ctx.cluster, ctx.dagster.instance
            case = register(ctx, root / "cases", args.chunks, args.rows_per_chunk, args.seed)
            print(f"case {case}: {args.chunks} chunks, {_notice_count(store, case)} notices, {args.rows_per_chunk} rows per chunk; "
                  f"lease {args.lease} s, sensors every {args.sensor_interval} s; seed {args.seed}")  # fmt: skip
            with dagster_daemon(instance, root / "logs" / "daemon.log") as daemon:
                setup = time.monotonic() - began
                platform = Platform(case, store, instance, cluster, root / "cluster", root / "logs", daemon.pid,
                                    args.lease, args.sensor_interval)  # fmt: skip
                result = Soak(
                    platform,
                    faults=args.faults,
                    seed=args.seed,
                    timeout=args.timeout,
                    children_share=args.children_share,
                ).run()
            result.timings = {"set-up": setup, **result.timings}
            for line in result.lines():
                print(line)
            ctx.close()
    return 0 if result.exact else 1


def _notice_count(store: Store, case: str) -> int:
    with store.db.read() as conn:
        return conn.execute(select(func.count()).where(notices.c.case == case)).scalar_one()


if __name__ == "__main__":
    sys.exit(main())
