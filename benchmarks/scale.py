"""Scale: a DP0.2-shaped case of empty files — registration, partitions, planning, the schedule sensor,
notebook selections and Dagster's event cost — on PostgreSQL (catalog and instance) or SQLite.

    .venv/bin/python benchmarks/scale.py [--children 1] [--catalog postgresql|sqlite] [--chunks N]
                                         [--tasks 34] [--layout DIR] [--workers 5]

Writes (or reuses, with --layout) every chunk of the 340-stripe sky (146,332; or the first --chunks) as empty
files: an Object chunk and overlap file and a file of each of --children child tables per chunk, in --tasks
batches per table, plus a Filter file. Against a throwaway local czar with --workers workers (placement only:
nothing is loaded) it prints one line per figure with its target:

- register: seconds and peak memory of `register_case` (its own process), notices per second; again: seconds
  (idempotent: nothing new); Dagster partitions added (and again);
- plan: seconds to plan every level-1 notice into runs (czar placement included), and the runs;
- scheduled_loads: seconds and run requests of each tick serving one schedule of every level-1 notice, ticks;
- select: seconds and peak memory of a notebook preview of level 1 and of its counts;
- events: milliseconds per chunk materialization on the instance, one at a time and in one batch;
- backfill: runs a UI backfill of every partition of a load asset plans (its backfill policy);
- unreported_loads: its slowest tick while it reports the chunks marked done (by a run Dagster never knew), its
  tick once they are all shown, and a tick when nothing changed;
- sky map: seconds of `nb.plot(case)` (catalog read, projection, figure, PNG) once part of level 1 went through
  the store's transitions (done in a band of the sky, some running, a few failed); --skymap writes the PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import DagsterInstance, SensorResult

    from loader_assets.operations.context import Context

ROOT = Path(__file__).resolve().parents[1]
# loader_assets_tests: helpers shared with the tests, imported late (a phase's peak memory is its own)
sys.path.insert(0, str(ROOT))
CASE = "dp02"
TARGETS = {"register_seconds": 60.0, "register_peak_mb": 300.0, "plan_seconds": 2.0, "tick_seconds": 30.0,
           "backfill_runs": 300, "skymap_seconds": 10.0}  # fmt: skip


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(phase: str, env: dict[str, str], *args: str) -> dict:
    """Run one phase in its own process (its peak memory is its own); its JSON answer."""
    command = [sys.executable, __file__, "--phase", phase, *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- phases, each in its own process ------------------------------------------------------------------------------


def phase_register(layout: str) -> dict:
    """What `loader-assets register` does: the catalog, then the Dagster partitions, before the case opens."""
    import contextlib
    import io

    from loader_assets.cli import main

    started, printed = time.monotonic(), io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["register", layout, "--case", CASE])
    seconds = time.monotonic() - started
    if code != 0:
        raise RuntimeError(printed.getvalue())
    summary = printed.getvalue()
    new, unchanged, chunks = (int(re.search(pattern, summary)[1]) for pattern in  # type: ignore[index]
                              (r"(\d+) new notices?", r"(\d+) unchanged", r"(\d+) chunks?"))  # fmt: skip
    partitions = int(re.search(r"(\d+) new chunk partitions", summary)[1])  # type: ignore[index]
    return {"seconds": seconds, "peak_mb": peak_mb(), "new": new, "unchanged": unchanged, "chunks": chunks,
            "partitions": partitions}  # fmt: skip


def phase_select() -> dict:
    """What the notebook's `select` and `counts` do (`notebook.select` is `scheduling.select` on its context)."""
    from loader_assets.operations import scheduling
    from loader_assets.operations.context import Context
    from loader_assets.selection.selection import counts as notice_counts

    ctx = Context.from_env()
    query = f"case = '{CASE}' AND level = 1"
    started = time.monotonic()
    preview = scheduling.select(ctx, query)
    first = time.monotonic() - started
    started = time.monotonic()
    counts = notice_counts(query, store=ctx.store)
    return {"seconds": first, "rows_shown": len(preview.frame), "total": int(preview.total or len(preview)),
            "counts_seconds": time.monotonic() - started, "counts": int(counts["notices"].sum()),
            "peak_mb": peak_mb()}  # fmt: skip


def phase_skymap(png: str) -> dict:
    """What `nb.plot(case)` does, saved as PNG."""
    from loader_assets.operations import notices
    from loader_assets.operations.context import Context

    ctx = Context.from_env()
    started = time.monotonic()
    notices.sky_map(ctx, CASE).savefig(png)
    return {"seconds": time.monotonic() - started, "peak_mb": peak_mb()}


PHASES = {"register": phase_register, "select": phase_select, "skymap": phase_skymap}


# -- the parent: layout, servers, the phases in order -------------------------------------------------------------


