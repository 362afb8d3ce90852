"""Where the daemon is the point: a CLI load racing queued runs, and the run queue's priority and per-worker limit."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from itertools import pairwise

import dagster as dg
import pytest
import yaml

from loader_assets.catalog.layout import case_layouts
from loader_assets.cli import main
from loader_assets.defs.instance import config_path, instance_config
from loader_assets.settings import Settings
from loader_assets_tests.conftest import Platform
from loader_assets_tests.recovery.helpers import (
    ON_POSTGRESQL,
    assert_exact,
    attempt_rows,
    level_notices,
    load_runs,
    outcomes,
    wait_for,
    writes_blocked,
)

pytestmark = ON_POSTGRESQL
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
RUNS_AT_ONCE = 3  # more than workers x runs per worker: the per-worker limit is what holds runs back


def schedule(capsys: pytest.CaptureFixture[str], query: str, priority: int = 0) -> None:
    """`loader-assets schedule`: the daemon's scheduler sensor turns it into queued runs."""
    capsys.readouterr()
    assert main(["schedule", query, "--priority", str(priority)]) == 0, capsys.readouterr().err


def all_finished(platform: Platform, case: str, runs: int) -> list[dg.RunRecord] | None:
    records = load_runs(platform, case)
    return records if len(records) == runs and all(r.dagster_run.status in FINISHED for r in records) else None


@pytest.fixture
def one_queued_run_at_a_time(platform: Platform) -> None:
    """Before the daemon starts: one queued run at a time, so while the first holds one worker's notices the
    other worker's stay free for the CLI load — the race happens on every run, not by luck of timing."""
    config = instance_config(platform.ctx.settings)
    config["concurrency"]["runs"]["max_concurrent_runs"] = 1
    config_path(platform.ctx.settings).write_text(yaml.safe_dump(config, sort_keys=False))


