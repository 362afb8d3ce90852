"""What the recovery tests share: exactness of a level on the workers, attempts per notice, a CLI load in a
subprocess, big files, and waiting for a condition."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from sqlalchemy import select

from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.schema import attempts, notices
from loader_assets.defs.jobs import LOAD_JOB, SWEEP_JOB
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.ddl import chunk_table_name
from loader_assets.workers.local import LocalServer
from loader_assets_tests.conftest import REPOSITORY, Platform

BIG_ROWS = 800_000  # a LOAD DATA of a few seconds: long enough to catch it half-way
ON_POSTGRESQL = pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)
Key = tuple[str, str]  # (worker, table name on that worker)


def sensor_context(platform: Platform) -> dg.SensorEvaluationContext:
    """What the daemon hands a sensor: the platform's instance and resources read from the environment."""
    return dg.build_sensor_context(
        instance=platform.instance, resources={"catalog": CatalogResource(), "cluster": ClusterResource()}
    )


def sweep_now(platform: Platform) -> str:
    """One `stale_sweeper` tick and, when it asks for a sweep, that run, as the daemon would; what was said: the
    sweep's line, or the tick's skip reason."""
    definitions = platform.definitions()
    result = definitions.resolve_sensor_def("stale_sweeper")(sensor_context(platform))
    requests = result.run_requests or [] if isinstance(result, dg.SensorResult) else []
    if not requests:
        reason = result.skip_reason if isinstance(result, dg.SensorResult) else result
        return reason.skip_message if reason is not None else ""
    job = definitions.resolve_job_def(SWEEP_JOB)
    run = job.execute_in_process(instance=platform.instance, tags=requests[0].tags, raise_on_error=True)
    said = [entry.user_message for entry in platform.instance.all_logs(run.run_id)]
    return next(line for line in reversed(said) if line.startswith("took back"))


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120, poll: float = 0.2) -> object:
    """The first truthy value of `condition()`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def level_notices(platform: Platform, case: str, level: int) -> list:  # type: ignore[type-arg]
    n = notices.c
    with platform.store.db.read() as connection_:
        return connection_.execute(
            select(n.id, n.table, n.chunk, n.overlap, n.path, n.format, n.status, n.error, n.locked_by, n.attempt_id)
            .where(n.case == case, n.level == level)
            .order_by(n.id)
        ).all()


def outcomes(platform: Platform, notice_ids: list[int]) -> dict[int, list[str]]:
    """Outcomes of every attempt at each notice, oldest first."""
    result: dict[int, list[str]] = {i: [] for i in notice_ids}
    with platform.store.db.read() as connection_:
        rows = connection_.execute(
            select(attempts.c.notice, attempts.c.outcome)
            .where(attempts.c.notice.in_(notice_ids))
            .order_by(attempts.c.id)
        )
        for notice, outcome in rows:
            result[notice].append(outcome)
    return result


def attempt_rows(platform: Platform, notice_ids: list[int]) -> list:  # type: ignore[type-arg]
    with platform.store.db.read() as connection_:
        return connection_.execute(
            select(attempts).where(attempts.c.notice.in_(notice_ids)).order_by(attempts.c.id)
        ).all()


@dataclass(frozen=True)
class Census:
    """Per (worker, table): rows in the files loaded there and rows there, partitions expected and present."""

    file_rows: dict[Key, int]
    worker_rows: dict[Key, int | None]
    done_attempts: dict[Key, list[int]]
    partitions: dict[Key, list[int]]


NoticeFilter = Callable[[Any], bool]


def census(platform: Platform, case: str, level: int, where: NoticeFilter = lambda _: True) -> Census:
    layout = case_layouts(platform.store.db, case)[case]
    placement = platform.cluster.placement(layout.database)
    file_rows: Counter[Key] = Counter()
    done: defaultdict[Key, list[int]] = defaultdict(list)
    for notice in filter(where, level_notices(platform, case, level)):
        records = lines_in(layout.root / notice.path)
        workers = list(platform.cluster.workers) if notice.chunk is None else [placement[notice.chunk]]
        name = notice.table if notice.chunk is None else chunk_table_name(notice.table, notice.chunk, notice.overlap)
        for worker in workers:
            file_rows[(worker, name)] += records
            if notice.status == "done":
                done[(worker, name)].append(notice.attempt_id)
    worker_rows, partitions = _on_workers(platform, layout.database, sorted(file_rows))
    return Census(dict(file_rows), worker_rows, {k: sorted(v) for k, v in done.items()}, partitions)


def lines_in(path: Path) -> int:
    """Records of a sample text file, counted apart from the loader: one a line, the last one maybe unended."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _on_workers(
    platform: Platform, database: str, keys: list[Key]
) -> tuple[dict[Key, int | None], dict[Key, list[int]]]:
    """COUNT(*) and attempt partitions of every table, one connection per worker."""
    rows: dict[Key, int | None] = {}
    partitions: defaultdict[Key, list[int]] = defaultdict(list)
    for worker in sorted({w for w, _ in keys}):
        with platform.cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
            present = {row[0] for row in cursor.fetchall()}
            for _, name in (key for key in keys if key[0] == worker):
                if name not in present:
                    rows[(worker, name)] = None
                    continue
                cursor.execute(f"SELECT COUNT(*) FROM `{database}`.`{name}`")
                rows[(worker, name)] = int(cursor.fetchone()[0])
            cursor.execute(
                "SELECT TABLE_NAME, PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = %s",
                (database,),
            )
            for table, partition in cursor.fetchall():
                if partition and partition != "p0":
                    partitions[(worker, table)].append(int(partition[1:]))
    return rows, {key: sorted(partitions.get(key, [])) for key in keys}


