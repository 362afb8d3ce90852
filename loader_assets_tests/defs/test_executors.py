"""`LOADER_EXECUTOR=multiprocess`: one run's loads past one GIL, a step per MariaDB worker in a process of its own,
exactly as in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from loader_assets import levels
from loader_assets.catalog.views import history
from loader_assets.defs.executors import descendants
from loader_assets_tests.conftest import Platform
from loader_assets_tests.recovery.helpers import assert_exact, level_notices
from loader_assets_tests.test_operator_faults import started

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
    assert not [pid for pid in descendants(load.pid) if Path(f"/proc/{pid}/cmdline").read_bytes()], "none left"
