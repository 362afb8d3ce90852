"""Validation cost: levels 2 and 4 (`validate_table` on the workers) against a bare parallel LOAD DATA of the same rows.

Starts a throwaway local cluster (czar + 2 workers) and a SQLite catalog (or a throwaway PostgreSQL database
with --catalog-url) in a temp dir, then per scale (default `--scales 1,4`):

- writes a case of a director `Object` (2,000,000 rows at scale 1, plus the sample's 10% of overlap rows) and
  one child `ForcedSource` (2 rows per object: 4,000,000), rows from `qserv.sample`'s generators;
- registers it, loads level 1 with the engine's `Loader`, validates the director (level 2, which opens the
  children's gate), loads level 3 with the `Loader` and validates the child (level 4);
- raw baseline of each load level: the same files with a bare `LOAD DATA LOCAL INFILE` into pre-created tables
  of the same DDL in a separate database, one stream per worker in parallel, nothing else;
- each validation runs in a fresh subprocess: its `validate_table` seconds, its peak RSS (VmHWM of itself, since
  Linux's ru_maxrss carries the parent's high-water mark across fork + exec, plus ru_maxrss of its children)
  and where its time went (per check, summed over the worker threads);
- the EXPLAIN of the child anti-join (`census.anti_join_sql`) for one chunk on its worker.

    .venv/bin/python benchmarks/validation.py [--scales 1,4] [--quick] [--chunks 20] [--scale-by chunks|rows]
                                              [--catalog-url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres]

Per scale and level the line ends with `validation/raw load = R.RRx` (goal <= 0.25); the last lines give the
growth of the validating process's peak RSS between the smallest and the largest scale (goal < 50 MB).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # loader_assets_tests: helpers shared with the tests

import numpy as np
import pyarrow as pa

from loader_assets import levels
from loader_assets.catalog.gates import gate
from loader_assets.catalog.layout import CaseLayout, TableLayout, case_layout
from loader_assets.catalog.notices import DoneFile, done_files, notice_ids
from loader_assets.catalog.register import register_case
from loader_assets.catalog.store import Owner, Store
from loader_assets.engine.load import Loader
from loader_assets.qserv import sample
from loader_assets.qserv.geometry import Chunker
from loader_assets.qserv.metadata import METADATA_FILE, SUPPORTED_VERSION
from loader_assets.workers import local
from loader_assets.workers.cluster import META_DB, Cluster, ClusterConfig
from loader_assets.workers.connection import Server, charset_name, quote_name, quote_table
from loader_assets.workers.ddl import (
    TRANS_ID,
    chunk_table_name,
    create_chunk_tables,
    create_database,
    director_index_table,
)
from loader_assets.workers.load_data import dialect_clause

GOAL_RATIO = 0.25
GOAL_RSS_GROWTH_MB = 50.0
BASE_DIRECTOR_ROWS = 2_000_000
CHILDREN_PER_OBJECT = 2  # sample._forced_sources: exactly two forced measurements per object
DIRECTOR, CHILD = "Object", "ForcedSource"
KEY = "objectId"
WORKERS = 2
GROUP_CHUNKS = 8  # chunks generated at once: the generator's memory stays bounded at any scale
MB = 1024 * 1024


# -- the case ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseSize:
    chunks: int
    rows_per_chunk: int

    @property
    def director_rows(self) -> int:
        return self.chunks * self.rows_per_chunk

    @property
    def overlap_rows(self) -> int:
        return self.chunks * max(1, self.rows_per_chunk // 10)  # sample._overlap_objects' share

    @property
    def child_rows(self) -> int:
        return CHILDREN_PER_OBJECT * self.director_rows


def _objects(
    rng: np.random.Generator, chunker: Chunker, chunk_ids: np.ndarray, per_chunk: int, first_id: int
) -> pa.Table:
    """sample._objects with ids from `first_id`: the case is generated a group of chunks at a time."""
    bounds = np.repeat(sample._chunk_bounds(chunker, chunk_ids), per_chunk, axis=0)
    chunk = np.repeat(chunk_ids, per_chunk)
    ra = sample._uniform_in(rng, bounds[:, 0], bounds[:, 1])
    decl = sample._uniform_in(rng, bounds[:, 2], bounds[:, 3])
    sub_chunk = sample._locate_in(chunker, ra, decl, chunk)
    return sample._object_table(rng, first_id + np.arange(len(chunk)), ra, decl, chunk, sub_chunk)


CHILD_KEY_INDEX = True  # the child's director key indexed, in the raw baseline as in the platform


def write_case(out_dir: Path, database: str, size: CaseSize, seed: int) -> Path:
    """A director Object (with overlap files) and one child ForcedSource, text files as the sample writes them."""
    rng = np.random.default_rng(seed)
    chunker = Chunker(sample.NUM_STRIPES, sample.NUM_SUB_STRIPES, sample.OVERLAP)
    chunk_ids = np.sort(rng.choice(chunker.all_chunks(), size=size.chunks, replace=False))
    director_dir = levels.step_directory(levels.DIRECTOR, 1) + f"/{DIRECTOR}"
    child_dir = levels.step_directory(levels.CHILD, 1) + f"/{CHILD}"
    next_id = sample.OBJECT_ID_BASE
    for group in np.array_split(chunk_ids, math.ceil(size.chunks / GROUP_CHUNKS)):
        objects = _objects(rng, chunker, group, size.rows_per_chunk, next_id)
        next_id += objects.num_rows
        overlap = sample._overlap_objects(rng, chunker, group, max(1, size.rows_per_chunk // 10))
        children = sample._forced_sources(rng, objects)
        sample._write_all(
            sample._chunk_files(out_dir / director_dir, objects, group, "", "txt")
            + sample._chunk_files(out_dir / director_dir, overlap, group, "_overlap", "txt")
            + sample._chunk_files(out_dir / child_dir, children, group, "", "txt")
        )
        del objects, overlap, children
    documents: dict[str, dict[str, Any]] = {
        f"{DIRECTOR}.json": sample._table_json(
            database, DIRECTOR, sample.OBJECT_COLUMNS, **sample._partitioning("", KEY, "decl", "ra")
        ),
        f"{CHILD}.json": sample._table_json(
            database, CHILD, sample.FORCED_SOURCE_COLUMNS, **sample._partitioning(DIRECTOR, KEY, "", "")
        ),
        "idx_object_objectId.json": {
            "version": SUPPORTED_VERSION, "database": database, "table": DIRECTOR, "index": "idx_objectId",
            "spec": "UNIQUE", "comment": "the director key", "columns": [{"column": KEY, "length": 0, "ascending": 1}],
        },
        "idx_child_objectId.json": {  # as Qserv's own DC2 child tables have (idx_dpdd_forced.json)
            "version": SUPPORTED_VERSION, "database": database, "table": CHILD, "index": "idx_child_objectId",
            "spec": "DEFAULT", "comment": "the director key", "columns": [{"column": KEY, "length": 0, "ascending": 1}],
        },
        "database.json": {
            "version": SUPPORTED_VERSION, "database": database, "auto_build_secondary_index": 0,
            "local_load_secondary_index": 1, "num_stripes": sample.NUM_STRIPES,
            "num_sub_stripes": sample.NUM_SUB_STRIPES, "overlap": sample.OVERLAP, "auth_key": "",
        },
        METADATA_FILE: {
            "version": SUPPORTED_VERSION, "charset_name": "latin1", "database": "database.json",
            "formats": {"txt": {"fields_terminated_by": ","}},
            "tables": [  # no `overlaps`: every chunk of the director has an overlap file
                {"schema": f"{DIRECTOR}.json", "indexes": ["idx_object_objectId.json"],
                 "data": [{"directory": director_dir, "chunks": chunk_ids.tolist()}]},
                {"schema": f"{CHILD}.json", "indexes": ["idx_child_objectId.json"] if CHILD_KEY_INDEX else [],
                 "data": [{"directory": child_dir, "chunks": chunk_ids.tolist()}]},
            ],
        },
    }  # fmt: skip
    for name, document in documents.items():
        (out_dir / name).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return out_dir


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- loading ----------------------------------------------------------------------------------------------------


def load_level(store: Store, cluster: Cluster, case: str, level: int) -> tuple[float, int, int]:
    """(seconds, notices, rows) of one load level through the engine's Loader (one process, one run)."""
    ids = notice_ids(store.db, case, level=level)
    started = time.perf_counter()
    report = Loader(store, cluster).load(ids, Owner.current(f"{case}-level{level}"), progress=lambda _: None)
    seconds = time.perf_counter() - started
    if report.failed or report.skipped or report.lost or len(report.loaded) != len(ids):
        problem = (next(iter(report.failed.values()), None) or next(iter(report.skipped.values()), None)
                   or report.problem)  # fmt: skip
        raise RuntimeError(f"level {level} of {case}: {len(report.loaded)} of {len(ids)} notices loaded; {problem}")
    return seconds, len(ids), report.rows


