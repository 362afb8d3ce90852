"""`LOADER_EXECUTOR=multiprocess`: one run's loads past one GIL, a step per MariaDB worker in a process of its own,
exactly as in process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loader_assets import levels
from loader_assets.catalog.views import history
from loader_assets.problems import Exit
from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.recovery.helpers import assert_exact, big_notice, level_notices, rows_arriving, wait_for
from loader_assets_tests.test_operator_faults import loader_assets, nothing_held_nor_counted, one_line, started

pytestmark = [pytest.mark.servers, pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)]


def test_a_load_with_a_process_per_worker_ends_exact_each_worker_loaded_by_its_own(
    platform: Platform, cluster_state: Path
) -> None:
    case = platform.sample_case(chunks=4, rows_per_chunk=20).case
    load = started("load", case, LOADER_EXECUTOR="multiprocess")
    try:
        _, stderr = load.communicate(timeout=300)
    finally:
        load.kill()
    assert load.returncode == 0 and not stderr.strip(), stderr  # the step processes' own lines kept off it
    for level in (levels.LOAD_DIRECTOR, levels.LOAD_CHILDREN):
        assert_exact(platform, case, level)
    loaders: dict[str, set[int]] = {}
    for notice in level_notices(platform, case, levels.LOAD_DIRECTOR):
        attempt = history(platform.store.db, notice.id).iloc[-1]
        loaders.setdefault(attempt["worker"], set()).add(int(attempt["pid"]))
    chunked = {worker: pids for worker, pids in loaders.items() if worker != "all"}
    assert sorted(chunked) == ["worker1", "worker2"] and all(len(pids) == 1 for pids in chunked.values()), loaders
    pids = [pid for pids in loaders.values() for pid in pids]
    assert load.pid not in pids and len(set(pids)) == len(pids), "each share in a process of its own"
    assert not [pid for pid in pids if running(pid)], "every step process ended with the load"


def test_a_terminals_ctrl_c_reaching_every_step_process_ends_the_load_its_notices_given_back(
    platform: Platform, cluster_state: Path
) -> None:
    """Ctrl-C signals the whole foreground group: each step process hears it twice (from the terminal, then
    forwarded by `load`), and gives back what it holds once."""
    case = platform.sample_case(chunks=4, rows_per_chunk=5).case
    notice_id = big_notice(platform, case)
    load = subprocess.Popen([sys.executable, "-m", "loader_assets.cli", "load", case, "--level", "1"], cwd=REPOSITORY,
                            env={**os.environ, "LOADER_EXECUTOR": "multiprocess"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: rows_arriving(platform, cluster_state, case, notice_id), "a LOAD DATA half-way")
        os.killpg(load.pid, signal.SIGINT)
        _, stderr = load.communicate(timeout=60)
    finally:
        load.kill()
    assert load.returncode == Exit.INTERRUPTED, stderr
    one_line(stderr, "interrupted by SIGINT", "its notices were given back")
    nothing_held_nor_counted(platform, case)
    assert loader_assets("load", case, "--level", "1", LOADER_EXECUTOR="multiprocess").returncode == 0
    assert_exact(platform, case, 1)


def running(pid: int) -> bool:
    """Alive, not a zombie waiting to be reaped (its command line empty)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False
