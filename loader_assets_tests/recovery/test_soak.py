"""The soak of `benchmarks/soak.py`, short: a few random faults over a small case on PostgreSQL with the daemon,
then everything finishes and every table on the workers holds exactly the rows of its files."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.recovery.helpers import ON_POSTGRESQL

pytestmark = ON_POSTGRESQL
LEASE = 4.0
SENSOR_INTERVAL = 2.0
FAULTS = 5  # every kind once: each round of five draws holds each kind once


def _soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", REPOSITORY / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


soak = _soak_module()


@pytest.fixture
def soak_case(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> str:
    """A case of 12 chunks (48 notices, 2000 objects each), registered before the daemon starts (so it has the case's gates
    sensor), with the soak's short leases and sensor intervals in the environment the daemon inherits."""
    for name, value in soak.soak_environment(LEASE, SENSOR_INTERVAL).items():
        monkeypatch.setenv(name, value)
    return platform.sample_case(chunks=12, rows_per_chunk=2000, seed=11).case


def test_a_short_soak_of_random_faults_ends_exact(
    soak_case: str, dagster_daemon: subprocess.Popen, platform: Platform, cluster_state: Path
) -> None:
    logs = platform.root / "soak-logs"
    logs.mkdir()
    target = soak.Platform(soak_case, platform.store, platform.instance, platform.cluster, cluster_state, logs,
                           dagster_daemon.pid, LEASE, SENSOR_INTERVAL)  # fmt: skip
    lines: list[str] = []
    result = soak.Soak(target, faults=FAULTS, seed=7, timeout=400, children_share=0, out=lines.append).run()
    report = "\n".join(lines + result.lines())
    print(report)  # shown with -s, or -rP
    assert result.exact, report
    assert len(result.injected) == FAULTS, report
    assert {fault.kind for fault in result.injected} == set(soak.FAULT_KINDS), report
    assert result.survived == result.injected, report
    assert all(files == workers for files, workers in result.tables.values()), report
