"""The code location as the `dagster` CLI and the UI see it: it validates, and one partition materializes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from loader_assets.catalog.schema import notices
from loader_assets_tests.conftest import REPOSITORY, Platform

DAGSTER = str(Path(sys.executable).parent / "dagster")
MODULE = "loader_assets.definitions"


def dagster_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`dagster ARGS` in the platform's environment (catalog, cluster, DAGSTER_HOME set by the fixture)."""
    return subprocess.run(
        [DAGSTER, *args], cwd=REPOSITORY, env=os.environ.copy(), capture_output=True, text=True, timeout=300
    )


def object_statuses(platform: Platform, case: str) -> dict[int | None, set[str]]:
    """Statuses of the case's Object notices by chunk (a chunk has a notice and an overlap notice)."""
    by_chunk: dict[int | None, set[str]] = {}
    with platform.store.db.read() as connection:
        for chunk, status in connection.execute(
            select(notices.c.chunk, notices.c.status).where(notices.c.case == case, notices.c.table == "Object")
        ):
            by_chunk.setdefault(chunk, set()).add(status)
    return by_chunk


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_definitions_validate_and_one_partition_materializes_once(platform: Platform) -> None:
    registration = platform.sample_case(chunks=3, rows_per_chunk=5)
    case, chunk = registration.case, sorted(registration.chunks)[1]

    validated = dagster_cli("definitions", "validate", "-m", MODULE)
    assert validated.returncode == 0, validated.stdout + validated.stderr

    materialize = ("asset", "materialize", "-m", MODULE, "--select", f"{case}/Object", "--partition", str(chunk))
    first = dagster_cli(*materialize)
    assert first.returncode == 0, first.stdout + first.stderr
    statuses = object_statuses(platform, case)
    assert statuses.pop(chunk) == {"done"}
    assert all(status == {"ready"} for status in statuses.values())
    key = dg.AssetKey([case, "Object"])
    assert platform.instance.get_materialized_partitions(key) == {str(chunk)}

    second = dagster_cli(*materialize)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already done" in second.stdout + second.stderr
    assert object_statuses(platform, case)[chunk] == {"done"}
    events = platform.instance.fetch_materializations(key, limit=10).records
    assert len(events) == 1  # the no-op logged no new materialization
