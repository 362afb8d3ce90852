"""Faults an unattended load meets, each reproduced for real, each ending exact without a person — or, where a
person must act (free a disk), with one line saying so: a case dropped and registered again, a worker's disk
filling during a load, a load killed whose notices the next load needs (its holder dead on this host)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pymysql
import pytest

from loader_assets.catalog.notices import notice_ids
from loader_assets.defs.chunk_partitions import chunk_partitions
from loader_assets.engine.plan import plan_runs
from loader_assets.operations import cases
from loader_assets.operations.cases import known_case
from loader_assets.problems import Exit, InstanceDown
from loader_assets.qserv.sample import write_sample_case
from loader_assets.workers.local import LocalServer
from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.recovery.helpers import (
    assert_exact,
    attempt_rows,
    big_notice,
    fill,
    level_notices,
    outcomes,
    rows_arriving,
    tmpfs,
    wait_for,
)
from loader_assets_tests.servers import admin_sql

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def loader_assets(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loader_assets.cli", *args], cwd=REPOSITORY,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)  # fmt: skip


def started(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "loader_assets.cli", *args], cwd=REPOSITORY,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_case_dropped_and_registered_again_loads_exact(platform: Platform) -> None:
    """The director index kept a version per chunk made of attempt ids; SQLite hands the same ids out again once
    the case's rows are gone, so a stale index passed for fresh and level 2 failed for ever."""
    root = write_sample_case(platform.root / "again", chunks=2, rows_per_chunk=500, database="again")
    for attempt in ("first", "second"):
        assert loader_assets("register", str(root)).returncode == 0
        loaded = loader_assets("load", "again")
        assert loaded.returncode == 0, f"{attempt} load: {loaded.stderr}"
        assert_exact(platform, "again", 1) and assert_exact(platform, "again", 3)
        if attempt == "first":
            assert loader_assets("drop", "again", "--force").returncode == 0


def test_a_drop_cut_short_by_the_instance_is_run_again_to_finish(
    instance_on_postgresql: str, platform: Platform
) -> None:
    """The instance's server refuses connections just before the case's partitions go: the drop ends naming the
    instance, the case still known (its rows go last) and being dropped (no `resume` or `load` of what is half
    gone), and the same drop run again finishes it."""
    case = platform.sample_case(chunks=3, rows_per_chunk=5).case
    database = instance_on_postgresql.rsplit("/", 1)[1]

    def refuse(allowed: bool) -> None:
        admin_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:  # its kept connections go too
            admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db", {"db": database})

    def instance_down_after_czar(line: str) -> None:
        if line.startswith("czar:"):
            refuse(allowed=False)

    try:
        with pytest.raises(InstanceDown, match="the Dagster instance's storage"):
            cases.drop(platform.ctx, case, force=True, log=instance_down_after_czar)
    finally:
        refuse(allowed=True)
    assert known_case(platform.ctx, case).state == "dropping"
    for refused in (loader_assets("load", case), loader_assets("resume", case)):
        assert refused.returncode == Exit.CASE_PAUSED, refused.stderr
        assert (
            f"a drop under way or cut short): nothing is claimed; once no drop runs, `loader-assets drop {case} --force` finishes"
            in refused.stderr
        )
    registered = loader_assets("register", str(platform.root / "cases" / case))
    assert (
        registered.returncode == Exit.USAGE and f"`loader-assets drop {case} --force` finishes it" in registered.stderr
    )
    finished = loader_assets("drop", case, "--force")
    assert finished.returncode == 0, finished.stderr
    assert "Dagster: 3 chunk partitions removed" in finished.stdout
    assert loader_assets("status", "--case", case).returncode == Exit.UNKNOWN
    assert platform.instance.get_dynamic_partitions(chunk_partitions(case).name) == []


@pytest.fixture
def small_disk(platform: Platform, cluster_state: Path):  # type: ignore[no-untyped-def]
    """A case whose database directory on worker2 is a tmpfs of its own (the worker's disk, as far as the case
    sees it); unmounted afterwards."""
    case = platform.sample_case(chunks=4, rows_per_chunk=5).case
    mount = LocalServer(cluster_state, "worker2").datadir / case
    mount.mkdir()
    with tmpfs(mount, "64m"):
        try:
            yield case, mount
        finally:
            with platform.cluster.worker("worker2").connect() as conn, conn.cursor() as cursor:
                with suppress(pymysql.err.OperationalError):  # its files go; its directory, a mount point, stays
                    cursor.execute(f"DROP DATABASE IF EXISTS `{case}`")
                cursor.execute("FLUSH TABLES")
    mount.rmdir()


def test_a_worker_disk_filling_during_a_load_ends_it_naming_the_worker_and_its_disk(
    platform: Platform, cluster_state: Path, small_disk: tuple[str, Path]
) -> None:
    case, mount = small_disk
    plans, _ = plan_runs(platform.store, platform.cluster, notice_ids(platform.store.db, case, level=1))
    [on_worker2] = [plan for plan in plans if plan.worker == "worker2"]
    notice_id = big_notice(platform, case, rows=300_000, among=on_worker2.notice_ids)
    load = started("load", case, "--level", "1", LOADER_STALL_SECONDS="3")
    try:
        wait_for(lambda: rows_arriving(platform, cluster_state, case, notice_id), "rows arriving on worker2")
        filler = fill(mount)
        _, stderr = load.communicate(timeout=3 + 60)
    finally:
        load.kill()
    assert load.returncode == Exit.WORKER_DOWN, stderr
    [line] = [line for line in stderr.splitlines() if line.strip()]
    assert line.startswith("loader-assets load: worker worker2 (127.0.0.1:"), line
    # The LOAD DATA waiting for space is diagnosed as a stall, or another statement is refused the space first.
    stalled = "stalled" in line and "Waiting for someone to free space" in line and f"{mount}: 0.0 MB free" in line
    assert stalled or ("is out of disk space" in line and "No space left on device" in line), line
    assert line.endswith("free space on worker2's disk, then load again"), line
    [big] = [n for n in level_notices(platform, case, 1) if n.id == notice_id]
    assert big.status == "ready" and big.locked_by is None, "given back, not counted: the file is not at fault"

    filler.unlink()  # the operator frees the disk: the next load ends exact (once MariaDB writes again, < 60 s)
    again = loader_assets("load", case, "--level", "1")
    assert again.returncode == 0, again.stderr
    assert_exact(platform, case, 1)


def test_the_next_load_takes_back_at_once_what_a_killed_load_held(platform: Platform, cluster_state: Path) -> None:
    """A load SIGKILLed leaves its notices `running` under a lease of 5 minutes; its process is dead on this host,
    so the next load takes them back at once instead of waiting the lease out."""
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    notice_id = big_notice(platform, case)
    killed = started("load", case, "--level", "1", LOADER_LEASE_SECONDS="300")
    try:
        wait_for(lambda: rows_arriving(platform, cluster_state, case, notice_id), "a LOAD DATA half-way")
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert any(n.status == "running" for n in level_notices(platform, case, 1)), "held by a dead process"

    again = loader_assets("load", case, "--level", "1", LOADER_LEASE_SECONDS="300", timeout=120)
    assert again.returncode == 0, again.stderr
    assert "waiting for" not in again.stdout, "nothing waited for a dead holder"
    assert_exact(platform, case, 1)
    [lost, done] = [a for a in attempt_rows(platform, [notice_id])]
    assert (lost.outcome, done.outcome) == ("lost", "done") and f"process {killed.pid}" in (lost.error or "")
    assert outcomes(platform, [notice_id])[notice_id] == ["lost", "done"]