@dataclass
class RawLoad:
    seconds: float
    rows: int
    files: int
    per_worker: dict[str, tuple[int, int]]  # worker -> (chunks, rows)


def raw_load(store: Store, cluster: Cluster, layout: CaseLayout, table: TableLayout) -> RawLoad:
    """The table's loaded files again, bare LOAD DATA into `<database>_raw`, one stream per worker in parallel."""
    files = done_files(store.db, layout.case, table.name)
    placement = cluster.place_chunks(layout.database, sorted({f.chunk for f in files}))  # placed: read back
    by_worker: dict[str, list[DoneFile]] = {}
    for item in files:
        by_worker.setdefault(placement[item.chunk], []).append(item)
    database = raw_database(layout)
    for worker, items in by_worker.items():  # pre-created, not timed
        with cluster.worker(worker).connect() as conn:
            create_database(conn, database, layout.charset)
            for chunk in sorted({f.chunk for f in items}):
                create_chunk_tables(conn, database, table.name, table.columns, table.indexes, chunk, layout.charset)
    os.sync()  # the write-back of what came before does not slow this load
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(by_worker), thread_name_prefix="raw-load") as pool:
        futures = {
            worker: pool.submit(_load_stream, cluster.worker(worker), database, layout, table, items)
            for worker, items in sorted(by_worker.items())
        }
        loaded = {worker: future.result() for worker, future in futures.items()}
    seconds = time.perf_counter() - started
    expected = sum(f.rows for f in files)
    if sum(loaded.values()) != expected:
        raise RuntimeError(f"raw load of {table.name}: {sum(loaded.values())} rows loaded, {expected} expected")
    per_worker = {w: (len({f.chunk for f in items}), loaded[w]) for w, items in sorted(by_worker.items())}
    return RawLoad(seconds, expected, len(files), per_worker)