def test_a_cli_load_racing_a_scheduled_load_of_the_same_1000_notices_loads_each_once(
    platform: Platform, one_queued_run_at_a_time: None, dagster_daemon, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    case = platform.sample_case(chunks=500, rows_per_chunk=2).case
    level_1 = [n.id for n in level_notices(platform, case, 1)]
    assert len(level_1) >= 1000

    schedule(capsys, f"case = '{case}' AND level = 1")
    # Start the CLI load once a queued run holds notices: both sides then claim from the same notices.
    held = lambda: any(n.status == "running" and is_chunk_notice(n) for n in level_notices(platform, case, 1))  # noqa: E731
    wait_for(held, "a queued run's claim of chunk notices", 180)
    [result] = platform.load(case, (1,))

    queued = wait_for(lambda: _scheduled_runs_finished(platform, case), "the scheduled runs to end", 180, 1)
    assert all(outcome == ["done"] for outcome in outcomes(platform, level_1).values())  # one attempt each, done
    assert_exact(platform, case, 1)

    queued_ids = {r.dagster_run.run_id for r in queued}
    assert result.skipped, "the CLI load claimed everything: no race happened"
    holders = {m.group(1) for reason in result.skipped.values() if (m := re.search(r"by run (\S+)", reason))}
    assert holders and holders <= queued_ids
    attempts = attempt_rows(platform, level_1)
    in_process = _window([a for a in attempts if a.run_id not in queued_ids])
    by_daemon = _window([a for a in attempts if a.run_id in queued_ids])
    assert max(in_process[0], by_daemon[0]) < min(in_process[1], by_daemon[1])  # both loaded, at the same time


def _scheduled_runs_finished(platform: Platform, case: str) -> list[dg.RunRecord] | None:
    scheduled = [r for r in load_runs(platform, case) if "loader/schedule" in r.dagster_run.tags]
    return scheduled if scheduled and all(r.dagster_run.status in FINISHED for r in scheduled) else None


def _window(attempts: list) -> tuple[datetime, datetime]:  # type: ignore[type-arg]
    """(first claim, last finish) of some attempts: when their runs held notices."""
    assert attempts, "one side of the race loaded nothing"
    return min(a.started_at for a in attempts), max(a.finished_at for a in attempts)


@pytest.fixture
def one_run_per_worker(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instance yaml rewritten before the daemon starts: K = 1 run per worker, RUNS_AT_ONCE in all."""
    monkeypatch.setenv("LOADER_RUNS_PER_WORKER", "1")
    config = instance_config(Settings.from_env())
    config["concurrency"]["runs"]["max_concurrent_runs"] = RUNS_AT_ONCE
    config_path(platform.ctx.settings).write_text(yaml.safe_dump(config, sort_keys=False))


CHUNKS_ONLY = "table = 'Object' AND NOT overlap"  # no overlaps: Object stays unfinished, no validation run joins


def is_chunk_notice(notice) -> bool:  # type: ignore[no-untyped-def]
    return notice.table == "Object" and not notice.overlap


def chunk_notices(platform: Platform, case: str) -> list:  # type: ignore[type-arg]
    return [n for n in level_notices(platform, case, 1) if is_chunk_notice(n)]


def test_queued_runs_start_by_priority_one_per_worker_and_two_cases_loading_at_once_stay_exact(
    platform: Platform, one_run_per_worker: None, dagster_daemon, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    first, low, high = (platform.sample_case(chunks=4, rows_per_chunk=5, seed=s).case for s in (21, 22, 23))

    def runs_in(case: str, *statuses: dg.DagsterRunStatus) -> bool:
        records = load_runs(platform, case)
        return len(records) == 2 and all(r.dagster_run.status in statuses for r in records)

    def status_of(case: str, worker: str) -> set[str]:
        placement = platform.cluster.placement(case_layouts(platform.store.db, case)[case].database)
        return {n.status for n in chunk_notices(platform, case) if placement[n.chunk] == worker}

    with writes_blocked(platform, "worker1") as lift_worker1, writes_blocked(platform, "worker2") as lift_worker2:
        schedule(capsys, f"case = '{first}' AND {CHUNKS_ONLY}", priority=1)
        wait_for(lambda: runs_in(first, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED),
                 "both runs of the first case to leave the queue", 120, 0.5)  # fmt: skip
        schedule(capsys, f"case = '{low}' AND {CHUNKS_ONLY}", priority=5)
        wait_for(lambda: runs_in(low, dg.DagsterRunStatus.QUEUED), "the low-priority runs queued", 60, 0.5)
        schedule(capsys, f"case = '{high}' AND {CHUNKS_ONLY}", priority=10)
        wait_for(lambda: runs_in(high, dg.DagsterRunStatus.QUEUED), "the high-priority runs queued", 60, 0.5)

        wait_for(lambda: status_of(first, "worker1") | status_of(first, "worker2") == {"running"}, "first claims")
        lift_worker1()
        wait_for(lambda: status_of(high, "worker1") == {"done"}, "the high case on worker1", 120, 0.5)
        assert status_of(first, "worker2") == {"running"}  # the first case is still loading meanwhile
        lift_worker2()

    records = {case: wait_for(lambda c=case: all_finished(platform, c, 2), f"runs of {case}", 180, 1)
               for case in (first, low, high)}  # fmt: skip
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for rs in records.values() for r in rs)
    for case in (first, low, high):
        assert_exact(platform, case, 1, where=is_chunk_notice)
    assert max(r.create_timestamp for r in records[low]) < min(r.create_timestamp for r in records[high])

    by_worker: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for case, rs in records.items():
        for r in rs:
            by_worker[r.dagster_run.tags["loader/worker"]].append((r.start_time, r.end_time, case))
    assert set(by_worker) == {"worker1", "worker2"}
    for worker, runs in by_worker.items():
        runs.sort()
        assert [case for _, _, case in runs] == [first, high, low], worker  # queued later, started first
        assert all(end <= next_start for (_, end, _), (next_start, _, _) in pairwise(runs)), worker
    assert _most_at_once([(s, e) for runs in by_worker.values() for s, e, _ in runs]) <= 2 < RUNS_AT_ONCE


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most