def plan_and_tick(ctx: Context, workers: int) -> list[str]:
    import dagster as dg

    from loader_assets.catalog import schedules
    from loader_assets.catalog.notices import notice_ids
    from loader_assets.defs.resources import CatalogResource, ClusterResource
    from loader_assets.defs.sensors import scheduled_loads
    from loader_assets.engine.plan import plan_runs

    lines = []
    store, cluster = ctx.store, ctx.cluster
    ids = notice_ids(store.db, CASE, level=1)
    started = time.monotonic()
    plans, _ = plan_runs(store, cluster, ids)
    seconds = time.monotonic() - started
    lines.append(figure("plan level 1", seconds, "plan_seconds", f"{len(ids):,} notices, {len(plans)} runs "
                        f"on {workers} workers (chunks placed now)"))  # fmt: skip
    started = time.monotonic()
    plan_runs(store, cluster, ids)
    lines.append(figure("plan level 1 again", time.monotonic() - started, "plan_seconds", "placement known"))

    schedule_id = schedules.add(store.db, ids)
    instance = ctx.dagster.instance  # written by the first `register`
    context = dg.build_sensor_context(instance=instance, resources={"catalog": CatalogResource(),
                                                                    "cluster": ClusterResource()})  # fmt: skip
    ticks, slowest, requests = 0, 0.0, 0
    while schedules.get(store.db, schedule_id).state == "pending" and ticks < 1000:
        started = time.monotonic()
        result = scheduled_loads(context)
        slowest = max(slowest, time.monotonic() - started)
        requests += len(result.run_requests or [])
        ticks += 1
        # What the daemon does with the requests: a run each in the instance (none starts here). The sensor counts
        # a notice submitted only once a run for it exists, so without them it would ask for the same ones again.
        for request in result.run_requests or []:
            instance.add_run(dg.DagsterRun(job_name=request.job_name, run_config=request.run_config, tags=request.tags))
    lines.append(figure("scheduled_loads slowest tick", slowest, "tick_seconds",
                        f"{ticks} ticks, {requests} run requests for one schedule of {len(ids):,} notices"))  # fmt: skip
    return lines


def event_cost(ctx: Context, count: int = 500) -> list[str]:
    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, DagsterEventType, StepMaterializationData

    instance = ctx.dagster.instance
    key = dg.AssetKey([CASE, "Object"])
    started = time.monotonic()
    for chunk in range(count):
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=str(chunk), metadata={"rows": 1}))
    single = (time.monotonic() - started) / count * 1000
    # Dagster batches a step's own output events of a partition range when DAGSTER_EVENT_BATCH_SIZE is set;
    # measured here through the same instance call, to know what the per-chunk events of a run could save.
    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = str(count)
    try:
        started = time.monotonic()
        for chunk in range(count):
            event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, job_name="",
                                 event_specific_data=StepMaterializationData(
                                     dg.AssetMaterialization(key, partition=str(count + chunk), metadata={"rows": 1})))  # fmt: skip
            instance.report_dagster_event(
                event, run_id="", batch_metadata=DagsterEventBatchMetadata("bench", chunk == count - 1)
            )
        batched = (time.monotonic() - started) / count * 1000
    finally:
        del os.environ["DAGSTER_EVENT_BATCH_SIZE"]
    return [
        f"events: {single:.1f} ms per chunk materialization ({count} reported one at a time), "
        f"{batched:.2f} ms in one batch of {count} (DAGSTER_EVENT_BATCH_SIZE)"
    ]


def backfill_runs(partitions: int) -> str:
    from loader_assets.defs.assets import CHUNKS_PER_BACKFILL_RUN

    runs = math.ceil(partitions / CHUNKS_PER_BACKFILL_RUN)
    verdict = "ok" if runs <= TARGETS["backfill_runs"] else "OVER"
    return (f"backfill of all {partitions:,} partitions of a load asset: {runs} runs "
            f"(multi_run, {CHUNKS_PER_BACKFILL_RUN} per run; target <= {TARGETS['backfill_runs']}) {verdict}")  # fmt: skip


def mark_progress(ctx: Context, done: float = 0.1, running: float = 0.01, failed: float = 0.001) -> str:
    """Level 1 of the case part-way, through the store's own transitions (nothing is loaded): the first `done`
    share of its chunks (south to north) done, the next `running` share held, `failed` of them failed."""
    import socket

    from sqlalchemy import select

    from loader_assets.catalog.schema import notices
    from loader_assets.catalog.store import Owner

    store = ctx.store
    with store.db.read() as connection:
        rows = connection.execute(
            select(notices.c.id, notices.c.chunk).where(notices.c.case == CASE, notices.c.level == 1)
            .order_by(notices.c.chunk, notices.c.id)
        ).all()  # fmt: skip
    ids = [notice for notice, _chunk in rows]
    first, second = int(len(ids) * done), int(len(ids) * (done + running))
    owner = Owner("scale-benchmark", socket.gethostname(), os.getpid())
    started = time.monotonic()
    claims = store.claim(ids[:second], owner)
    for number, claim in enumerate(claims[:first]):
        store.finish(claim.attempt_id, "failed" if number % int(1 / failed) == 0 else "done", rows=0, error="x")
    return f"marked {first:,} notices done or failed, {second - first:,} running in {time.monotonic() - started:.0f} s"


