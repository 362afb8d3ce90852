"""End to end: a whole case through the platform against a bare parallel LOAD DATA of the same files.

Writes the sample case of `loader-assets sample` (default 60 chunks x 10,000 director rows: Object with
overlaps, Source, ForcedSource, the regular Filter), starts a throwaway local cluster (czar + --workers) and a
SQLite catalog and Dagster instance in a temp dir, then:

(a) `loader-assets register CASE_DIR --load` (registration, then the four levels, one process) as an operator runs
    it (after `loader-assets init`, which makes the Dagster instance once per deployment: not timed; with
    --separate-register, `register` then `load`, two processes), each line of its output time-stamped: seconds
    per phase, Dagster's run overhead (run wall time outside its steps, from the instance) and each worker's busy
    share during each load level (a LOAD DATA in its process list, sampled every 20 ms, each sample held until the
    next, over the level's wall time), and per phase the CPU seconds of the czar, each worker and the `load`
    process (their /proc stat, sampled every 0.1 s);
(b) the same files with a bare `LOAD DATA LOCAL INFILE` into pre-created tables of the same DDL and indexes
    (no validation), all workers in parallel, 1 to 4 streams per worker (the best is the baseline); its row
    counts must equal (a)'s. Its workers' process lists are sampled as (a)'s, their busy share printed: the
    sampler's queries cost the workers ~0.35 CPU-s each in the 346 MB case, so both sides bear them. With
    `--format parquet` the baseline loads CSV copies of the same rows;
(c) the queued path (`register`, then `schedule`: run with --separate-register to compare it with a two-process
    (a)): a fresh cluster and catalog, `dagster-daemon` running, `loader-assets schedule` of the
    whole case, until the last gate passes: each level's span against (a)'s.

    .venv/bin/python benchmarks/end_to_end.py [--chunks 60] [--rows-per-chunk 10000] [--format csv|parquet]
        [--workers 2] [--columns N] [--repeat 1] [--no-queued] [--dagster-postgres] [--catalog-postgres]

`--dagster-postgres` keeps the Dagster instance in a fresh database of the machine's PostgreSQL and counts that
server's CPU as the platform's; `--catalog-postgres` the catalog too (both: production's configuration).

With --repeat K, (a) and (b) run K times (fresh cluster each) and the medians are printed: the loader side's CPU
per GB (`register` + `load`), platform CPU over raw CPU (every process), and
last `end-to-end/raw parallel = R.RRx` (raw seconds over platform seconds).
"""

from __future__ import annotations

import argparse
import itertools
import os
import queue
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # loader_assets_tests: helpers shared with the tests

import pyarrow.parquet as pq
import pymysql.connections
from sqlalchemy import select

from loader_assets import levels
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.gates import gate
from loader_assets.catalog.layout import CaseLayout, case_layout
from loader_assets.catalog.notices import status_tally
from loader_assets.catalog.schema import notices
from loader_assets.defs.executors import children_by_parent
from loader_assets.engine.load import busy_seconds
from loader_assets.engine.targets import ALL_WORKERS
from loader_assets.qserv.sample import write_rows, write_sample_case
from loader_assets.settings import Settings
from loader_assets.workers import local
from loader_assets.workers.cluster import Cluster, ClusterConfig
from loader_assets.workers.connection import charset_name, quote_name, quote_table
from loader_assets.workers.ddl import TRANS_ID, chunk_table_name, create_chunk_tables, create_database, create_table
from loader_assets.workers.load_data import dialect_clause
from loader_assets.workers.local_infile import PYMYSQL_SEND_LOCAL_FILE

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
CASE = "e2e"
SAMPLE_EVERY = 0.02
CPU_EVERY = 0.1
GOAL_RATIO = {"csv": 0.65, "parquet": 0.55}  # the 3.5 GB case (100,000 rows a chunk)
GOAL_RATIO_SMALL = 0.4  # the 346 MB case (10,000 rows a chunk)
GOAL_BUSY = 0.8
GOAL_CPU_RATIO = 1.4
GOAL_LOADER_CPU_PER_GB = 3.0
GOAL_QUEUED_EXTRA = 10.0
POSTGRES = "postgresql://postgres@127.0.0.1:5432"  # --dagster-postgres: the machine's server (trust)
TEXT_FORMAT = "txt"  # the sample's text files, and the baseline's copies of Parquet ones
LEVEL_LINE = re.compile(rf"^level (\d) of {CASE}: ")
NEW_PARTITIONS = re.compile(r"^\d+ new chunk partitions")  # register's last line but one


