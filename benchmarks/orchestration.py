"""Orchestration overhead per chunk: batched `load_notices` runs against loading the same files directly.

Starts a throwaway local cluster (2 workers), a SQLite catalog and a temp DAGSTER_HOME, writes a sample case
of --chunks chunks (tiny files, so the load itself is cheap and the overhead shows), and measures:

- end to end: level 1 of the case through `plan_runs` + the platform's `run_load` (in-process `load_notices`
  runs of at most MAX_NOTICES_PER_RUN notices each, like `loader-assets load`);
- pure load: the per-notice load seconds the runs record (table creation + `load_file`, in the
  materializations' metadata), measured in the same runs so machine noise cancels; `--direct` also loads
  the same files with `create_chunk_tables` + `load_file` alone into a twin database;
- overhead per chunk = (end to end - recorded load seconds) / chunks, against the goal of 20 ms, split by
  phase from the runs' event logs (run start, claim + catalog writes, materialization events, run stop);
- `--profile N`: a second case of N chunks loaded under cProfile, cumulative seconds per function.

    .venv/bin/python benchmarks/orchestration.py [--chunks 1000] [--catalog sqlite|postgresql] [--direct]

The last line is `orchestration overhead: X.X ms/chunk (goal <= 20)`.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # loader_assets_tests: helpers shared with the tests

import dagster as dg
from sqlalchemy import select

from loader_assets.catalog.layout import CaseLayout, case_layouts
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.schema import notices
from loader_assets.catalog.store import Store
from loader_assets.defs.jobs import SHARE_OP
from loader_assets.engine.plan import MAX_NOTICES_PER_RUN, plan_runs
from loader_assets.operations import cases
from loader_assets.operations.context import Context
from loader_assets.qserv.sample import write_sample_case
from loader_assets.workers import local
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.ddl import chunk_table_name, create_chunk_tables, create_database, create_table
from loader_assets.workers.load_data import load_file
from loader_assets_tests.servers import postgres_database

GOAL_MS_PER_CHUNK = 20.0
DAGSTER_MS_PER_PARTITION = 30.0  # Dagster's own cost of one more partition in a multi-partition run
DAGSTER_S_PER_RUN = 0.4  # Dagster's own cost of a single-chunk run

# Phase -> (file suffix, function name) whose cumulative time cProfile reports; phases may nest.
PHASES: dict[str, tuple[str, str]] = {
    "run (execute_in_process)": ("defs/platform.py", "run_load"),
    "op body (Loader.load)": ("engine/load.py", "load"),
    "claim": ("catalog/store.py", "claim"),
    "why_not_claimed": ("catalog/store.py", "why_not_claimed"),
    "placement": ("engine/load.py", "_place"),
    "set_worker": ("catalog/store.py", "set_workers"),
    "create tables": ("engine/load.py", "_prepare"),
    "load_file": ("workers/load_data.py", "load_file"),
    "finish (catalog)": ("catalog/store.py", "finish"),
    "heartbeat (thread start/stop)": ("engine/load.py", "start"),
    "materialization events": ("execution/context/compute.py", "log_event"),
    "planning (plan_runs)": ("engine/plan.py", "plan_runs"),
}


@dataclass
class Timing:
    seconds: float = 0.0
    runs: int = 0
    notices: int = 0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, from the runs' event logs

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds


@contextmanager
def platform_env(root: Path, catalog_url: str, cluster_dir: Path):  # type: ignore[no-untyped-def]
    config = local.start_cluster(cluster_dir, 2)
    os.environ.update(
        LOADER_STATE_DIR=str(root / "state"),
        DAGSTER_HOME=str(root / "dagster"),
        LOADER_CATALOG_URL=catalog_url,
        LOADER_CZAR=config.czar_url,
        LOADER_WORKERS=",".join(f"{name}={url}" for name, url in config.workers.items()),
        LOADER_DAGSTER_WEBSERVER="127.0.0.1:1",  # registering asks no webserver to reload (none is ours)
    )
    try:
        yield
    finally:
        local.stop_cluster(cluster_dir)


def new_case(root: Path, ctx: Context, chunks: int, seed: int) -> CaseLayout:
    """A sample case registered with its chunk partitions, as `loader-assets register` does."""
    case = f"bench{uuid.uuid4().hex[:6]}"
    directory = write_sample_case(root / case, chunks=chunks, rows_per_chunk=1, database=case, seed=seed)
    cases.register(ctx, directory, case)
    return case_layouts(ctx.store.db, case)[case]


def load_level_1(layout: CaseLayout, ctx: Context) -> Timing:
    """What `loader-assets load CASE --levels 1` does: plan, then one in-process run per plan."""
    store, cluster, instance = ctx.store, ctx.cluster, ctx.dagster.instance
    executor = ctx.dagster.executor(ctx.settings.catalog_url)
    timing = Timing()
    started = time.perf_counter()
    ids = notice_ids(store.db, layout.case, level=1, statuses=("ready", "failed"))
    plans, _ = plan_runs(store, cluster, ids)
    timing.add("planning (plan_runs)", time.perf_counter() - started)
    for plan in plans:
        before = time.perf_counter()
        outcome = executor.run_load(plan)
        run = instance.get_run_by_id(outcome.run_id)
        if outcome.problem is not None or run is None or run.status != dg.DagsterRunStatus.SUCCESS:
            raise RuntimeError(f"run {outcome.run_id} failed: {outcome.problem}")
        run_phases(instance, outcome.run_id, time.perf_counter() - before, timing)
    timing.seconds, timing.runs, timing.notices = time.perf_counter() - started, len(plans), len(ids)
    return timing


def run_phases(instance: dg.DagsterInstance, run_id: str, wall: float, timing: Timing) -> None:
    """Split one run by its event log: start, the op's claim+load+finish, its materialization events, stop.
    The op is the load step (`load_share`); the split step before it counts as run start."""
    logged = instance.all_logs(run_id)  # the op's own log lines included: they mark the end of its loads
    records = [
        r for r in logged
        if r.dagster_event_type == dg.DagsterEventType.RUN_START or (r.step_key or "").startswith(SHARE_OP)
    ]  # fmt: skip
    kinds = [r.dagster_event_type for r in records]
    start, step_start, step_success = (
        records[kinds.index(kind)].timestamp
        for kind in (dg.DagsterEventType.RUN_START, dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS)
    )
    materialized = [i for i, kind in enumerate(kinds) if kind == dg.DagsterEventType.ASSET_MATERIALIZATION]
    op_done = records[materialized[0] - 1].timestamp if materialized else step_success
    events_done = records[materialized[-1]].timestamp if materialized else op_done
    loaded_seconds = sum(
        records[i].asset_materialization.metadata["seconds"].value  # type: ignore[union-attr]
        for i in materialized
    )
    timing.add("execute_in_process outside the run", wall - (instance.get_run_stats(run_id).end_time - start))
    timing.add("run start (RUN_START -> STEP_START)", step_start - start)
    timing.add("op: claim + load + catalog writes", op_done - step_start)
    timing.add("  of which recorded per-notice load", loaded_seconds)
    timing.add("op: materialization events", events_done - op_done)
    timing.add("run stop (last event -> run end)", instance.get_run_stats(run_id).end_time - events_done)


def load_directly(layout: CaseLayout, store: Store, cluster: Cluster) -> float:
    """The same files into a twin database with the worker loader alone: the load time nothing can save."""
    database = f"{layout.database}_direct"
    with store.db.read() as connection_:
        n = notices.c
        rows = connection_.execute(
            select(n.table, n.chunk, n.overlap, n.path, n.format, n.worker).where(n.case == layout.case, n.level == 1)
        ).all()
    started = time.perf_counter()
    created: set[tuple[str, str]] = set()
    for number, row in enumerate(rows, 1):
        table = layout.tables[row.table]
        workers = list(cluster.workers) if row.chunk is None else [row.worker]
        for worker in workers:
            server = cluster.worker(worker)
            name = table.name if row.chunk is None else chunk_table_name(table.name, row.chunk)
            if (worker, name) not in created:
                with server.connect() as conn:
                    create_database(conn, database, layout.charset)
                    if row.chunk is None:
                        create_table(conn, database, table.name, table.columns, table.indexes, layout.charset)
                    else:
                        create_chunk_tables(conn, database, table.name, table.columns, table.indexes, row.chunk,
                                            layout.charset)  # fmt: skip
                created.add((worker, name))
            target = table.name if row.chunk is None else chunk_table_name(table.name, row.chunk, row.overlap)
            load_file(server, database, target, layout.root / row.path, row.format, layout.dialect_of(row.format),
                      layout.charset, number, table.column_names)  # fmt: skip
    return time.perf_counter() - started


def profile_phases(layout: CaseLayout, ctx: Context) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    timing = load_level_1(layout, ctx)
    profiler.disable()
    stats = pstats.Stats(profiler)
    cumulative: dict[str, float] = {}
    calls: dict[str, int] = {}
    for (filename, _, function), (_, ncalls, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        for phase, (suffix, name) in PHASES.items():
            if function == name and filename.endswith(suffix):
                cumulative[phase] = cumulative.get(phase, 0.0) + cumtime
                calls[phase] = calls.get(phase, 0) + ncalls
    print(f"\nwhere the time goes (cProfile, second case, {timing.notices} notices in {timing.runs} runs, "
          f"{timing.seconds:.1f} s with the profiler on; phases nest):")  # fmt: skip
    for phase in PHASES:
        seconds = cumulative.get(phase, 0.0)
        print(
            f"  {phase:32s} {seconds:7.2f} s  {calls.get(phase, 0):6d} calls  {1000 * seconds / timing.notices:6.2f} ms/notice"
        )
    print("\ntop 12 functions by own time:")
    stats.sort_stats("tottime").print_stats(12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--catalog", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--direct", action="store_true", help="also load the same files with load_file alone")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="CHUNKS",
        help="also load a second case of CHUNKS chunks under cProfile, summarised per phase",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loader-orchestration-") as directory:
        root = Path(directory)
        with catalog(root, args.catalog) as catalog_url, platform_env(root, catalog_url, root / "cluster"):
            run_benchmark(root, args)


@contextmanager
def catalog(root: Path, kind: str):  # type: ignore[no-untyped-def]
    if kind == "sqlite":
        yield f"sqlite:///{root / 'catalog.sqlite'}"
        return
    with postgres_database("loader_bench") as url:
        yield url


def run_benchmark(root: Path, args: argparse.Namespace) -> None:
    ctx = Context.from_env()
    cases.init(ctx)  # the temp DAGSTER_HOME's dagster.yaml
    store, cluster = ctx.store, ctx.cluster
    layout = new_case(root / "cases", ctx, args.chunks, seed=1)
    batched = load_level_1(layout, ctx)
    loaded = batched.phases["  of which recorded per-notice load"]
    events = batched.phases["op: materialization events"]
    per_chunk = 1000 * (batched.seconds - loaded) / args.chunks
    print(
        f"{args.chunks} chunks, level 1: {batched.notices} notices in {batched.runs} runs of <= {MAX_NOTICES_PER_RUN}"
    )
    print(
        f"end to end (batched runs):   {batched.seconds:7.2f} s  ({1000 * batched.seconds / args.chunks:.1f} ms/chunk)"
    )
    print(f"recorded per-notice loads:   {loaded:7.2f} s  ({1000 * loaded / args.chunks:.1f} ms/chunk)")
    for phase, seconds in batched.phases.items():
        print(f"  {phase:38s} {seconds:7.2f} s  {1000 * seconds / args.chunks:6.1f} ms/chunk")
    if args.direct:
        direct = load_directly(layout, store, cluster)
        print(f"same files, load_file alone: {direct:7.2f} s  ({1000 * direct / args.chunks:.1f} ms/chunk)")
    print(f"compare: Dagster ~{DAGSTER_MS_PER_PARTITION:.0f} ms per partition in one run "
          f"(here the materialization events cost {1000 * events / args.chunks:.1f} ms/chunk); "
          f"~{DAGSTER_S_PER_RUN} s per single-chunk run = {DAGSTER_S_PER_RUN * args.chunks:.0f} s for "
          f"{args.chunks} chunks (here {(batched.seconds - loaded) / batched.runs:.2f} s of overhead per run)")  # fmt: skip
    if args.profile:
        profile_phases(new_case(root / "cases", ctx, args.profile, seed=2), ctx)
    ctx.close()
    print(f"orchestration overhead: {per_chunk:.1f} ms/chunk (goal <= {GOAL_MS_PER_CHUNK:.0f})")


if __name__ == "__main__":
    main()
