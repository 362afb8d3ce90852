"""Runs on Celery: RabbitMQ, two Celery worker processes, the Dagster instance and the catalog on PostgreSQL.

A run of `loader-assets load` fans out into a step per MariaDB worker; each Celery worker takes one. One Celery
worker is killed in its step: the broker hands the step to the other (`task_acks_late`), which takes back the
notices the dead process held (its pid is dead on this host) and loads them; loading the case again ends exact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import dagster as dg
import psutil
import pytest
from celery import Celery
from sqlalchemy import select

from loader_assets import levels
from loader_assets.catalog.gates import gate
from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.schema import attempts, notices
from loader_assets.operations import cases
from loader_assets.operations.context import Context
from loader_assets.problems import Exit
from loader_assets.workers.cluster import ClusterConfig
from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.recovery.helpers import (
    assert_exact,
    level_notices,
    load_runs,
    outcomes,
    reaped,
    wait_for,
    writes_blocked,
)
from loader_assets_tests.servers import postgres_database

# One broker for every test process: `make test` runs a file's tests in one process (pytest-xdist's
# `--dist loadfile`), so the tests here, which purge and consume its queue, never run at once.
CELERY_WORKERS = ("w1", "w2")
BROKER = Celery(broker="pyamqp://guest@127.0.0.1:5672//")  # the test's own view of the broker: purge, ping
EXECUTING = "Executing steps "  # dagster_celery's engine event when a Celery worker starts a step


@pytest.fixture
def celery_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster_config: ClusterConfig, postgres_url: str
) -> Iterator[Platform]:
    """Catalog and Dagster instance on PostgreSQL, LOADER_EXECUTOR=celery, an empty step queue."""
    with postgres_database() as instance_url:
        monkeypatch.setenv("LOADER_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
        monkeypatch.setenv("LOADER_CATALOG_URL", postgres_url)
        monkeypatch.setenv("LOADER_DAGSTER_PG_URL", instance_url)
        monkeypatch.setenv("LOADER_EXECUTOR", "celery")
        monkeypatch.setenv("LOADER_LEASE_SECONDS", "20")
        monkeypatch.setenv("LOADER_CZAR", cluster_config.czar_url)
        monkeypatch.setenv("LOADER_WORKERS", ",".join(f"{n}={u}" for n, u in cluster_config.workers.items()))
        ctx = Context.from_env()
        cases.init(ctx)
        BROKER.control.purge()  # steps another test left behind
        yield Platform(tmp_path, ctx)
        ctx.close()


@pytest.fixture
def celery_workers(celery_platform: Platform) -> Iterator[dict[str, subprocess.Popen]]:
    """Two `loader-assets celery-worker` processes, both answering the broker's ping."""
    with ExitStack() as stack:
        workers = {}
        for name in CELERY_WORKERS:
            log = stack.enter_context((celery_platform.root / f"celery-{name}.log").open("wb"))
            process = subprocess.Popen(
                [sys.executable, "-m", "loader_assets.cli", "celery-worker", "--name", name], cwd=REPOSITORY,
                env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            workers[name] = stack.enter_context(stopped_by_sigterm(process))

        def answering() -> bool:
            replies = {name.split("@")[0] for reply in BROKER.control.ping(timeout=1) for name in reply}
            return replies >= set(CELERY_WORKERS)

        wait_for(answering, "both Celery workers to answer", timeout=120, poll=1)
        yield workers


@contextmanager
def stopped_by_sigterm(process: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """The worker is stopped as an operator stops it (SIGTERM, passed on to its Celery process), whatever the test
    does; nothing of it is left running."""
    try:
        yield process
    finally:
        descendants = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        for child in descendants:
            with suppress(psutil.NoSuchProcess):
                child.kill()


def celery_pid(process: subprocess.Popen) -> int:
    """The `celery worker` process `loader-assets celery-worker` runs (through `dagster-celery worker start`): the
    one that executes steps."""
    found = [child for child in psutil.Process(process.pid).children(recursive=True)
             if "celery" in " ".join(child.cmdline()) and "dagster-celery" not in " ".join(child.cmdline())]  # fmt: skip
    assert len(found) == 1, [child.cmdline() for child in found]
    return found[0].pid


def held_by(platform: Platform, case: str, pid: int) -> set[int]:
    """The notices of the case a process holds now."""
    a, n = attempts.c, notices.c
    query = select(n.id).join(attempts, a.id == n.attempt_id).where(n.case == case, n.status == "running", a.pid == pid)
    with platform.store.db.read() as connection:
        return set(connection.execute(query).scalars())


def holders(platform: Platform, case: str) -> set[int]:
    """Pids writing a notice of the case into a worker now."""
    a, n = attempts.c, notices.c
    query = (
        select(a.pid).join(notices, n.id == a.notice)
        .where(n.case == case, a.outcome == "running", a.worker.is_not(None)).distinct()
    )  # fmt: skip
    with platform.store.db.read() as connection:
        return set(connection.execute(query).scalars())


def step_starts(platform: Platform, case: str) -> list[tuple[str, str]]:
    """(step key, Celery worker name) of every step a Celery worker started in the case's load runs, in order."""
    starts = []
    for run in load_runs(platform, case):
        for entry in platform.instance.all_logs(run.dagster_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = entry.dagster_event
            if event is not None and EXECUTING in (event.message or ""):
                metadata = event.engine_event_data.metadata
                starts.append((entry.step_key or "", str(metadata["Celery worker"].value).split("@")[0]))
    return starts


def cli_process(platform: Platform, name: str, *args: str) -> subprocess.Popen:
    """`loader-assets ARGS` in its own process, its output in `<name>.log`."""
    with (platform.root / f"{name}.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "loader_assets.cli", *args], cwd=REPOSITORY,
                                env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)  # fmt: skip


def test_two_celery_workers_load_a_case_exactly_once_one_of_them_killed_in_its_step(
    celery_platform: Platform, celery_workers: dict[str, subprocess.Popen]
) -> None:
    platform = celery_platform
    case = platform.sample_case(chunks=4, rows_per_chunk=200).case
    pids = {celery_pid(process): name for name, process in celery_workers.items()}

    # Both Celery workers caught in their load step (held at the first worker write), then one killed.
    with ExitStack() as stack:
        barrier = stack.enter_context(ExitStack())
        for worker in sorted(platform.cluster.workers):
            barrier.enter_context(writes_blocked(platform, worker))
        first = stack.enter_context(reaped(cli_process(platform, "load-1", "load", case, "--level", "1")))
        wait_for(lambda: holders(platform, case) >= set(pids), "both Celery workers holding notices", timeout=180)
        os.kill(next(pid for pid, name in pids.items() if name == "w1"), signal.SIGKILL)
        barrier.close()  # the locks lifted
        first.wait(timeout=300)
    log = (platform.root / "load-1.log").read_text()

    # The killed worker's step was delivered again, to the worker left.
    starts = step_starts(platform, case)
    assert {name for key, name in starts if key.startswith("load_share")} == set(CELERY_WORKERS), starts
    killed = [key for key, name in starts if name == "w1" and key.startswith("load_share")]
    assert killed and all(sum(k == key for k, _ in starts) == 2 for key in killed), starts
    assert [name for key, name in starts if key == killed[0]] == ["w1", "w2"], starts
    [run] = load_runs(platform, case)  # the retried step ended it: the run succeeded, the dead one's notices left
    assert run.dagster_run.status == dg.DagsterRunStatus.SUCCESS, log

    # The dead process's notices: taken back by the step that ran again (its pid is dead on this host).
    assert not holders(platform, case)
    # Loading again, all four levels: exact, each notice loaded once by a done attempt.
    again = cli_process(platform, "load-all", "load", case)
    assert again.wait(timeout=600) == 0, (platform.root / "load-all.log").read_text() + "\n--- first load:\n" + log
    for level in (levels.LOAD_DIRECTOR, levels.LOAD_CHILDREN):
        assert_exact(platform, case, level)
    for table in case_layouts(platform.store.db, case)[case].validated_tables():
        verdict = gate(platform.store.db, case, table.validation_level or 0, table.name)
        assert verdict is not None and verdict.status == "passed", verdict


def test_a_celery_worker_sigtermed_in_its_step_gives_its_notices_back_and_ends_in_seconds(
    celery_platform: Platform, celery_workers: dict[str, subprocess.Popen]
) -> None:
    platform = celery_platform
    case = platform.sample_case(chunks=4, rows_per_chunk=200).case
    pids = {celery_pid(process): name for name, process in celery_workers.items()}
    stopped = celery_workers["w1"]
    with ExitStack() as stack:
        barrier = stack.enter_context(ExitStack())
        for worker in sorted(platform.cluster.workers):
            barrier.enter_context(writes_blocked(platform, worker))
        load = stack.enter_context(reaped(cli_process(platform, "load-1", "load", case, "--level", "1")))
        wait_for(lambda: holders(platform, case) >= set(pids), "both Celery workers holding notices", timeout=180)
        w1_pid = next(pid for pid, name in pids.items() if name == "w1")
        given = held_by(platform, case, w1_pid)
        stopped.send_signal(signal.SIGTERM)  # as systemd or Kubernetes stops it, while its statements wait
        code = stopped.wait(timeout=60)  # its statements are abandoned, not waited for: seconds
        barrier.close()
        load.wait(timeout=300)
    said = (platform.root / "celery-w1.log").read_text()
    assert code == Exit.TERMINATED, said
    assert "loader-assets celery-worker: interrupted by SIGTERM: the Celery worker stopped" in said
    told = (platform.root / "load-1.log").read_text()
    assert "loader-assets load: the process running the step (pid " in told, told
    assert "was interrupted by SIGTERM" in told and load.returncode == Exit.TERMINATED, told
    assert "Traceback" not in said.split("worker: Warm shutdown")[-1], said
    assert given, "w1 held notices when it was stopped"
    # Each notice w1 held was given back (ready, its attempt `released`, not counted) unless it ended first.
    history = outcomes(platform, sorted(given))
    assert {events[-1] for events in history.values()} <= {"released", "done"}, history
    assert any(events[-1] == "released" for events in history.values()), history
    statuses = {n.id: n.status for n in level_notices(platform, case, 1) if n.id in given}
    assert all(statuses[i] == ("ready" if events[-1] == "released" else "done") for i, events in history.items())

    again = cli_process(platform, "load-again", "load", case, "--level", "1")
    assert again.wait(timeout=600) == 0, (platform.root / "load-again.log").read_text()
    assert_exact(platform, case, levels.LOAD_DIRECTOR)
