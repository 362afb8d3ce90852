"""Loads that die half-way (client killed, worker stopped) are undone exactly by dropping their partition."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from loader_assets.problems import WorkerDown
from loader_assets.workers import local
from loader_assets.workers.attempt_partitions import count_rows, drop_attempt_partitions, partitions_of
from loader_assets.workers.connection import WORKER, Server, ServerOptions
from loader_assets.workers.ddl import create_chunk_tables, create_database
from loader_assets.workers.load_data import load_file
from loader_assets_tests.workers.conftest import OBJECT_COLUMNS, OBJECT_NAMES
from loader_assets_tests.workers.test_loader import load, write

BIG_ROWS = 1_500_000  # a few seconds of LOAD DATA: long enough to be interrupted


def write_big_tsv(path: Path, rows: int, first_id: int = 1) -> Path:
    ids = np.arange(first_id, first_id + rows, dtype=np.int64)
    table = pa.table(
        {
            "objectId": ids,
            "chunkId": np.full(rows, 6630, dtype=np.int32),
            "subChunkId": (ids % 1000).astype(np.int32),
            "ra": ids * 1e-3,
            "decl": ids * -1e-3,
            "name": pa.array(np.char.add("n", ids.astype(str))),
            "payload": pa.array(np.char.add("p", (ids % 97).astype(str))),
        }
    )
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"))
    return path


def wait_for_load_statement(server: Server, database: str, *, running: bool = True, timeout: float = 30) -> None:
    """Until the server runs a LOAD DATA into `database` (rows are arriving), or, `running=False`, no longer does."""
    deadline = time.monotonic() + timeout
    with server.connect() as conn, conn.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s",
                (f"LOAD DATA%`{database}`%",),
            )
            if bool(cursor.fetchone()[0]) == running:
                return
            time.sleep(0.02)
    raise TimeoutError("the load never started" if running else "the aborted load is still running")


def wait_for_rows_written(server: Server, database: str, rows: int = 10_000, timeout: float = 30) -> None:
    """Once a LOAD DATA into `database` runs, until the server has counted `rows` more row writes
    (`Handler_write`: a row into a partitioned table counts about twice; nothing else writes on the test's worker
    meanwhile): a load stopped after this is stopped mid-way, with rows of it in the table."""
    wait_for_load_statement(server, database, timeout=timeout)
    deadline = time.monotonic() + timeout
    with server.connect() as conn, conn.cursor() as cursor:
        first = None
        while time.monotonic() < deadline:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Handler_write'")
            written = int(cursor.fetchone()[1])
            first = written if first is None else first
            if written - first >= rows:
                return
            time.sleep(0.01)
    raise TimeoutError(f"the load wrote fewer than {rows} rows in {timeout} s")


KILLED_LOAD = """
import sys
from pathlib import Path
from loader_assets.workers.connection import Server
from loader_assets.workers.load_data import load_file
url, database, table, path = sys.argv[1:5]
load_file(Server("worker", "worker1", url), database, table, Path(path), "tsv", None, "latin1", 2, sys.argv[5].split(","))
"""


def test_load_killed_mid_way_is_undone_by_dropping_its_partition(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    load(worker, database, table, write(tmp_path, "done.csv", b"1,6630,1,0,0,a,p\n2,6630,1,0,0,b,q\n"), 1)
    big = write_big_tsv(tmp_path / "big.tsv", BIG_ROWS, first_id=100)
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOAD, worker.url, database, table, str(big), ",".join(OBJECT_NAMES)]
    )
    try:
        wait_for_rows_written(worker, database)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL  # it did not finish
    wait_for_load_statement(worker, database, running=False)
    assert partitions_of(worker, database, table) == [1, 2]
    assert 0 < count_rows(worker, database, table, attempt_id=2) < BIG_ROWS  # rows of it were in, not all

    assert drop_attempt_partitions(worker, database, table, [2]) == [2]
    assert partitions_of(worker, database, table) == [1]
    assert count_rows(worker, database, table) == 2


def test_worker_stopped_during_load_is_unavailable_then_a_retry_is_exact(cluster, cluster_state, database, tmp_path):
    # A cleanly stopping worker can leave the upload on a zero TCP window: detect it in seconds here.
    url = Server(WORKER, "worker2", cluster.worker("worker2").url, ServerOptions(write_timeout=5))
    with url.connect() as conn:
        create_database(conn, database, "latin1")
        create_chunk_tables(conn, database, "Object", OBJECT_COLUMNS, [], 7000, "latin1")
    big = write_big_tsv(tmp_path / "big.tsv", BIG_ROWS)

    def run_load() -> int:
        return load_file(url, database, "Object_7000", big, "tsv", None, "latin1", 5, OBJECT_NAMES).rows

    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(run_load)
        try:
            wait_for_rows_written(url, database)
        finally:
            local.stop_server(cluster_state, "worker2")
        with pytest.raises(WorkerDown) as failure:
            loading.result(timeout=120)
    assert "worker worker2" in str(failure.value) and failure.value.server == "worker2"
    assert "(0, '')" not in str(failure.value)  # the real cause, not pymysql's empty follow-up error

    local.start_server(cluster_state, "worker2")
    assert run_load() == BIG_ROWS
    assert partitions_of(url, database, "Object_7000") == [5]
    assert count_rows(url, database, "Object_7000") == BIG_ROWS


def test_worker_down_before_load_is_unavailable(cluster, cluster_state, database, tmp_path):
    local.stop_server(cluster_state, "worker2")
    try:
        url = cluster.worker("worker2")
        with pytest.raises(WorkerDown, match=re.escape(str(url))):
            load_file(url, database, "Object_1", write(tmp_path, "x.csv", b""), "csv", None, "latin1", 1, ["a"])
    finally:
        local.start_server(cluster_state, "worker2")