# -- the environment of one run ----------------------------------------------------------------------------------


@dataclass
class Site:
    """A state dir with its own cluster, catalog and Dagster instance; the CLI runs against it."""

    root: Path
    workers: int
    streams: int | None = None  # LOADER_STREAMS_PER_WORKER of the platform, else its default
    dagster_pg: str | None = None  # a database of the local PostgreSQL for the Dagster instance, else SQLite
    executor: str = "in_process"  # LOADER_EXECUTOR of the platform
    catalog_pg: str | None = None  # a database of the local PostgreSQL for the catalog, else SQLite
    config: ClusterConfig = field(init=False)
    cluster: Cluster = field(init=False)  # its servers, reached by this process

    def __post_init__(self) -> None:
        self.state = self.root / "state"
        self.home = self.state / "dagster"
        self.home.mkdir(parents=True, exist_ok=True)
        self.config = local.start_cluster(self.state, self.workers)
        self.cluster = Cluster(self.config)
        for database in self.databases:
            _postgres(f"CREATE DATABASE {database}")

    @property
    def databases(self) -> list[str]:
        """Its databases in the local PostgreSQL."""
        return [name for name in (self.dagster_pg, self.catalog_pg) if name]

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADER_", "DAGSTER_"))}
        env = {
            **env,
            "LOADER_STATE_DIR": str(self.state),
            "DAGSTER_HOME": str(self.home),
            "LOADER_EXECUTOR": self.executor,
            "PYTHONUNBUFFERED": "1",  # each line time-stamped as it is printed, not when a buffer fills
        }
        if self.dagster_pg:
            env["LOADER_DAGSTER_PG_URL"] = f"{POSTGRES}/{self.dagster_pg}"
        if self.catalog_pg:
            env["LOADER_CATALOG_URL"] = f"{POSTGRES}/{self.catalog_pg}"
        return {**env, "LOADER_STREAMS_PER_WORKER": str(self.streams)} if self.streams else env

    @property
    def catalog(self) -> CatalogDB:
        if self.catalog_pg:
            return CatalogDB(f"{POSTGRES}/{self.catalog_pg}")
        return CatalogDB(f"sqlite:///{self.state / 'catalog.sqlite'}")

    def cli(
        self, *args: str, lines: list[tuple[float, str]] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> float:  # fmt: skip
        """Run `loader-assets ARGS`; its stdout lines, time-stamped, into `lines`; returns its seconds."""
        started = time.monotonic()
        with open(self.root / "cli.stderr", "a") as stderr:
            process = subprocess.Popen(
                [str(BIN / "loader-assets"), *args], cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=stderr,
                text=True,
            )  # fmt: skip
            try:
                if on_start is not None:
                    on_start(process.pid)
                assert process.stdout is not None
                for line in process.stdout:
                    if lines is not None:
                        lines.append((time.monotonic(), line.rstrip("\n")))
            except BaseException:  # this script stopped: the command gives its notices back and ends too
                process.terminate()
                process.wait()
                raise
        if process.wait() != 0:
            raise RuntimeError(
                f"loader-assets {' '.join(args)} exited {process.returncode}; see {self.root}/cli.stderr"
            )
        return time.monotonic() - started

    def stop(self) -> None:
        local.stop_cluster(self.state)
        for database in self.databases:
            _postgres(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    def server_pids(self) -> dict[str, int]:
        return {
            name: int((self.state / "mariadb" / name / "mariadbd.pid").read_text())
            for name in ["czar", *self.config.workers]
        }

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each local server, of this process ("client") and of its ended children ("cli")."""
        seconds = {name: process_cpu(pid) for name, pid in self.server_pids().items()}
        me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds["client"] = me.ru_utime + me.ru_stime
        seconds["cli"] = children.ru_utime + children.ru_stime
        if self.databases:
            seconds["postgres"] = postgres_cpu()
        return seconds


def process_cpu(pid: int, *, with_children: bool = False) -> float:
    """CPU seconds so far of a running process (and of its children it waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if with_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below `pid`."""
    children, found, frontier = children_by_parent(), [], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children.get(parent, [])]
        found += frontier
    return found


def _reaping_cpu(pid: int) -> float:
    try:
        return process_cpu(pid, with_children=True)
    except (FileNotFoundError, ProcessLookupError):  # ended meanwhile: its parent has it
        return 0.0


def _postgres(sql: str) -> None:
    """A statement outside a transaction on the local PostgreSQL (CREATE/DROP DATABASE)."""
    import psycopg2

    conn = psycopg2.connect(POSTGRES)
    conn.autocommit = True  # (not `with conn`: that opens a transaction whatever autocommit says)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
    finally:
        conn.close()


def postgres_cpu() -> float:
    """CPU seconds of the local PostgreSQL, every database of it (nothing else uses it meanwhile): its running
    processes and the backends its postmaster reaped."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    total = 0.0
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                total += process_cpu(pid, with_children=True)
        except OSError:  # ended meanwhile
            continue
    return total


def cpu_since(before: dict[str, float], after: dict[str, float]) -> str:
    return ", ".join(f"{name} {after[name] - before[name]:.1f}" for name in after if after[name] - before[name] >= 0.05)


def open_instance(site: Site):  # a DagsterInstance (imported late: start-up is not measured)
    from loader_assets.defs.instance import open_instance as open_site_instance

    return open_site_instance(Settings.from_env(site.env))  # its dagster.yaml written by `register`


# -- the workers' process lists ------------------------------------------------------------------------------


class BusySampler(threading.Thread):
    """Every SAMPLE_EVERY s, whether each worker runs a LOAD DATA (from its process list)."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True, name="busy-sampler")
        self.cluster = cluster
        self.samples: list[tuple[float, dict[str, bool]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with ExitStack() as stack:
            opened = {name: stack.enter_context(server.connect()) for name, server in self.cluster.workers.items()}
            while not self._halt.wait(SAMPLE_EVERY):
                now, busy = time.monotonic(), {}
                for name, conn in opened.items():
                    with conn.cursor() as cursor:
                        cursor.execute(
                            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'LOAD DATA%%'"
                        )
                        busy[name] = cursor.fetchone()[0] > 0
                self.samples.append((now, busy))

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def share(self, worker: str, start: float, end: float) -> float:
        """The time-weighted share: each sample holds until the next. A share of samples would weigh idle spells
        more, since the process lists answer fastest when the workers idle (8 busy workers on 2 cores: one round of
        queries every ~200 ms against ~25 ms idle, and a busy share of 0.25 where the workers were busy 0.7)."""
        busy = 0.0
        for (at, state), (following, _next) in itertools.pairwise(self.samples):
            low, high = max(at, start), min(following, end)
            if high > low and state[worker]:
                busy += high - low
        return busy / (end - start) if end > start else 0.0


class CpuSampler(threading.Thread):
    """Every CPU_EVERY s, the CPU seconds so far of each server and of each process `watch`ed since."""

    def __init__(self, servers: dict[str, int]) -> None:
        super().__init__(daemon=True, name="cpu-sampler")
        self.pids = dict(servers)
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while True:
            sample = dict(self.samples[-1][1]) if self.samples else {}  # a process ended: its last value stands
            for name, pid in list(self.pids.items()):
                with suppress(FileNotFoundError, ProcessLookupError):
                    sample[name] = process_cpu(pid, with_children=name == "load")
                if name == "load":  # its step processes (multiprocess), until it reaps them: a forkserver's children
                    sample[name] += sum(_reaping_cpu(child) for child in descendants(pid))
            self.samples.append((time.monotonic(), sample))
            if self._halt.wait(CPU_EVERY):
                return

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def between(self, start: float, end: float) -> str:
        """CPU seconds of each process from the last sample before `start` to the last one before `end`."""
        first, last = self._at(start), self._at(end)
        return cpu_since({n: first.get(n, 0.0) for n in last}, last)

    def _at(self, moment: float) -> dict[str, float]:
        before = [sample for at, sample in self.samples if at <= moment]
        return before[-1] if before else (self.samples[0][1] if self.samples else {})


# -- (a) the platform ----------------------------------------------------------------------------------------


@dataclass
class PlatformRun:
    register: float
    startup: float  # the end of registration (`load`'s process start) to the first run
    levels: dict[int, float]  # level -> seconds
    busy: dict[int, dict[str, float]]  # load level -> worker -> share
    overhead: dict[int, float]  # level -> Dagster run seconds outside steps
    throughput: list[str]  # the per-worker lines of the load runs
    cpu: str  # CPU seconds per process
    phase_cpu: dict[str, str]  # phase -> CPU seconds per process
    seconds: dict[str, float]  # CPU seconds per process, the whole run

    @property
    def total(self) -> float:
        return self.register + self.startup + sum(self.levels.values())


def run_platform(site: Site, case_dir: Path, *, separate: bool = False) -> PlatformRun:
    """`register CASE_DIR --load`, one process (`separate`: `register`, then `load`, two processes)."""
    site.cli("init")  # the Dagster instance, made once per deployment (as the raw baseline's tables): not timed
    cpu_before = site.cpu()
    register = site.cli("register", str(case_dir)) if separate else 0.0
    cpu_registered = site.cpu() if separate else cpu_before
    sampler = BusySampler(site.cluster)
    sampler.start()
    lines: list[tuple[float, str]] = []
    cpu_sampler = CpuSampler(site.server_pids())
    cpu_sampler.start()
    command = ("load", CASE) if separate else ("register", str(case_dir), "--load")
    loading, started_at = time.monotonic(), time.time()
    try:
        site.cli(*command, lines=lines, on_start=lambda pid: cpu_sampler.watch("load", pid))
    finally:
        sampler.stop()
        cpu_sampler.stop()
    registered = loading if separate else registered_at(lines)
    cpu_after = site.cpu()
    first_run = loading + first_run_created(site) - started_at
    ends = {int(m.group(1)): at for at, line in lines if (m := LEVEL_LINE.match(line))}
    bounds = level_spans(first_run, {level: ends[level] for level in levels.ALL})
    busy = {level: {w: sampler.share(w, *bounds[level]) for w in site.config.workers} for level in levels.LOAD_LEVELS}
    # One process: its registration's CPU without PostgreSQL's (the sampler reads the processes it watches).
    phase_cpu = {"registration": cpu_since(cpu_before, cpu_registered) if separate
                 else cpu_sampler.between(loading, registered)}  # fmt: skip
    phase_cpu["start-up"] = cpu_sampler.between(registered, first_run)
    phase_cpu |= {f"level {lv}": cpu_sampler.between(*bounds[lv]) for lv in levels.ALL}
    return PlatformRun(
        register + registered - loading, first_run - registered, {lv: end - start for lv, (start, end) in bounds.items()}, busy,
        dagster_overhead(site), [line for _at, line in lines if line.startswith("  level ") and "rows/s" in line],
        cpu_since(cpu_before, cpu_after), phase_cpu, {n: cpu_after[n] - cpu_before[n] for n in cpu_after},
    )  # fmt: skip


def level_spans(start: float, ends: dict[int, float]) -> dict[int, tuple[float, float]]:
    """Each level's (start, end): from the end of the level before it (the first from `start`) to its own."""
    spans, previous = {}, start
    for level in sorted(ends):
        spans[level], previous = (previous, ends[level]), ends[level]
    return spans


def registered_at(lines: list[tuple[float, str]]) -> float:
    """When `register` (alone or with `--load`) printed that its registration was done."""
    found = next((at for at, line in lines if NEW_PARTITIONS.match(line)), None)
    if found is None:
        raise RuntimeError(f"`register --load` printed no line matching {NEW_PARTITIONS.pattern!r}")
    return found


def first_run_created(site: Site) -> float:
    """When (epoch seconds) `load` created its first run: its lines no longer announce each run."""
    with open_instance(site) as instance:
        return min(record.create_timestamp.timestamp() for record in instance.get_run_records())


def dagster_overhead(site: Site) -> dict[int, float]:
    """Per level: the runs' wall time minus their steps' (start-up, event writes, tear-down)."""

    overhead: dict[int, float] = {}
    with open_instance(site) as instance:
        for record in instance.get_run_records():
            stats = instance.get_run_stats(record.dagster_run.run_id)
            if stats.start_time is None or stats.end_time is None:
                continue
            spans = [
                (s.start_time or 0, s.end_time or 0) for s in instance.get_run_step_stats(record.dagster_run.run_id)
            ]
            steps = busy_seconds(spans)  # the union: steps in processes of their own overlap
            level = int(record.dagster_run.tags.get("loader/level", 0))
            overhead[level] = overhead.get(level, 0.0) + (stats.end_time - stats.start_time - steps)
    return overhead


def loaded_rows(site: Site) -> dict[str, int]:
    """Rows per table on the workers (chunk and overlap tables summed; a regular table once)."""
    with site.catalog.read() as conn:
        rows = conn.execute(
            select(notices.c.table, notices.c.rows, notices.c.chunk).where(notices.c.case == CASE)
        ).all()
    counts: dict[str, int] = {}
    for table, count, _chunk in rows:
        counts[table] = counts.get(table, 0) + (count or 0)
    return counts


# -- (b) the raw baseline -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawFile:
    table: str
    chunk: int | None
    overlap: bool
    path: Path
    level: int


def raw_plan(site: Site, case_dir: Path, raw_dir: Path) -> tuple[CaseLayout, dict[str, list[RawFile]]]:
    """Each worker's files as the platform placed them (regular tables on every worker), director first."""
    layout = case_layout(site.catalog, CASE)
    with site.catalog.read() as conn:
        rows = conn.execute(
            select(notices.c.table, notices.c.chunk, notices.c.overlap, notices.c.path, notices.c.worker, notices.c.level)
            .where(notices.c.case == CASE)
            .order_by(notices.c.level, notices.c.id)
        ).all()  # fmt: skip
    plan: dict[str, list[RawFile]] = {name: [] for name in site.config.workers}
    for table, chunk, overlap, path, worker, level in rows:
        source = raw_dir / Path(path).with_suffix(".txt") if raw_dir != case_dir else case_dir / path
        for name in site.config.workers if worker == ALL_WORKERS else [worker]:
            plan[name].append(RawFile(table, chunk, overlap, source, level))
    return layout, plan


@dataclass
class RawRun:
    seconds: float
    counts: dict[str, int]  # rows per table
    ended: dict[int, float]  # level -> seconds from the start to its last file's end
    busy: dict[int, dict[str, float]]  # level -> worker -> share, sampled as (a)'s: both sides bear the sampler


def raw_load(site: Site, layout: CaseLayout, plan: dict[str, list[RawFile]], streams: int) -> RawRun:
    """Bare LOAD DATA of every worker's files, `streams` at once per worker, each worker's director files first."""
    database = f"raw_{streams}"
    for worker, files in plan.items():  # pre-created, not timed
        with site.cluster.worker(worker).connect() as conn:
            with conn.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {quote_name(database)}")
            create_database(conn, database, layout.charset)
            for table, chunk in sorted({(f.table, f.chunk) for f in files}, key=lambda tc: (tc[0], tc[1] or -1)):
                spec = layout.tables[table]
                if chunk is None:
                    create_table(conn, database, table, spec.columns, spec.indexes, layout.charset)
                else:
                    create_chunk_tables(conn, database, table, spec.columns, spec.indexes, chunk, layout.charset)
    os.sync()
    counts: dict[str, int] = {}
    ended: dict[int, float] = {}
    lock = threading.Lock()

    def stream(worker: str, work: queue.SimpleQueue) -> None:
        with site.cluster.worker(worker).connect(local_infile=True) as conn, conn.cursor() as cursor:
            while True:
                try:
                    item: RawFile = work.get_nowait()
                except queue.Empty:
                    return
                spec = layout.tables[item.table]
                name = item.table if item.chunk is None else chunk_table_name(item.table, item.chunk, item.overlap)
                cursor.execute(
                    f"LOAD DATA LOCAL INFILE {conn.escape(str(item.path))} INTO TABLE {quote_table(database, name)} "
                    f"CHARACTER SET {charset_name(layout.charset)} {dialect_clause(conn, layout.dialect_of(TEXT_FORMAT, spec))} "
                    f"({', '.join(quote_name(c) for c in spec.column_names)}) SET {quote_name(TRANS_ID)} = 0"
                )
                with lock:
                    if item.chunk is not None or worker == min(plan):
                        counts[item.table] = counts.get(item.table, 0) + cursor.rowcount
                    ended[item.level] = max(ended.get(item.level, 0.0), time.monotonic() - started)

    works = {}
    for worker, files in plan.items():
        works[worker] = queue.SimpleQueue()
        for item in files:
            works[worker].put(item)
    sampler = BusySampler(site.cluster)
    sampler.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=streams * len(plan)) as pool:
            futures = [pool.submit(stream, w, works[w]) for w in plan for _ in range(streams)]
            for future in futures:
                future.result()
        seconds = time.monotonic() - started
    finally:
        sampler.stop()
    for worker in plan:
        with site.cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote_name(database)}")
    spans = level_spans(started, {level: started + at for level, at in ended.items()})
    busy = {lv: {w: sampler.share(w, *span) for w in plan} for lv, span in spans.items()}
    return RawRun(seconds, counts, ended, busy)


def csv_copies(case_dir: Path, out: Path) -> Path:
    """The Parquet files of a case as the sample's text files (same rows, the `txt` dialect)."""
    for path in case_dir.rglob("*.parquet"):
        write_rows(out / path.relative_to(case_dir).with_suffix(".txt"), pq.read_table(path))
    return out


# -- (c) the queued path -------------------------------------------------------------------------------------


def level_done(db: CatalogDB, level: int, layout: CaseLayout) -> bool:
    if levels.is_load_level(level):
        counts = status_tally(db, CASE, level=level)
        return bool(counts) and set(counts) == {"done"}
    tables = layout.tables_of_kind(levels.validated_kind(level))
    return all((g := gate(db, CASE, level, t.name)) is not None and g.status == "passed" for t in tables)


def run_queued(site: Site, case_dir: Path, timeout: float) -> dict[int, float]:
    """Seconds from `schedule` to the end of each level, through the daemon's sensors and run queue."""
    site.cli("register", str(case_dir))
    layout = case_layout(site.catalog, CASE)
    from loader_assets_tests.servers import dagster_daemon  # imports Dagster: late, as `open_instance` does

    with open_instance(site) as instance, dagster_daemon(instance, site.root / "daemon.log", env=site.env):
        started = time.monotonic()
        site.cli("schedule", f"case = '{CASE}'")
        ends: dict[int, float] = {}
        while len(ends) < len(levels.ALL):
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"queued path: levels {sorted(ends)} done after {timeout} s; see {site.root}")
            for level in levels.ALL:
                if level not in ends and level_done(site.catalog, level, layout):
                    ends[level] = time.monotonic() - started
            time.sleep(0.1)  # the benchmark's own watch, not the platform's
    spans = level_spans(0.0, {level: ends[level] for level in levels.ALL})
    return {level: end - start for level, (start, end) in spans.items()}