def assert_exact(platform: Platform, case: str, level: int, where: NoticeFilter = lambda _: True) -> Census:
    """Every notice of the level (`where` it holds) done; each of their tables holds exactly its files' rows,
    in partitions of done attempts only."""
    statuses = Counter(n.status for n in filter(where, level_notices(platform, case, level)))
    assert set(statuses) == {"done"}, statuses
    counted = census(platform, case, level, where)
    assert counted.worker_rows == counted.file_rows
    assert counted.partitions == {key: counted.done_attempts.get(key, []) for key in counted.file_rows}
    return counted


def inflate_object_file(platform: Platform, case: str, chunk: int, rows: int) -> Path:
    """Rewrite the Object file of `chunk` with `rows` fresh rows (LOAD DATA then takes seconds)."""
    layout = case_layouts(platform.store.db, case)[case]
    [path] = [layout.root / n.path for n in level_notices(platform, case, 1)
              if n.table == "Object" and n.chunk == chunk and not n.overlap]  # fmt: skip
    ids = np.arange(rows, dtype=np.int64) + 5_000_000_000_000
    columns = [c["name"] for c in layout.tables["Object"].columns]
    values = {name: np.ones(rows) for name in columns}
    values.update(objectId=ids, parentObjectId=ids, chunkId=np.full(rows, chunk, dtype=np.int32),
                  subChunkId=np.zeros(rows, dtype=np.int32))  # fmt: skip
    table = pa.table({name: values[name] for name in columns})
    options = pa_csv.WriteOptions(include_header=False, delimiter=",", quoting_style="none")
    pa_csv.write_csv(table, path, options)
    return path


def partition_file_bytes(cluster_state: Path, worker: str, database: str, table: str, attempt_id: int) -> int:
    """Size of an attempt's MyISAM data file: rows reaching the worker (COUNT(*) waits for LOAD DATA to end)."""
    path = LocalServer(cluster_state, worker).datadir / database / f"{table}#P#p{attempt_id}.MYD"
    return path.stat().st_size if path.exists() else 0