def _load_stream(server: Server, database: str, layout: CaseLayout, table: TableLayout, files: list[DoneFile]) -> int:
    rows = 0
    columns = ", ".join(quote_name(c) for c in table.column_names)
    with server.connect(local_infile=True) as conn, conn.cursor() as cursor:
        for item in files:
            fmt = item.path.rsplit(".", 1)[-1]
            target = quote_table(database, chunk_table_name(table.name, item.chunk, item.overlap))
            cursor.execute(
                f"LOAD DATA LOCAL INFILE {conn.escape(str(layout.root / item.path))} INTO TABLE {target} "
                f"CHARACTER SET {charset_name(layout.charset)} {dialect_clause(conn, layout.dialect_of(fmt, table))} "
                f"({columns}) SET {quote_name(TRANS_ID)} = 0"
            )
            rows += cursor.rowcount
    return rows


def raw_database(layout: CaseLayout) -> str:
    return f"{layout.database}_raw"


# -- validation in a fresh process -------------------------------------------------------------------------------


class Profile:
    """Seconds and calls per phase of one validation, from wrappers around the functions it calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, label: str, seconds: float, calls: int = 1) -> None:
        with self._lock:
            self.seconds[label] = self.seconds.get(label, 0.0) + seconds
            self.calls[label] = self.calls.get(label, 0) + calls

    def wrap(self, owner: Any, name: str, label: str | Callable[..., str]) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(label(*args) if callable(label) else label, time.perf_counter() - started)

        setattr(owner, name, timed)

    def wrap_iterator(self, owner: Any, name: str, label: str) -> None:
        """A generator: the time spent producing its items (the query runs inside the first one)."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            items, calls = original(*args, **kwargs), 1
            while True:
                started = time.perf_counter()
                try:
                    item = next(items)
                except StopIteration:
                    self.add(label, time.perf_counter() - started, calls)
                    return
                self.add(label, time.perf_counter() - started, calls)
                calls = 0
                yield item

        setattr(owner, name, timed)


# Phase label -> what it covers; the order of the printout. Top-level phases run one after the other;
# "  " phases run inside the census, on each worker's thread at once (their seconds are summed over threads).
PHASES = {
    "catalog: begin, loaded?, finish, release": "gates.begin/finish/release_validation, level_state.require_loaded",
    "catalog: done files": "notices.done_files",
    "czar: chunk placement": "Cluster.place_chunks",
    "census on the workers (parallel wall)": "validate._census_in_parallel",
    "  row counts": "census.row_count",
    "  fingerprints per attempt": "census.partition_fingerprint",
    "  duplicate keys": "census.duplicate_keys",
    "  NULL keys": "census.null_keys",
    "  director chunk exists?": "census.table_exists",
    "  anti-join": "census.absent_keys",
    "  index lookups of absent keys": "census.index_chunks_of",
    "director index build": "ddl.build_director_index",
    "  dump of the workers' keys": "ddl._dump_director_rows (sequential, per worker)",
    "  LOAD DATA at the czar": "ddl._load_index_file",
    "director index rows per chunk": "census.index_rows_per_chunk",
}
TOP_LEVEL = [label for label in PHASES if not label.startswith(" ")]


def install_profile(profile: Profile) -> None:
    from loader_assets.engine import validate
    from loader_assets.workers import census, ddl

    for name in ("begin_validation", "finish_validation", "release_validation", "require_loaded"):
        profile.wrap(validate, name, "catalog: begin, loaded?, finish, release")
    profile.wrap(validate, "done_files", "catalog: done files")
    profile.wrap(Cluster, "place_chunks", "czar: chunk placement")
    profile.wrap(validate, "_census_in_parallel", "census on the workers (parallel wall)")
    profile.wrap(validate, "census_of_worker", lambda _cluster, worker, *_: f"census thread of {worker}")
    for name, label in (
        ("row_count", "  row counts"),
        ("partition_fingerprint", "  fingerprints per attempt"),
        ("duplicate_keys", "  duplicate keys"),
        ("null_keys", "  NULL keys"),
        ("table_exists", "  director chunk exists?"),
        ("index_chunks_of", "  index lookups of absent keys"),
        ("index_rows_per_chunk", "director index rows per chunk"),
    ):
        profile.wrap(census, name, label)
    profile.wrap_iterator(census, "absent_keys", "  anti-join")
    profile.wrap(validate, "build_director_index", "director index build")
    profile.wrap(ddl, "_dump_director_rows", "  dump of the workers' keys")
    profile.wrap(ddl, "_load_index_file", "  LOAD DATA at the czar")


def peak_rss_kb() -> int:
    """VmHWM: the high-water RSS of this process's own memory since its exec.

    Not ru_maxrss(RUSAGE_SELF): Linux carries the parent's high-water mark across fork + exec into it (a child
    of a 400 MB parent reports 400 MB there from its first instruction), so it measures the benchmark instead.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def validate_child(spec: dict[str, str]) -> None:
    """In the fresh process: one validate_table, then one JSON line on stdout."""
    from loader_assets.engine.validate import validate_table

    store = Store.from_url(spec["catalog_url"])
    cluster = Cluster(ClusterConfig.load(Path(spec["state_dir"])))
    layout = case_layout(store.db, spec["case"])
    profile = Profile()
    install_profile(profile)
    before = peak_rss_kb()
    lines: list[str] = []
    started = time.perf_counter()
    validation = validate_table(store, cluster, layout, layout.tables[spec["table"]], spec["run_id"], lines.append)
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "rss_before_kb": before,
        "rss_self_kb": peak_rss_kb(),
        "rss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,  # 0 unless it forks
        "ru_maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "failed": validation.failed,
        "warnings": validation.warnings,
        "recorded": validation.recorded,
        "metadata": {k: str(v) for k, v in validation.metadata.items()},
        "log": lines,
        "phases": {label: [profile.seconds[label], profile.calls[label]] for label in profile.seconds},
    }
    store.db.dispose()
    print(json.dumps(result))


@dataclass
class Validated:
    seconds: float
    wall: float  # the whole subprocess: interpreter start, imports, catalog connection, validation
    rss_mb: float  # peak RSS of the validating process plus that of its children
    rss_before_mb: float
    rss_children_mb: float
    ru_maxrss_mb: float  # ru_maxrss(RUSAGE_SELF) of the child: includes the parent's high-water mark
    phases: dict[str, tuple[float, int]]
    log: list[str]
    metadata: dict[str, str] = field(default_factory=dict)


def validate_in_subprocess(catalog_url: str, state_dir: Path, case: str, table: str, timeout: float) -> Validated:
    spec = {"catalog_url": catalog_url, "state_dir": str(state_dir), "case": case, "table": table,
            "run_id": f"bench-validate-{case}-{table}-{uuid.uuid4().hex[:6]}"}  # fmt: skip
    os.sync()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--validate-child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"validation of {case}/{table} exited with {done.returncode}: {done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["failed"] or not result["recorded"]:
        raise RuntimeError(f"validation of {case}/{table} did not pass: {result['log']} {result['failed']}")
    return Validated(
        seconds=result["seconds"],
        wall=wall,
        rss_mb=(result["rss_self_kb"] + result["rss_children_kb"]) * 1024 / MB,
        rss_before_mb=result["rss_before_kb"] * 1024 / MB,
        rss_children_mb=result["rss_children_kb"] * 1024 / MB,
        ru_maxrss_mb=result["ru_maxrss_self_kb"] * 1024 / MB,
        phases={label: (seconds, calls) for label, (seconds, calls) in result["phases"].items()},
        log=result["log"],
        metadata=result["metadata"],
    )


def print_phases(validated: Validated) -> None:
    total = validated.seconds
    print(f"    where the validation's {total:.2f} s go (phases nest; '  ' ones are summed over the worker threads):")
    for label in [*PHASES, *sorted(k for k in validated.phases if k.startswith("census thread"))]:
        if label not in validated.phases:
            continue
        seconds, calls = validated.phases[label]
        print(f"      {label:42s} {seconds:8.2f} s {calls:6d} calls {100 * seconds / total:6.1f} % of validation")
    other = total - sum(validated.phases.get(label, (0.0, 0))[0] for label in TOP_LEVEL)
    print(f"      {'other (verdict, connections, Python)':42s} {other:8.2f} s {'':12s} {100 * other / total:6.1f} %")


# -- EXPLAIN ----------------------------------------------------------------------------------------------------


def explain_anti_join(store: Store, cluster: Cluster, layout: CaseLayout) -> None:
    from loader_assets.workers.census import anti_join_sql

    files = [f for f in done_files(store.db, layout.case, CHILD) if not f.overlap]
    chunk = files[0].chunk
    worker = cluster.place_chunks(layout.database, [chunk])[chunk]
    sql = anti_join_sql(layout.database, chunk_table_name(CHILD, chunk), chunk_table_name(DIRECTOR, chunk), KEY, KEY)
    print(f"  anti-join of chunk {chunk} on {worker}, after SET SESSION join_cache_level = 4:\n    {sql}")
    with cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
        cursor.execute("SET SESSION join_cache_level = 4")
        for statement in ("EXPLAIN", "ANALYZE"):
            started = time.perf_counter()
            cursor.execute(f"{statement} {sql}")
            seconds = time.perf_counter() - started
            names = [d[0] for d in cursor.description]
            rows = [["NULL" if v is None else str(v) for v in row] for row in cursor.fetchall()]
            widths = [max(len(name), *(len(row[i]) for row in rows)) for i, name in enumerate(names)]
            print(f"  {statement}" + (f" (ran the query: {seconds:.2f} s)" if statement == "ANALYZE" else "") + ":")
            for row in [names, *rows]:
                print("    " + " | ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)))


# -- the benchmark ----------------------------------------------------------------------------------------------


@dataclass
class Level:
    scale: int
    level: int
    table: str
    rows: int
    raw: RawLoad
    validated: Validated

    @property
    def ratio(self) -> float:
        return self.validated.seconds / self.raw.seconds


def run_scale(args: argparse.Namespace, root: Path, state_dir: Path, catalog_url: str, scale: int) -> list[Level]:
    size = (
        CaseSize(args.chunks * scale, args.director_rows // args.chunks)
        if args.scale_by == "chunks"
        else CaseSize(args.chunks, args.director_rows * scale // args.chunks)
    )
    store, cluster = Store.from_url(catalog_url), Cluster(ClusterConfig.load(state_dir))
    case = f"vbench_x{scale}"
    started = time.perf_counter()
    directory = write_case(root / "cases" / case, case, size, seed=scale)
    print(
        f"\nscale {scale}: {size.chunks} chunks of {size.rows_per_chunk:,} objects: {DIRECTOR} {size.director_rows:,} rows "
        f"+ {size.overlap_rows:,} overlap rows, {CHILD} {size.child_rows:,} rows (2 per object); "
        f"{directory_bytes(directory) / 1e6:,.0f} MB of text written in {time.perf_counter() - started:.1f} s"
    )
    register_case(store, directory, case)
    layout = case_layout(store.db, case)
    results: list[Level] = []
    try:
        for load, validation, table in ((levels.LOAD_DIRECTOR, levels.VALIDATE_DIRECTOR, DIRECTOR),
                                        (levels.LOAD_CHILDREN, levels.VALIDATE_CHILDREN, CHILD)):  # fmt: skip
            seconds, count, rows = load_level(store, cluster, case, load)
            raw = raw_load(store, cluster, layout, layout.tables[table])
            split = ", ".join(f"{w} {chunks} chunks {r:,} rows" for w, (chunks, r) in raw.per_worker.items())
            print(f"  level {load}: Loader {seconds:.2f} s for {count} files, {rows:,} rows ({split})")
            remaining = args.deadline - time.monotonic()
            validated = validate_in_subprocess(catalog_url, state_dir, case, table, max(remaining, 1.0))
            verdict = gate(store.db, case, validation, table)
            if verdict is None or verdict.status != "passed":
                raise RuntimeError(f"gate of level {validation} for {table}: {verdict}")
            result = Level(scale, validation, table, raw.rows, raw, validated)
            results.append(result)
            print(
                f"  scale {scale} level {validation} ({table}, {raw.rows:,} rows in {raw.files} files): "
                f"raw load {raw.seconds:.2f} s, validation {validated.seconds:.2f} s, "
                f"validation/raw load = {result.ratio:.2f}x, peak RSS {validated.rss_mb:.1f} MB"
            )
            print(
                f"    validating process: VmHWM {validated.rss_before_mb:.1f} MB before validate_table "
                f"(interpreter, imports, catalog), children {validated.rss_children_mb:.1f} MB "
                f"(ru_maxrss self {validated.ru_maxrss_mb:.1f} MB, >= the parent's RSS at fork); "
                f"subprocess wall {validated.wall:.2f} s; {'; '.join(validated.log)}"
            )
            print_phases(validated)
        explain_anti_join(store, cluster, layout)
    finally:
        drop_case_data(cluster, layout)
        store.db.dispose()
    return results


def drop_case_data(cluster: Cluster, layout: CaseLayout) -> None:
    """The case's and the baseline's databases on the workers and the director index at the czar."""
    for worker in cluster.workers:
        with cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
            for database in (layout.database, raw_database(layout)):
                cursor.execute(f"DROP DATABASE IF EXISTS {quote_name(database)}")
    index = director_index_table(layout.database, DIRECTOR)
    with cluster.czar.connect() as conn, conn.cursor() as cursor:
        for name in (index, f"{index}__chunks"):
            cursor.execute(f"DROP TABLE IF EXISTS {META_DB}.{quote_name(name)}")


def summarise(results: list[Level]) -> None:
    print("\nsummary (validation seconds over the bare parallel LOAD DATA of the same rows, same run):")
    for r in results:
        print(
            f"  scale {r.scale} level {r.level} {r.table:12s} {r.rows:>12,} rows  raw {r.raw.seconds:7.2f} s  "
            f"validation {r.validated.seconds:7.2f} s  validation/raw load = {r.ratio:.2f}x  "
            f"peak RSS {r.validated.rss_mb:6.1f} MB"
        )
    scales = sorted({r.scale for r in results})
    worst = max(r.ratio for r in results)
    print(
        f"worst validation/raw load = {worst:.2f}x (goal <= {GOAL_RATIO}): {'met' if worst <= GOAL_RATIO else 'NOT met'}"
    )
    if len(scales) < 2:
        return
    low, high = scales[0], scales[-1]
    growths = []
    for level in (levels.VALIDATE_DIRECTOR, levels.VALIDATE_CHILDREN):
        small, big = (next(r for r in results if r.scale == s and r.level == level) for s in (low, high))
        growth = big.validated.rss_mb - small.validated.rss_mb
        growths.append(growth)
        print(
            f"peak RSS of the validating process, level {level}: {small.validated.rss_mb:.1f} MB at scale {low} "
            f"({small.rows:,} rows), {big.validated.rss_mb:.1f} MB at scale {high} ({big.rows:,} rows): "
            f"grows {growth:+.1f} MB"
        )
    verdict = "met" if max(growths) < GOAL_RSS_GROWTH_MB else "NOT met"
    print(
        f"peak RSS growth scale {low} -> {high}: {max(growths):+.1f} MB (goal < {GOAL_RSS_GROWTH_MB:.0f} MB): {verdict}"
    )


@contextmanager
def catalog(root: Path, admin_url: str | None) -> Iterator[str]:
    """SQLite in the temp dir, or a throwaway database on the PostgreSQL server of `admin_url`."""
    if admin_url is None:
        yield f"sqlite:///{root / 'catalog.sqlite'}"
        return
    from loader_assets_tests import servers  # imported here: it imports Dagster, which validating never does

    with (
        mock.patch.object(servers, "POSTGRES_ADMIN_URL", admin_url),  # the shared helper, on the server asked for
        servers.postgres_database("loader_validation_bench") as url,
    ):
        yield url


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # unwinds through the clean-ups


def _timed_out(_signum: int, _frame: object) -> None:
    raise TimeoutError("benchmark exceeded --timeout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,4", help="multiples of the base size, comma separated")
    parser.add_argument("--director-rows", type=int, default=BASE_DIRECTOR_ROWS, help="director rows at scale 1")
    parser.add_argument("--chunks", type=int, default=20, help="chunks at scale 1")
    parser.add_argument(
        "--scale-by",
        choices=["chunks", "rows"],
        default="chunks",
        help="what a scale multiplies: chunks or rows per chunk",
    )
    parser.add_argument("--quick", action="store_true", help="1/20 of the rows (same chunks): a smoke run")
    parser.add_argument("--catalog-url", help="PostgreSQL server URL: a throwaway database there (default SQLite)")
    parser.add_argument("--timeout", type=float, default=2700.0, help="seconds after which the benchmark stops")
    parser.add_argument(
        "--no-child-index",
        action="store_true",
        help="the child without an index on its director key (Qserv's DC2 children have one)",
    )
    parser.add_argument("--validate-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global CHILD_KEY_INDEX
    CHILD_KEY_INDEX = not args.no_child_index
    if args.validate_child:
        validate_child(json.loads(args.validate_child))
        return
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    if args.quick:
        args.director_rows //= 20
    scales = [int(s) for s in args.scales.split(",")]
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(int(args.timeout))
    args.deadline = time.monotonic() + args.timeout
    root = Path(tempfile.mkdtemp(prefix="loader-validation-"))
    state_dir = root / "cluster"
    print(
        f"validation benchmark: {WORKERS} workers + czar (local mariadbd) on {os.cpu_count()} cores, "
        f"{'PostgreSQL' if args.catalog_url else 'SQLite'} catalog, scales {scales} by {args.scale_by}, "
        f"{args.director_rows:,} director rows in {args.chunks} chunks at scale 1"
    )
    print(
        f"case: director {DIRECTOR} (+ overlap files, 10% of its rows) and one child {CHILD} "
        f"({CHILDREN_PER_OBJECT} rows per object{', its director key indexed' if CHILD_KEY_INDEX else ', no index'}), "
        "from qserv.sample's generators; the sample's Source "
        "(2 to 4 rows per object) and regular Filter are left out"
    )
    results: list[Level] = []
    try:
        local.start_cluster(state_dir, WORKERS)
        with catalog(root, args.catalog_url) as catalog_url:
            for scale in scales:
                results += run_scale(args, root, state_dir, catalog_url, scale)
        summarise(results)
    finally:
        signal.alarm(0)
        local.stop_cluster(state_dir)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
