"""Load throughput: the project's loader (CSV, Parquet) against raw LOAD DATA and pandas.to_sql.

Starts (or reuses, with --state-dir) a local cluster, generates N rows x 15 columns with numpy, writes them
as CSV and Parquet, and loads them into identical MyISAM chunk tables on one worker:

    .venv/bin/python benchmarks/load_throughput.py [--rows 1000000] [--state-dir DIR] [--keep]

Each of loader-CSV, loader-Parquet and raw LOAD DATA runs --repeat (5) times (best taken, alternating so page
cache and server warm-up favour none); to_sql runs once on a --to-sql-rows subset. The last two lines are
`loader/raw LOAD DATA = R.RRx` and `loader/to_sql = R.RRx` (CSV loader rate).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pymysql
import sqlalchemy

from loader_assets.workers import local
from loader_assets.workers.cluster import CONFIG_FILE, ClusterConfig
from loader_assets.workers.connection import WORKER, Server
from loader_assets.workers.ddl import TRANS_ID, chunk_table_ddl, chunk_table_name, create_database
from loader_assets.workers.load_data import load_file

DATABASE = "bench_throughput"
TABLE = "Object"
CHARSET = "latin1"
INT_COLUMNS = ("objectId", "chunkId", "subChunkId", "flags", "nVisits")
DOUBLE_COLUMNS = (
    "ra",
    "decl",
    "raErr",
    "declErr",
    "psfFlux",
    "psfFluxErr",
    "apFlux",
    "apFluxErr",
    "extendedness",
    "parallax",
)
COLUMNS = [*INT_COLUMNS, *DOUBLE_COLUMNS]
SCHEMA = [
    {"name": name, "type": "BIGINT NOT NULL" if name == "objectId" else "INT NOT NULL"} for name in INT_COLUMNS
] + [{"name": name, "type": "DOUBLE"} for name in DOUBLE_COLUMNS]


@dataclass
class Rate:
    label: str
    rows: int
    seconds: float
    bytes: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    def line(self) -> str:
        return (
            f"{self.label:<24} {self.rows:>10,} rows {self.seconds:8.2f} s "
            f"{self.rows_per_second:>12,.0f} rows/s {self.bytes / self.seconds / 1e6:8.1f} MB/s"
        )


def generate(rows: int, seed: int = 7) -> pa.Table:
    """A catalog-like table: ids, chunk numbers, flags and doubles rounded as survey outputs are."""
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {
        "objectId": np.arange(1, rows + 1, dtype=np.int64) * 7919,
        "chunkId": np.full(rows, 6630, dtype=np.int32),
        "subChunkId": rng.integers(0, 1000, rows, dtype=np.int32),
        "flags": rng.integers(0, 1 << 30, rows, dtype=np.int32),
        "nVisits": rng.integers(0, 500, rows, dtype=np.int32),
    }
    for name in DOUBLE_COLUMNS:
        data[name] = np.round(rng.normal(100.0, 50.0, rows), 6)
    return pa.table(data)


def write_inputs(table: pa.Table, directory: Path) -> tuple[Path, Path]:
    csv_path, parquet_path = directory / "rows.csv", directory / "rows.parquet"
    pacsv.write_csv(table, csv_path, pacsv.WriteOptions(include_header=False))
    pq.write_table(table, parquet_path)
    return csv_path, parquet_path


class Bench:
    def __init__(self, worker: Server) -> None:
        self.worker = worker
        self.chunk = 0
        with worker.connect() as conn:
            with conn.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")  # tables of an earlier run
            create_database(conn, DATABASE, CHARSET)

    def fresh_table(self) -> str:
        """A new, empty chunk table with the benchmark schema; every run gets its own."""
        self.chunk += 1
        with self.worker.connect() as conn, conn.cursor() as cursor:
            cursor.execute(chunk_table_ddl(DATABASE, TABLE, SCHEMA, self.chunk, False, CHARSET))
        return chunk_table_name(TABLE, self.chunk)

    def settle(self) -> None:
        """Drop the last run's table and flush dirty pages, so its write-back does not slow the next run."""
        with self.worker.connect() as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {DATABASE}.{chunk_table_name(TABLE, self.chunk)}")
        os.sync()

    def loader(self, path: Path, fmt: str) -> Callable[[], int]:
        def run() -> int:
            dialect = {"fields_terminated_by": ",", "fields_enclosed_by": '"'}
            return load_file(self.worker, DATABASE, self.fresh_table(), path, fmt, dialect, CHARSET, 1, COLUMNS).rows

        return run

    def raw_load_data(self, path: Path) -> Callable[[], int]:
        """The same rows with a bare LOAD DATA LOCAL INFILE over pymysql: no partition, no checks."""

        def run() -> int:
            table = self.fresh_table()
            address = self.worker.address
            conn = pymysql.connect(host=address.host, port=address.port, user=address.user, local_infile=True)
            try:
                with conn.cursor() as cursor:
                    return cursor.execute(
                        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {DATABASE}.{table} "
                        "FIELDS TERMINATED BY ',' ENCLOSED BY '\"' LINES TERMINATED BY '\\n' "
                        f"({', '.join(COLUMNS)}) SET {TRANS_ID} = 0"
                    )
            finally:
                conn.close()

        return run

    def to_sql(self, frame: pd.DataFrame) -> Callable[[], int]:
        """pandas.DataFrame.to_sql through SQLAlchemy with its defaults, into the same kind of table."""

        def run() -> int:
            table = self.fresh_table()
            address = self.worker.address
            engine = sqlalchemy.create_engine(
                f"mysql+pymysql://{address.user}@{address.host}:{address.port}/{DATABASE}"
            )
            try:
                frame.assign(**{TRANS_ID: 0}).to_sql(table, engine, if_exists="append", index=False)
            finally:
                engine.dispose()
            return len(frame)

        return run