def report_ticks(ctx: Context) -> list[str]:
    """`unreported_loads` ticks until the chunks `mark_progress` made done (by a run Dagster never knew) are all
    reported, the events stored as the daemon stores them (not timed); then a tick with nothing changed."""
    instance = ctx.dagster.instance
    cursor, ticks, reported, slowest = None, 0, 0, 0.0
    while True:
        result, seconds = _report_tick(instance, cursor)
        cursor = result.cursor
        if not result.asset_events:
            break
        slowest, ticks = max(slowest, seconds), ticks + 1
        reported += len(result.asset_events)
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
    return [
        figure("unreported_loads slowest tick", slowest, "tick_seconds", f"{reported:,} chunks in {ticks} ticks"),
        figure("unreported_loads tick, all shown", seconds, "tick_seconds", "rescanned: its own reports changed it"),
        figure("unreported_loads tick, nothing changed", _report_tick(instance, cursor)[1], "tick_seconds"),
    ]


def _report_tick(instance: DagsterInstance, cursor: str | None) -> tuple[SensorResult, float]:
    import dagster as dg

    from loader_assets.defs.resources import CatalogResource
    from loader_assets.defs.sensors import unreported_loads

    context = dg.build_sensor_context(instance=instance, resources={"catalog": CatalogResource()}, cursor=cursor)
    started = time.monotonic()
    result = unreported_loads(context)
    return result, time.monotonic() - started


def figure(name: str, value: float, target: str, detail: str = "", unit: str = "s") -> str:
    goal = TARGETS[target]
    verdict = "ok" if value <= goal else "OVER"
    return f"{name}: {value:.2f} {unit} (target <= {goal:g} {unit}) {verdict}; {detail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=1)
    parser.add_argument("--catalog", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--chunks", type=int, default=None)
    parser.add_argument("--tasks", type=int, default=34)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--layout", type=Path, help="reuse (or write once into) this directory")
    parser.add_argument("--skymap", type=Path, default=None, help="write the sky map PNG here")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("phase_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](*args.phase_args)))
        return

    from loader_assets.operations.context import Context
    from loader_assets.qserv.sample import write_empty_case
    from loader_assets.workers import local
    from loader_assets_tests.servers import postgres_database

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-")))
        layout = args.layout or tmp / "layout"
        if not (layout / "metadata.json").exists():
            started = time.monotonic()
            write_empty_case(layout, children=args.children, tasks=args.tasks, chunks=args.chunks)
            print(f"layout: {layout} written in {time.monotonic() - started:.1f} s")
        state = tmp / "state"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADER_", "DAGSTER_"))}
        env.update(LOADER_STATE_DIR=str(state), DAGSTER_HOME=str(state / "dagster"))
        if args.catalog == "postgresql":
            env["LOADER_CATALOG_URL"] = stack.enter_context(postgres_database("loader_scale"))
            env["LOADER_DAGSTER_PG_URL"] = stack.enter_context(postgres_database("loader_scale"))
        config = local.start_cluster(state, args.workers)
        stack.callback(local.stop_cluster, state)
        env["LOADER_CZAR"] = config.czar_url
        env["LOADER_WORKERS"] = ",".join(f"{name}={url}" for name, url in config.workers.items())
        os.environ.update(env)

        first = in_child("register", env, str(layout))
        notices = first["new"]
        timed = "register" if args.children == 1 else "register (the 60 s target is the one-child case's)"
        print(figure(timed, first["seconds"], "register_seconds",
                     f"{notices:,} notices ({notices / first['seconds']:,.0f}/s), {first['chunks']:,} chunks, "
                     f"{first['partitions']:,} Dagster partitions, {args.catalog}"))  # fmt: skip
        print(figure("register peak memory", first["peak_mb"], "register_peak_mb", "", "MB"))
        again = in_child("register", env, str(layout))
        print(figure("register again", again["seconds"], "register_seconds",
                     f"{again['new']} new, {again['unchanged']:,} unchanged, {again['partitions']} partitions"))  # fmt: skip
        ctx = Context.from_env()
        stack.callback(ctx.close)
        for line in plan_and_tick(ctx, args.workers):
            print(line)
        shown = in_child("select", env)
        print(f"select level 1: preview of {shown['rows_shown']:,} of {shown['total']:,} notices in "
              f"{shown['seconds']:.2f} s, counts in {shown['counts_seconds']:.2f} s, peak {shown['peak_mb']:.0f} MB")  # fmt: skip
        for line in event_cost(ctx):
            print(line)
        print(backfill_runs(first["chunks"]))
        print(mark_progress(ctx))
        for line in report_ticks(ctx):
            print(line)
        png = args.skymap or tmp / "skymap.png"
        drawn = in_child("skymap", env, str(png))
        print(figure("sky map", drawn["seconds"], "skymap_seconds",
                     f"{first['chunks']:,} chunks, peak {drawn['peak_mb']:.0f} MB, {png}"))  # fmt: skip


if __name__ == "__main__":
    main()