def cli_load(case: str, level: int, log: Path, module: str = "loader_assets.cli", **env: str) -> subprocess.Popen:
    """`loader-assets load CASE --level N` in its own process (`module`: the CLI with a test's hooks), with the
    test's environment plus `env`."""
    return subprocess.Popen(
        [sys.executable, "-m", module, "load", case, "--level", str(level)],
        cwd=REPOSITORY, env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


@contextmanager
def reaped(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """The process is killed and reaped whatever the test does (a stopped one is continued first)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def running_statements(platform: Platform, database: str) -> list[str]:
    """LOAD DATA statements into `database` the workers are running (a stopped client leaves one hanging)."""
    found: list[str] = []
    for server in platform.cluster.workers.values():
        with server.connect() as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT INFO FROM information_schema.PROCESSLIST WHERE INFO LIKE %s", (f"LOAD DATA%`{database}`%",)
            )
            found += [row[0] for row in cursor.fetchall()]
    return found


@contextmanager
def writes_blocked(platform: Platform, worker: str) -> Iterator[Callable[[], None]]:
    """`FLUSH TABLES WITH READ LOCK` on a worker: loads into it wait (heart-beating) until the returned
    function (or the end of the block) lifts the lock."""
    conn = platform.cluster.worker(worker).open()
    with conn.cursor() as cursor:
        cursor.execute("FLUSH TABLES WITH READ LOCK")

    def lift() -> None:
        if conn.open:
            conn.close()  # a global read lock ends with its session

    try:
        yield lift
    finally:
        lift()


def load_runs(platform: Platform, case: str) -> list[dg.RunRecord]:
    """Records of the case's load runs (not its validation runs), oldest first."""
    records = platform.instance.get_run_records(dg.RunsFilter(job_name=LOAD_JOB, tags={"loader/case": case}))
    return sorted(records, key=lambda record: record.create_timestamp)


def big_notice(platform: Platform, case: str, rows: int = BIG_ROWS, among: tuple[int, ...] | None = None) -> int:
    """Makes the file of the first Object chunk notice (among `among`) big; returns that notice."""
    [notice] = [n for n in level_notices(platform, case, 1)
                if n.table == "Object" and not n.overlap and (among is None or n.id in among)][:1]  # fmt: skip
    inflate_object_file(platform, case, notice.chunk, rows)
    return notice.id


def rows_arriving(platform: Platform, cluster_state: Path, case: str, notice_id: int) -> tuple[str, int] | None:
    """(worker, attempt) once the notice's current attempt has written rows into its partition."""
    notice = next(n for n in level_notices(platform, case, 1) if n.id == notice_id)
    with platform.store.db.read() as connection_:
        worker = connection_.execute(select(notices.c.worker).where(notices.c.id == notice_id)).scalar()
    if notice.status != "running" or worker is None:
        return None
    database = case_layouts(platform.store.db, case)[case].database
    table = chunk_table_name("Object", notice.chunk)
    written = partition_file_bytes(cluster_state, worker, database, table, notice.attempt_id)
    return (worker, notice.attempt_id) if written > 0 else None


def all_threads_stopped(pid: int) -> bool:
    """Every thread of the process is stopped (by a signal or a tracer): its state in /proc is T or t."""
    try:
        states = [
            (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in Path(f"/proc/{pid}/task").iterdir()
        ]
    except OSError:
        return False
    return bool(states) and all(state in ("T", "t") for state in states)


def stopped(process: subprocess.Popen) -> bool:
    """Every thread of the process is stopped; one that ended is named."""
    if process.poll() is not None:
        raise AssertionError(f"process {process.pid} ended ({process.returncode}) instead of stopping")
    return all_threads_stopped(process.pid)


def loads_on_workers(cluster: Cluster) -> dict[str, int]:
    """LOAD DATA statements each worker has run since it started (a resumed run's streams may still make a table
    ahead, which holds no rows: only loads are counted)."""
    found = {}
    for name, server in cluster.workers.items():
        with server.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Com_load'")
            found[name] = int(cursor.fetchone()[1])
    return found


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """`mount` (an empty directory) as a tmpfs of `size` (e.g. "64m"): a disk of its own, unmounted afterwards
    (lazily when something still holds it)."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(mount: Path) -> Path:
    """Another writer takes every byte left on the disk (unbuffered: nothing is left to write when it closes)."""
    filler = mount / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * (1 << 16))
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler
