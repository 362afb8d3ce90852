"""Selection speed on a catalog of 1,000,000 notices in PostgreSQL: an operator's preview and a sensor tick.

Creates a fresh database on the local server (user postgres, trust), fills it with COPY, times, drops it;
the sensor tick runs the saved selection's sensor against a throwaway local cluster (2 workers):

    .venv/bin/python benchmarks/selection.py [--notices 1000000] [--explain]

Cases c1..c4 of 250,000 notices each (one file per chunk and one overlap file, 250 batches per case):
c1 and c2 are director tables (level 1), c3 and c4 children (level 3, gate passed). c1 has ~10 % failed;
c2 and c3 have 100,000 ready notices each, the rest done. Timings are the median of 5 runs.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # loader_assets_tests: helpers shared with the tests

import dagster as dg
import numpy as np
import pandas as pd
from sqlalchemy import Select, select, text

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import batches, cases, level_gates, notices, tables
from loader_assets.catalog.store import Store
from loader_assets.definitions import build_definitions
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.defs.sensors import NOTICES_PER_TICK
from loader_assets.selection import saved
from loader_assets.selection import select as select_notices
from loader_assets.selection.language import compile_notice_query
from loader_assets.settings import Settings
from loader_assets.workers import local
from loader_assets_tests.servers import postgres_database

NOW = datetime(2026, 11, 23, 12, 0, 0)
CASES = {"c1": ("Object", 1), "c2": ("Object", 1), "c3": ("Source", 3), "c4": ("Source", 3)}
BATCHES_PER_CASE = 250
READY_PER_CASE = 100_000
PREVIEW_QUERY = "case = 'c1' AND status = 'failed' AND chunk IN 1000..1500"
SENSOR_SELECTIONS = {"directors": "case = 'c2' AND status = ready", "children": "case = 'c3' AND status = ready"}
PREVIEW_GOAL_S = 0.2
SENSOR_TICK_GOAL_S = 5
REPEATS = 5
LIMIT = 5000


def write_cases(db: CatalogDB) -> None:
    with db.write() as connection:
        for case, (table, level) in CASES.items():
            connection.execute(
                cases.insert().values(
                    case=case,
                    database=f"db_{case}",
                    dialect={},
                    root=f"/data/{case}",
                    created_at=NOW,
                    num_stripes=340,
                    num_sub_stripes=3,
                    overlap=0.01667,
                )
            )
            connection.execute(
                tables.insert().values(case=case, name="Object", kind="director", level=1, columns=[], indexes=[])
            )
            if level == 3:
                connection.execute(
                    tables.insert().values(
                        case=case, name=table, kind="child", level=3, director_table="Object", columns=[], indexes=[]
                    )
                )
            connection.execute(
                level_gates.insert().values(case=case, level=2, table="Object", status="passed", updated_at=NOW)
            )
            connection.execute(
                batches.insert(),
                [
                    {
                        "case": case,
                        "table": table,
                        "directory": f"step{level}_{task}",
                        "step": level,
                        "task": task,
                        "level": level,
                    }
                    for task in range(1, BATCHES_PER_CASE + 1)
                ],
            )


def file_paths(level: int, chunk: np.ndarray, overlap: np.ndarray) -> list[str]:
    suffixes = np.where(overlap, "_overlap.txt", ".txt")
    return [f"step{level}_{c % BATCHES_PER_CASE + 1}/chunk_{c}{s}" for c, s in zip(chunk, suffixes, strict=True)]


def notice_frame(db: CatalogDB, case: str, count: int, first_id: int, rng: np.random.Generator) -> pd.DataFrame:
    """`count` notices of `case`: chunk files and their overlap files, statuses as described above."""
    table, level = CASES[case]
    with db.read() as connection:
        batch_ids = np.array(
            connection.execute(select(batches.c.id).where(batches.c.case == case).order_by(batches.c.id))
            .scalars()
            .all()
        )
    i = np.arange(count)
    chunk, overlap = i // 2, i % 2 == 1
    status = np.full(count, "done", dtype=object)
    if case == "c1":
        status[rng.random(count) < 0.1] = "failed"
        status[rng.random(count) < 0.05] = "ready"
    elif case in ("c2", "c3"):
        status[rng.choice(count, min(READY_PER_CASE, count), replace=False)] = "ready"
    failed = status == "failed"
    return pd.DataFrame(
        {
            "id": first_id + i,
            "case": case,
            "batch": batch_ids[i * len(batch_ids) // count],
            "table": table,
            "level": level,
            "chunk": chunk,
            "overlap": overlap,
            "path": file_paths(level, chunk, overlap),
            "format": "txt",
            "size": rng.integers(1_000, 100_000_000, count),
            "mtime": 1.7e9,
            "changed": False,
            "status": status,
            "priority": rng.integers(0, 3, count),
            "attempts": np.where(failed, rng.integers(1, 4, count), (status == "done").astype(int)),
            "error": np.where(failed, "(2013, 'Lost connection to server during query')", None),
            "retry_after": np.where(failed, NOW - timedelta(minutes=5), None),
            "created_at": NOW - timedelta(days=2),
            "updated_at": NOW - timedelta(hours=1),
        }
    )


def copy_notices(db: CatalogDB, total: int) -> None:
    """COPY the notices in, case by case, then move the id sequence past them and refresh statistics."""
    rng = np.random.default_rng(0)
    per_case = total // len(CASES)
    raw = db._writer.raw_connection()  # COPY needs the DBAPI cursor
    try:
        with raw.cursor() as cursor:
            for n, case in enumerate(CASES):
                frame = notice_frame(db, case, per_case, 1 + n * per_case, rng)
                buffer = io.StringIO()
                frame.to_csv(buffer, index=False, header=False)
                buffer.seek(0)
                columns = ", ".join(f'"{name}"' for name in frame.columns)
                cursor.copy_expert(f"COPY notices ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
            cursor.execute("SELECT setval(pg_get_serial_sequence('notices', 'id'), (SELECT max(id) FROM notices))")
        raw.commit()
    finally:
        raw.close()
    with db._writer.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE notices"))


def median_seconds(action: Callable[[], object], repeats: int = REPEATS) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings), result


def explain(db: CatalogDB, statement: Select) -> None:
    """EXPLAIN ANALYZE of a SQLAlchemy statement, with its bound parameters."""
    with db.read() as connection:
        compiled = statement.compile(connection, compile_kwargs={"render_postcompile": True})
        for (line,) in connection.exec_driver_sql("EXPLAIN ANALYZE " + str(compiled), compiled.params):
            print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notices", type=int, default=1_000_000)
    parser.add_argument("--explain", action="store_true", help="print the plans of the timed queries")
    args = parser.parse_args()

    with postgres_database("loader_bench") as url:
        run_benchmark(url, args)


def run_benchmark(url: str, args: argparse.Namespace) -> None:
    db = CatalogDB(url)
    try:
        start = time.perf_counter()
        write_cases(db)
        copy_notices(db, args.notices)
        print(f"set-up: {args.notices:,} notices in {time.perf_counter() - start:.1f} s")
        store = Store(db)

        preview_s, frame = median_seconds(lambda: select_notices(PREVIEW_QUERY, store=store, now=NOW).frame)
        print(f"preview  {preview_s:.3f} s ({len(frame)} rows; goal <= {PREVIEW_GOAL_S} s): {PREVIEW_QUERY}")
        if args.explain:
            explain(db, select(notices.c.id).where(compile_notice_query(PREVIEW_QUERY, NOW)))
        for name, query in SENSOR_SELECTIONS.items():
            saved.save(store, name, query)
            row = next(s for s in saved.saved_selections(store) if s.name == name)
            tick_s, ids = median_seconds(lambda row=row: saved.matching_schedulable(store, row, NOW, LIMIT))
            print(
                f"sensor query {tick_s:.3f} s ({len(ids)} ids, limit {LIMIT}, of {READY_PER_CASE:,} ready; "
                f"part of the tick below): {name} = {query}"
            )
            if args.explain:
                explain(db, saved.schedulable_statement(row, NOW, LIMIT, store.max_attempts))
        first_s, again_s, requests = time_sensor_ticks(url)
        print(
            f"sensor tick {first_s:.2f} s the first time (places {NOTICES_PER_TICK:,} new chunks at the czar), "
            f"then {again_s:.2f} s; {requests} run requests (goal <= {SENSOR_TICK_GOAL_S} s): the saved selection's sensor"
        )
    finally:
        db.dispose()


def time_sensor_ticks(url: str) -> tuple[float, float, int]:
    """The saved selection's sensor itself, on a local cluster: query, placement, grouping into run requests."""
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        config = local.start_cluster(Path(tmp), 2)
        try:
            resources = {
                "catalog": CatalogResource(url=url),
                "cluster": ClusterResource(
                    czar_url=config.czar_url, worker_urls=[f"{n}={u}" for n, u in config.workers.items()]
                ),
            }

            defs = build_definitions(Settings.from_env(), url)
            sensors = [defs.resolve_sensor_def(f"selection_{name}") for name in SENSOR_SELECTIONS]

            def tick() -> list[dg.SensorResult]:  # each saved selection's sensor once, as one daemon loop does
                return [sensor(dg.build_sensor_context(instance=instance, resources=resources)) for sensor in sensors]

            started = time.perf_counter()
            tick()
            first = time.perf_counter() - started
            again, result = median_seconds(tick, repeats=3)
        finally:
            local.stop_cluster(Path(tmp))
    return first, again, sum(len(r.run_requests or []) for r in result)


if __name__ == "__main__":
    main()
