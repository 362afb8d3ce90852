"""`loader-assets load` meeting bad days, as an operator meets them, the CLI in its own process: a stopped worker
(before and during the load), a stopped czar, an unreachable catalog, a wrong password, SIGTERM and SIGINT (also
to a load whose steps run in processes of their own, `LOADER_EXECUTOR=multiprocess`). Each
ends with one line naming the server (or the signal), its documented exit code and no traceback; nothing is held
afterwards, nothing counted against a notice, and the next load ends exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loader_assets.problems import Exit
from loader_assets.workers import local
from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.recovery.helpers import assert_exact, big_notice, level_notices, rows_arriving, wait_for
from loader_assets_tests.test_cli import dead_address

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def loader_assets(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`loader-assets ARGS` in its own process, with the test's environment plus `env`."""
    return subprocess.run([sys.executable, "-m", "loader_assets.cli", *args], cwd=REPOSITORY,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)  # fmt: skip


def started(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "loader_assets.cli", *args], cwd=REPOSITORY,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def one_line(stderr: str, *words: str, command: str = "load") -> None:
    """stderr is one line, `loader-assets COMMAND: <cause>; <fix>`, naming `words`, no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith(f"loader-assets {command}: ") and "; " in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def nothing_held_nor_counted(platform: Platform, case: str) -> None:
    notices = level_notices(platform, case, 1)
    assert not [n for n in notices if n.status == "running" or n.locked_by], "every notice given back"
    assert {n.status for n in notices} <= {"ready", "done"}, "a server down or a signal fails no notice"


def test_a_stopped_worker_czar_an_unreachable_catalog_and_a_wrong_password_each_say_which_and_what_to_do(
    platform: Platform, cluster_state: Path
) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    port2 = platform.cluster.worker("worker2").address.port
    local.stop_server(cluster_state, "worker2")
    try:
        worker_down = loader_assets("load", case)
    finally:
        local.start_server(cluster_state, "worker2")
    assert worker_down.returncode == Exit.WORKER_DOWN, worker_down.stderr
    one_line(worker_down.stderr, f"worker worker2 (127.0.0.1:{port2}) does not answer", "LOADER_WORKERS")

    local.stop_server(cluster_state, "czar")
    try:
        czar_down = loader_assets("load", case)
    finally:
        local.start_server(cluster_state, "czar")
    assert czar_down.returncode == Exit.CZAR_DOWN, czar_down.stderr
    one_line(czar_down.stderr, "the czar (127.0.0.1:", "does not answer", "LOADER_CZAR")

    catalog = loader_assets("load", case, LOADER_CATALOG_URL=dead_address().replace("mysql+pymysql", "postgresql"))
    assert catalog.returncode == Exit.CATALOG_DOWN, catalog.stderr
    one_line(catalog.stderr, "the catalog at postgresql", "cannot be used", "LOADER_CATALOG_URL")

    password = loader_assets("load", case, LOADER_WORKER_PASSWORD="not-the-password")
    assert password.returncode == Exit.CZAR_DOWN, password.stderr
    one_line(password.stderr, "the czar (127.0.0.1:", "refused the login of root", "LOADER_WORKER_PASSWORD")
    nothing_held_nor_counted(platform, case)

    assert loader_assets("load", case).returncode == 0
    assert_exact(platform, case, 1)


def test_a_worker_stopped_mid_load_ends_it_naming_the_worker_and_the_next_load_is_exact(
    platform: Platform, cluster_state: Path
) -> None:
    case = platform.sample_case(chunks=4, rows_per_chunk=5).case
    notice_id = big_notice(platform, case)
    load = started("load", case, "--level", "1", LOADER_WORKER_WRITE_TIMEOUT="5")
    try:
        worker, _attempt = wait_for(lambda: rows_arriving(platform, cluster_state, case, notice_id), "rows arriving")
        local.stop_server(cluster_state, worker)
        _, stderr = load.communicate(timeout=120)
    finally:
        load.kill()
        local.start_server(cluster_state, worker)
    assert load.returncode == Exit.WORKER_DOWN, stderr
    one_line(stderr, f"worker {worker} (127.0.0.1:", "LOADER_WORKERS")
    nothing_held_nor_counted(platform, case)

    assert loader_assets("load", case, "--level", "1").returncode == 0
    assert_exact(platform, case, 1)


def interrupted_command(platform: Platform, case: str, command: str) -> tuple[list[str], tuple[int, ...]]:
    """`command`'s arguments for `case`, and the levels it loads."""
    if command == "register":  # `register --load`: the whole case, in the process that registered it
        return ["register", str(platform.root / "cases" / case), "--case", case, "--load"], (1, 3)
    return ["load", case, "--level", "1"], (1,)


@pytest.mark.parametrize(
    ("signum", "code", "executor", "command"),
    [(signal.SIGTERM, Exit.TERMINATED, "in_process", "load"), (signal.SIGINT, Exit.INTERRUPTED, "in_process", "load"),
     (signal.SIGTERM, Exit.TERMINATED, "multiprocess", "load"), (signal.SIGTERM, Exit.TERMINATED, "in_process", "register")],
)  # fmt: skip
def test_a_signal_ends_load_in_seconds_its_notices_given_back(
    platform: Platform, cluster_state: Path, signum: int, code: int, executor: str, command: str
) -> None:
    case = platform.sample_case(chunks=4, rows_per_chunk=5).case
    notice_id = big_notice(platform, case)
    argv, loaded_levels = interrupted_command(platform, case, command)
    load = started(*argv, LOADER_EXECUTOR=executor)
    try:
        wait_for(lambda: rows_arriving(platform, cluster_state, case, notice_id), "a LOAD DATA half-way")
        load.send_signal(signum)
        _, stderr = load.communicate(timeout=30)  # its LOAD DATA is killed on the worker: seconds, not the file's
    finally:
        load.kill()
    assert load.returncode == code, stderr
    one_line(stderr, f"interrupted by {signal.Signals(signum).name}", "its notices were given back", command=command)
    nothing_held_nor_counted(platform, case)
    [big] = [n for n in level_notices(platform, case, 1) if n.id == notice_id]
    assert big.status == "ready" and f"interrupted by {signal.Signals(signum).name}" in (big.error or "")

    assert loader_assets(*argv).returncode == 0
    for level in loaded_levels:
        assert_exact(platform, case, level)


def test_a_signal_ends_schedule_watch_in_seconds_leaving_the_schedule_to_its_runs(platform: Platform) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=2).case
    # No daemon: the notices stay ready, so the watch would go on for ever.
    watch = started("schedule", f"case = '{case}'", "--no-daemon", "--watch")
    try:
        assert watch.stdout is not None and watch.stdout.readline().startswith("schedule "), "scheduled"
        assert watch.stdout.readline().strip(), "watching: its first progress line"
        watch.send_signal(signal.SIGTERM)
        _, stderr = watch.communicate(timeout=30)
    finally:
        watch.kill()
    assert watch.returncode == Exit.TERMINATED, stderr
    [line] = [line for line in stderr.splitlines() if line.strip()]
    assert line.startswith("loader-assets schedule: interrupted by SIGTERM") and "its runs go on" in line, line
    listed = loader_assets("schedule", "list")
    assert listed.returncode == 0 and "pending" in listed.stdout, "the schedule stays, for the daemon to serve"
