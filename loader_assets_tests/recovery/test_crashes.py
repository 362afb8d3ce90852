"""Runs that die, freeze or lose their worker (or a write to their Dagster instance) mid-load: their notices come
back, their rows go, reloads are exact, Dagster shows what they loaded."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from loader_assets.catalog.gates import gate
from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.schema import notices
from loader_assets.catalog.store import Owner, Store
from loader_assets.cli import main
from loader_assets.defs.assets import table_key
from loader_assets.defs.chunk_partitions import chunk_partitions
from loader_assets.defs.unreported import unreported
from loader_assets.engine.load import Loader
from loader_assets.engine.plan import plan_runs
from loader_assets.problems import WorkerDown
from loader_assets.workers import local
from loader_assets.workers.attempt_partitions import count_rows
from loader_assets.workers.ddl import chunk_table_name
from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.recovery.helpers import (
    BIG_ROWS,
    ON_POSTGRESQL,
    assert_exact,
    attempt_rows,
    big_notice,
    cli_load,
    level_notices,
    loads_on_workers,
    outcomes,
    reaped,
    rows_arriving,
    running_statements,
    sensor_context,
    stopped,
    sweep_now,
    wait_for,
)
from loader_assets_tests.servers import admin_sql

pytestmark = ON_POSTGRESQL
SLOW_ROWS = 1_500_000  # a LOAD DATA of 3 s or more here: well over SLOW_LEASE
LEASE = "4"
SLOW_LEASE = "1.5"  # heart-beaten every 0.375 s


def quiet(_: str) -> None:
    """Progress lines of in-process loads are not what these tests look at."""


def reload_level_1(platform: Platform, case: str) -> None:
    platform.load(case, (1,))


def test_a_killed_run_is_reclaimed_at_once_its_rows_dropped_and_the_reload_exact(
    platform: Platform, cluster_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    notice_id = big_notice(platform, case)
    database = case_layouts(platform.store.db, case)[case].database
    table = chunk_table_name("Object", next(n.chunk for n in level_notices(platform, case, 1) if n.id == notice_id))

    with reaped(cli_load(case, 1, platform.root / "killed.log")) as process:
        worker, attempt = wait_for(lambda: rows_arriving(platform, cluster_state, case, notice_id), "rows on a worker")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    url = platform.cluster.worker(worker)
    assert 0 < count_rows(url, database, table, attempt) < BIG_ROWS  # the server kept what had arrived

    said = sweep_now(platform)
    assert "took back" in said
    [lost] = [n for n in level_notices(platform, case, 1) if n.id == notice_id]
    assert (lost.status, lost.locked_by) == ("failed", None)
    assert lost.error.startswith(f"owner gone: process {process.pid}")
    assert wait_for(lambda: not running_statements(platform, database), "the aborted LOAD DATA to end")
    assert count_rows(url, database, table) == 0  # the partial partition went with the lock
    [killed_run] = {row.run_id for row in attempt_rows(platform, [notice_id])}
    assert platform.instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE

    reload_level_1(platform, case)
    assert_exact(platform, case, 1)
    assert outcomes(platform, [notice_id])[notice_id] == ["lost", "done"]
    capsys.readouterr()
    assert main(["history", str(notice_id)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "lost" in shown[1] and "owner gone" in shown[1]
    assert "done" in shown[2] and len(shown) == 3


def load_killing_itself(hook: str, case: str, level: int, log: Path) -> int:
    """`loader-assets load CASE --level N` with `hook` run first (it SIGKILLs the process where it wants to die);
    the pid of the process, killed."""
    script = f"import os, signal, sys\n{hook}\nfrom loader_assets.cli import main\nsys.exit(main())"
    command = [sys.executable, "-c", script, "load", case, "--level", str(level)]
    with reaped(subprocess.Popen(command, cwd=REPOSITORY, stdout=log.open("wb"), stderr=subprocess.STDOUT)) as process:
        assert process.wait(timeout=120) == -signal.SIGKILL, log.read_text()
    return process.pid


# `load`, killed (SIGKILL, by itself) at the first chunk of a partitioned table it reports: after the catalog's
# finish, before Dagster's event.
KILLED_BEFORE_REPORTING = (
    "from loader_assets.defs import events\n"
    "reported = events.materialization\n"
    "events.materialization = lambda items, *more: (\n"
    "    reported(items, *more) if items[0].chunk is None else os.kill(os.getpid(), signal.SIGKILL))"
)


def test_a_chunk_loaded_by_a_run_killed_before_reporting_it_is_materialized_from_the_catalog(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    load_killing_itself(KILLED_BEFORE_REPORTING, case, 1, platform.root / "killed-before-reporting.log")
    notices_ = [n for n in level_notices(platform, case, 1) if n.table == "Object"]
    loaded = sorted({n.chunk for n in notices_} - {n.chunk for n in notices_ if n.status != "done"})
    assert loaded  # streams go on while a chunk is reported: one chunk or more were loaded, none reported
    key, partitions = table_key(case, "Object"), chunk_partitions(case)
    shown = platform.instance.get_status_by_partition(key, [str(c) for c in loaded], partitions) or {}
    assert dg.AssetPartitionStatus.MATERIALIZED not in shown.values()

    # The daemon's sensor reports them (the run's process is gone on this host, though Dagster shows it started).
    ticked = platform.definitions().resolve_sensor_def("unreported_loads")(sensor_context(platform)).asset_events
    assert [(e.asset_key, e.partition) for e in ticked if e.asset_key == key] == [(key, str(c)) for c in loaded]
    # Without the daemon, the next load reports them (and Filter, if loaded and not reported yet) before it loads.
    assert main(["load", case, "--level", "1"]) == 0
    said = f"{len(ticked)} loaded chunks of {case} materialized in Dagster from the catalog"
    assert said in capsys.readouterr().out
    chunks = sorted({n.chunk for n in level_notices(platform, case, 1) if n.chunk is not None})
    shown = platform.instance.get_status_by_partition(key, [str(c) for c in chunks], partitions)
    assert shown == {str(c): dg.AssetPartitionStatus.MATERIALIZED for c in chunks}
    assert_exact(platform, case, 1)
    assert not platform.definitions().resolve_sensor_def("unreported_loads")(sensor_context(platform)).asset_events


# `load`, killed (SIGKILL, by itself) in its level-2 validation, the gate's lock taken, no check run yet.
KILLED_VALIDATING = (
    "from loader_assets.engine import validate\nvalidate._run_checks = lambda *_: os.kill(os.getpid(), signal.SIGKILL)"
)


def test_a_load_killed_while_validating_leaves_no_lock_that_stops_the_next_load(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    assert main(["load", case, "--level", "1"]) == 0
    pid = load_killing_itself(KILLED_VALIDATING, case, 2, platform.root / "killed-validating.log")
    held = gate(platform.store.db, case, 2, "Object")
    assert (held.status, held.validating_pid) == ("pending", pid)  # the dead command's lock

    # No daemon: the next load takes the lock back from the dead process and goes on to the end.
    assert main(["load", case, "--level", "2"]) == 0, capsys.readouterr().err
    assert gate(platform.store.db, case, 2, "Object").status == "passed"
    assert main(["load", case]) == 0


def test_a_worker_stopped_mid_run_gives_its_notices_back_uncounted_and_a_reload_after_restart_is_exact(
    platform: Platform, cluster_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cleanly stopping worker can leave the upload on a zero TCP window: detect it in seconds here.
    monkeypatch.setenv("LOADER_WORKER_WRITE_TIMEOUT", "5")
    case = platform.sample_case(chunks=6, rows_per_chunk=5, seed=3).case
    plans, _ = plan_runs(platform.store, platform.cluster, notice_ids(platform.store.db, case, level=1))
    [on_worker2] = [plan for plan in plans if plan.worker == "worker2"]
    notice_id = big_notice(platform, case, among=on_worker2.notice_ids)

    def stop_worker2_once_rows_arrive() -> None:
        wait_for(lambda: rows_arriving(platform, cluster_state, case, notice_id), "rows on worker2")
        local.stop_server(cluster_state, "worker2")

    stopper = threading.Thread(target=stop_worker2_once_rows_arrive)
    stopper.start()
    try:
        outcome = platform.run_plan(on_worker2)
        stopper.join()
        assert isinstance(outcome.problem, WorkerDown) and outcome.problem.server == "worker2", outcome.problem
        assert not platform.succeeded(outcome.run_id)
        mine = [n for n in level_notices(platform, case, 1) if n.id in on_worker2.notice_ids]
        assert all(n.status in ("done", "ready") and n.locked_by is None for n in mine)
        given_back = [n for n in mine if n.status == "ready"]
        assert notice_id in {n.id for n in given_back}
        assert all("worker worker2" in n.error for n in given_back), [n.error for n in given_back]
        with platform.store.db.read() as connection:
            counted = connection.execute(
                select(notices.c.attempts).where(notices.c.id.in_([n.id for n in given_back]))
            ).scalars()
            assert set(counted) == {0}, "a worker down is not the file's fault: the attempt is not counted"
    finally:
        stopper.join()
        local.start_server(cluster_state, "worker2")

    reload_level_1(platform, case)
    assert_exact(platform, case, 1)
    assert outcomes(platform, [notice_id])[notice_id] == ["released", "done"]


def test_a_run_frozen_beyond_its_lease_is_swept_reloaded_and_writes_nothing_once_resumed(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOADER_LEASE_SECONDS", LEASE)
    case = platform.sample_case(chunks=20, rows_per_chunk=5, seed=5).case
    database = case_layouts(platform.store.db, case)[case].database
    level_1 = [n.id for n in level_notices(platform, case, 1)]

    # The hooked CLI stops itself as its sixth notice starts, nothing in flight: five done, the rest held.
    with reaped(cli_load(case, 1, platform.root / "frozen.log", "loader_assets_tests.recovery.frozen_load")) as process:
        wait_for(lambda: stopped(process), "the load to stop itself")
        assert not running_statements(platform, database)
        statuses = {n.id: n.status for n in level_notices(platform, case, 1)}
        assert list(statuses.values()).count("done") == 5
        frozen = {i for i, status in statuses.items() if status == "running"}
        assert len(frozen) == len(level_1) - 5

        def swept() -> list:  # type: ignore[type-arg]
            return [n for n in level_notices(platform, case, 1) if n.id in frozen and n.status == "failed"]

        wait_for(lambda: sweep_now(platform) and len(swept()) == len(frozen), "the sweep", 30, 0.5)
        assert all(n.error.startswith("stale: lease of run") for n in swept())
        reload_level_1(platform, case)
        assert_exact(platform, case, 1)

        before = loads_on_workers(platform.cluster)
        process.send_signal(signal.SIGCONT)
        assert process.wait(timeout=60) is not None
    assert loads_on_workers(platform.cluster) == before  # resumed, the run beat before loading: it loaded nothing
    assert_exact(platform, case, 1)
    history = outcomes(platform, level_1)
    assert all(history[i][-1] == "done" and history[i].count("done") == 1 for i in level_1)
    assert all(history[i] == ["lost", "done"] for i in frozen)
    # Resumed, the run beat before writing, found its notices taken over, and said so.
    assert f"{len(frozen)} of this load's notices were taken over" in (platform.root / "frozen.log").read_text()


def test_a_slow_run_that_keeps_beating_is_never_swept(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADER_LEASE_SECONDS", SLOW_LEASE)
    case = platform.sample_case(chunks=1, rows_per_chunk=5, seed=9).case
    notice_id = big_notice(platform, case, SLOW_ROWS)
    ids = notice_ids(platform.store.db, case, level=1)
    sweeps: list[str] = []
    stop = threading.Event()

    def sweep_every_half_second() -> None:
        while not stop.wait(0.5):
            sweeps.append(sweep_now(platform))

    sweeper = threading.Thread(target=sweep_every_half_second)
    sweeper.start()
    try:
        report = Loader(Store.from_url(platform.store.db.url, lease_seconds=float(SLOW_LEASE)), platform.cluster).load(
            ids, Owner.current("slow")
        )
    finally:
        stop.set()
        sweeper.join()
    assert not report.failed and not report.lost
    [attempt] = attempt_rows(platform, [notice_id])
    assert (attempt.finished_at - attempt.started_at).total_seconds() > float(SLOW_LEASE)
    assert len(sweeps) >= 2 * float(SLOW_LEASE) and set(sweeps) == {"no stale lock; workers match the catalog"}
    assert_exact(platform, case, 1)


@pytest.mark.parametrize("table", ["Object", "Filter"])  # a chunk's event; a regular table's (one stream of its own)
def test_an_event_the_instance_fails_to_write_is_logged_again_and_the_load_goes_on(
    instance_on_postgresql: str, platform: Platform, table: str
) -> None:
    """The instance's server drops the connection of the table's first materialization as its asset's row is
    written, after the event is stored (a restart under the run: Dagster raises). The load goes on and logs it
    again: Dagster shows every table and chunk, the run a success, nothing left to report from the catalog."""
    case = platform.sample_case(chunks=6, rows_per_chunk=5).case
    dropped: list[int] = []

    def drop_first(connection, _cursor, statement: str, parameters, *_: object) -> None:  # type: ignore[no-untyped-def]
        if dropped or not statement.startswith("INSERT INTO asset_keys (asset_key, last_materialization,"):
            return
        if parameters.get("asset_key") != json.dumps([case, table]):
            return
        dropped.append(connection.connection.dbapi_connection.get_backend_pid())
        admin_sql("SELECT pg_terminate_backend(:pid, 5000)", {"pid": dropped[0]})  # waits for it to end

    event.listen(Engine, "before_cursor_execute", drop_first)
    try:
        [result] = platform.load(case, (1,))
    finally:
        event.remove(Engine, "before_cursor_execute", drop_first)
    assert dropped and result.runs == 1
    assert [r.dagster_run.status for r in platform.instance.get_run_records()] == [dg.DagsterRunStatus.SUCCESS]
    assert platform.instance.get_latest_materialization_event(table_key(case, "Filter")) is not None
    partitions = chunk_partitions(case)
    chunks = platform.instance.get_dynamic_partitions(partitions.name)
    shown = platform.instance.get_status_by_partition(table_key(case, "Object"), chunks, partitions) or {}
    assert set(shown.values()) == {dg.AssetPartitionStatus.MATERIALIZED} and len(shown) == len(chunks)
    assert unreported(platform.instance, platform.store, case, 100).events == []