def measure(bench: Bench, label: str, run: Callable[[], int], size: int) -> Rate:
    started = time.perf_counter()
    rows = run()
    rate = Rate(label, rows, time.perf_counter() - started, size)
    bench.settle()
    return rate


def best(rates: list[Rate]) -> Rate:
    return min(rates, key=lambda rate: rate.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--to-sql-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--state-dir", type=Path, help="reuse (or create) a cluster here instead of a temp dir")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args()

    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="loader-bench-"))
    try:
        config = local.start_cluster(state_dir, _worker_count(state_dir))
        run_benchmark(Server(WORKER, "worker1", config.workers["worker1"]), args)
    finally:
        if not args.keep:
            local.stop_cluster(state_dir)  # also the servers of a start that failed half-way
            if args.state_dir is None:
                shutil.rmtree(state_dir, ignore_errors=True)


def _worker_count(state_dir: Path) -> int:
    """Reusing a cluster keeps its workers (start_cluster never shrinks one); a new one needs just one."""
    return len(ClusterConfig.load(state_dir).workers) if (state_dir / CONFIG_FILE).exists() else 1


def run_benchmark(worker: Server, args: argparse.Namespace) -> None:
    table = generate(args.rows)
    with tempfile.TemporaryDirectory(prefix="loader-bench-data-") as directory:
        csv_path, parquet_path = write_inputs(table, Path(directory))
        csv_size, parquet_size = csv_path.stat().st_size, parquet_path.stat().st_size
        print(
            f"{args.rows:,} rows x {len(COLUMNS)} columns: CSV {csv_size / 1e6:.0f} MB, Parquet {parquet_size / 1e6:.0f} MB"
        )
        bench = Bench(worker)
        runs: dict[str, list[Rate]] = {"loader CSV": [], "loader Parquet": [], "raw LOAD DATA": []}
        for _ in range(args.repeat):  # interleaved: no method always runs on a colder or warmer server
            runs["raw LOAD DATA"].append(measure(bench, "raw LOAD DATA", bench.raw_load_data(csv_path), csv_size))
            runs["loader CSV"].append(measure(bench, "loader CSV", bench.loader(csv_path, "csv"), csv_size))
            runs["loader Parquet"].append(
                measure(bench, "loader Parquet", bench.loader(parquet_path, "parquet"), parquet_size)
            )
        subset = table.slice(0, args.to_sql_rows).to_pandas()
        subset_size = int(csv_size * len(subset) / args.rows)
        to_sql = measure(bench, "pandas to_sql", bench.to_sql(subset), subset_size)
    rates = {label: best(found) for label, found in runs.items()}
    for rate in [*rates.values(), to_sql]:
        print(rate.line())
    loader_csv, raw = rates["loader CSV"].rows_per_second, rates["raw LOAD DATA"].rows_per_second
    print(f"loader Parquet/raw LOAD DATA = {rates['loader Parquet'].rows_per_second / raw:.2f}x")
    print(f"loader/raw LOAD DATA = {loader_csv / raw:.2f}x")
    print(f"loader/to_sql = {loader_csv / to_sql.rows_per_second:.2f}x")


if __name__ == "__main__":
    main()