# -- the report ------------------------------------------------------------------------------------------------


def print_platform(run: PlatformRun) -> None:
    print(f"  registration {run.register:6.2f} s   load start-up {run.startup:5.2f} s")
    for level, seconds in run.levels.items():
        kind = "load" if levels.is_load_level(level) else "validation"
        busy = "  ".join(f"{w} busy {share:.2f}" for w, share in run.busy.get(level, {}).items())
        print(
            f"  level {level} {kind:<10} {seconds:6.2f} s   dagster run overhead {run.overhead.get(level, 0):5.2f} s  {busy}"
        )
    for line in run.throughput:
        print(f"    {line.strip()}")
    for phase, seconds in run.phase_cpu.items():
        print(f"  CPU seconds, {phase:<12}: {seconds}")
    print(f"  total        {run.total:6.2f} s   CPU seconds: {run.cpu}")


def _pg_name(args: argparse.Namespace, root: Path, attempt: int, of: str = "dagster") -> str | None:
    """The PostgreSQL database of this run's Dagster instance or catalog (`of`), when asked for."""
    wanted = args.catalog_postgres if of == "catalog" else args.dagster_postgres
    return f"e2e_{root.name.rsplit('-', 1)[-1].lower()}_{attempt}_{of}" if wanted else None


def stop_servers_when_terminated() -> None:
    """SIGTERM (a `kill`, a CI timeout) ends the script through its `finally` blocks: the servers it started stop."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def main() -> None:
    stop_servers_when_terminated()
    pymysql.connections._send_local_file = PYMYSQL_SEND_LOCAL_FILE  # the bare load sends as pymysql ships
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=60)
    parser.add_argument("--rows-per-chunk", type=int, default=10_000)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--columns", type=int, default=0, help="director width (a DP0.2 Object: ~200)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of (a) and (b); medians printed")
    parser.add_argument("--max-streams", type=int, default=4, help="raw baseline: 1 to this many streams per worker")
    parser.add_argument("--streams", type=int, help="the platform's streams per worker (default: its own)")
    parser.add_argument("--executor", choices=["in_process", "multiprocess"], default="in_process",
                        help="the platform's LOADER_EXECUTOR: multiprocess, a process per worker's share")  # fmt: skip
    parser.add_argument(
        "--dagster-postgres",
        action="store_true",
        help="the Dagster instance in the local PostgreSQL (production's), its CPU counted",
    )
    parser.add_argument("--catalog-postgres", action="store_true",
                        help="the catalog in the local PostgreSQL (production's), its CPU counted")  # fmt: skip
    parser.add_argument("--separate-register", action="store_true",
                        help="(a) as `register`, then `load`: two processes (default: `register --load`)")  # fmt: skip
    parser.add_argument("--no-queued", action="store_true", help="skip (c)")
    parser.add_argument("--queued-only", action="store_true", help="(a) once, then (c); no raw baseline")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (its path is printed)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]

    root = Path(tempfile.mkdtemp(prefix="loader-e2e-"))
    print(f"work dir {root}")
    try:
        case_dir = write_sample_case(
            root / "cases" / CASE, chunks=args.chunks, rows_per_chunk=args.rows_per_chunk, fmt=args.format,
            database=CASE, director_columns=args.columns,
        )  # fmt: skip
        raw_dir = csv_copies(case_dir, root / "raw-csv") if args.format == "parquet" else case_dir
        size = sum(p.stat().st_size for p in case_dir.rglob("*") if p.is_file())
        print(f"case: {args.chunks} chunks x {args.rows_per_chunk} director rows, {args.format}, "
              f"{size / 1e6:.0f} MB, {args.workers} workers")  # fmt: skip
        platform_runs, raw_runs, raw_cpu = [], [], []
        for attempt in range(1, args.repeat + 1):
            databases = {
                "dagster_pg": _pg_name(args, root, attempt),
                "catalog_pg": _pg_name(args, root, attempt, "catalog"),
            }
            site = Site(root / f"run{attempt}", args.workers, args.streams, executor=args.executor, **databases)
            try:
                print(f"(a) platform, run {attempt}")
                run = run_platform(site, case_dir, separate=args.separate_register)
                print_platform(run)
                expected = loaded_rows(site)
                layout, plan = raw_plan(site, case_dir, raw_dir)
                best, best_cpu = None, 0.0
                for streams in range(1, 0 if args.queued_only else args.max_streams + 1):
                    cpu_before = site.cpu()
                    raw = raw_load(site, layout, plan, streams)
                    cpu_after = site.cpu()
                    if raw.counts != expected:
                        raise RuntimeError(f"raw rows {raw.counts} differ from the platform's {expected}")
                    spans = ", ".join(f"level {lv} files ended at {at:.2f} s" for lv, at in sorted(raw.ended.items()))
                    busy = "; ".join(f"level {lv} " + ", ".join(f"{w} {share:.2f}" for w, share in shares.items())
                                     for lv, shares in raw.busy.items())  # fmt: skip
                    print(f"(b) raw LOAD DATA, {streams} streams per worker: {raw.seconds:6.2f} s (rows match; {spans})   "
                          f"CPU seconds: {cpu_since(cpu_before, cpu_after)}   busy: {busy}")  # fmt: skip
                    if best is None or raw.seconds < best:
                        best, best_cpu = raw.seconds, sum(cpu_after[n] - cpu_before[n] for n in cpu_after if n != "cli")
                platform_runs.append(run)
                raw_runs.append(best)
                raw_cpu.append(best_cpu)
            finally:
                site.stop()
        platform = statistics.median(r.total for r in platform_runs)
        raw = statistics.median(raw_runs) if not args.queued_only else float("nan")
        print(f"rows: {sum(expected.values()):,} ({', '.join(f'{t} {n:,}' for t, n in sorted(expected.items()))})")
        for level in levels.LOAD_LEVELS:
            for worker in sorted(platform_runs[0].busy[level]):
                share = statistics.median(r.busy[level][worker] for r in platform_runs)
                print(f"level {level} {worker}: busy {share:.2f} (goal >= {GOAL_BUSY})")
        if not args.no_queued:
            databases = {"dagster_pg": _pg_name(args, root, 0), "catalog_pg": _pg_name(args, root, 0, "catalog")}
            site = Site(root / "queued", args.workers, args.streams, executor=args.executor, **databases)
            try:
                spans = run_queued(site, case_dir, args.timeout)
            finally:
                site.stop()
            reference = platform_runs[len(platform_runs) // 2]
            print("(c) queued path (schedule -> daemon sensors -> run queue), per level against (a):")
            for level, seconds in spans.items():
                extra = seconds - reference.levels[level] - (reference.startup if level == 1 else 0)
                print(f"  level {level}: {seconds:6.2f} s, {extra:+6.2f} s (goal <= +{GOAL_QUEUED_EXTRA:.0f} s)")
        if not args.queued_only:
            loader = statistics.median(r.seconds["cli"] for r in platform_runs) / (size / 1e9)
            platform_cpu = statistics.median(
                sum(v for n, v in r.seconds.items() if n != "client") for r in platform_runs
            )  # the servers and the CLI: this script's own CPU is its samplers'
            print(f"loader side (register + load): {loader:.2f} CPU-s per GB (goal <= {GOAL_LOADER_CPU_PER_GB})")
            print(f"CPU platform/raw: {platform_cpu:.1f} / {statistics.median(raw_cpu):.1f} = "
                  f"{platform_cpu / statistics.median(raw_cpu):.2f}x (goal <= {GOAL_CPU_RATIO})")  # fmt: skip
            # Each run against the bare load that follows it on the same cluster: minutes apart, so a machine
            # whose speed drifts between runs moves both (the medians above can pair a slow run with a fast one).
            cpu_pairs = [
                sum(v for n, v in r.seconds.items() if n != "client") / c
                for r, c in zip(platform_runs, raw_cpu, strict=True)
            ]
            pairs = [b / r.total for r, b in zip(platform_runs, raw_runs, strict=True)]
            print(
                f"paired runs: end-to-end/raw {', '.join(f'{p:.2f}' for p in pairs)} (median {statistics.median(pairs):.2f}x), "
                f"CPU platform/raw {', '.join(f'{p:.2f}' for p in cpu_pairs)} (median {statistics.median(cpu_pairs):.2f}x)"
            )
        print(f"platform {platform:.2f} s, raw parallel {raw:.2f} s (medians of {args.repeat})")
        goal = GOAL_RATIO[args.format] if args.rows_per_chunk >= 100_000 else GOAL_RATIO_SMALL
        print(f"end-to-end/raw parallel = {raw / platform:.2f}x (goal >= {goal})")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
