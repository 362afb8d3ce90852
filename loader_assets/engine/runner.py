"""`loader-assets load CASE`: a registered case level by level, gates included.

The runner decides what each level needs; an `Executor` carries it out (in `defs/`, Dagster runs recorded in
the instance). Leases still guard every notice, so this path can race with queued runs safely: what another
run claimed first is skipped (reported with its holder in `LevelResult.skipped`) and waited for, so a level is
judged only once nobody is loading it any more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from loader_assets import levels
from loader_assets.catalog.claims import Refused
from loader_assets.catalog.gates import gate
from loader_assets.catalog.layout import CaseLayout, TableLayout, case_layout
from loader_assets.catalog.notices import (
    WorkerLoad,
    claimed_by_run,
    first_unfinished,
    held_under_live_lease,
    loaded_by_runs,
    notice_ids,
    status_tally,
)
from loader_assets.catalog.store import Store
from loader_assets.engine.level_state import describe, is_loaded
from loader_assets.engine.load import ALL_WORKERS
from loader_assets.engine.plan import RunPlan, plan_runs
from loader_assets.workers.cluster import Cluster

HOLDER_POLL_SECONDS = 1.0


class Executor(Protocol):
    """Runs what the runner planned; returns the run id of a load."""

    def run_load(self, plan: RunPlan) -> str: ...

    def run_validation(self, layout: CaseLayout, table: TableLayout) -> None: ...


class LevelFailed(RuntimeError):
    """A level did not succeed; the message says which notices or checks."""


@dataclass(frozen=True)
class LevelResult:
    level: int
    runs: int
    message: str
    # Notices other runs claimed before this load's runs could (a queued run racing it): id -> holder.
    skipped: dict[int, Refused] = field(default_factory=dict)
    seconds: float = 0.0
    per_worker: list[WorkerLoad] = field(default_factory=list)  # what this load's runs put on each worker

    def summary(self) -> list[str]:
        """A line per worker: files, rows, MB and their rates over the level's wall time."""
        seconds = self.seconds or 1e-9
        return [
            f"level {self.level} on {_where(w.worker)}: {w.files} files, {w.rows:,} rows, {w.bytes / 1e6:.1f} MB in "
            f"{self.seconds:.1f} s ({w.rows / seconds:,.0f} rows/s, {w.bytes / 1e6 / seconds:.1f} MB/s)"
            for w in self.per_worker
        ]


def _where(worker: str) -> str:
    return "every worker (regular tables)" if worker == ALL_WORKERS else worker


def load_case(
    case: str,
    executor: Executor,
    store: Store,
    cluster: Cluster,
    *,
    levels_to_run: tuple[int, ...] = levels.ALL,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[LevelResult]:
    """Run `levels_to_run` in order; raise LevelFailed at the first level that does not succeed."""
    layout = case_layout(store.db, case)
    results = []
    for level in levels_to_run:
        if levels.is_load_level(level):
            result = _load_level(layout, level, executor, store, cluster, force, log)
        else:
            result = _validate_level(layout, level, executor, store, log)
        log(f"level {level} of {case}: {result.message}")
        for line in result.summary():
            log(line)
        results.append(result)
    return results


def _load_level(layout: CaseLayout, level: int, executor: Executor, store: Store, cluster: Cluster, force: bool,
                log: Callable[[str], None]) -> LevelResult:  # fmt: skip
    if layout.state != "active":
        raise LevelFailed(f"case {layout.case} is {layout.state}: nothing claimed (loader-assets resume {layout.case})")
    # Running ones too: if another run holds them, the claim skips them and the report names their holder.
    statuses = None if force else ("ready", "failed", "running")
    started = time.monotonic()
    wanted = notice_ids(store.db, layout.case, level=level, statuses=statuses)
    plans, _ = plan_runs(store, cluster, wanted, force=force, per_worker=False)
    skipped: dict[int, Refused] = {}
    run_ids = []
    for plan in plans:
        run_ids.append(executor.run_load(plan))
        not_claimed = set(plan.notice_ids) - claimed_by_run(store.db, run_ids[-1], plan.notice_ids)
        skipped.update(store.why_not_claimed(not_claimed, force=force))
    if skipped:
        first = min(skipped)
        log(f"{len(skipped)} notices skipped, claimed first by other runs; notice {first}: {skipped[first]}")
    _wait_for_other_runs(store, layout.case, level, log)
    counts = status_tally(store.db, layout.case, level=level)
    if not is_loaded(counts):
        raise LevelFailed(
            f"level {level} of case {layout.case} is not done: {describe(counts)}; {_first_problem(store, layout.case, level)}"
        )
    message = f"{counts.get('done', 0)} notices done in {len(plans)} run{'s' if len(plans) != 1 else ''}" + (
        f" ({len(skipped)} of them by other runs)" if skipped else ""
    )
    per_worker = loaded_by_runs(store.db, run_ids)
    return LevelResult(level, len(plans), message, skipped, time.monotonic() - started, per_worker)


def _wait_for_other_runs(store: Store, case: str, level: int, log: Callable[[str], None]) -> None:
    """Until no notice of the level is held under a live lease: its holder is still loading it.

    A holder that died stops renewing its lease, so this ends within a lease; the level then fails naming it.
    """
    announced = False
    while held := held_under_live_lease(store.db, case, level):
        if not announced:
            log(f"waiting for {held} notices of level {level} held by other runs")
            announced = True
        time.sleep(HOLDER_POLL_SECONDS)


def _validate_level(layout: CaseLayout, level: int, executor: Executor, store: Store,
                    log: Callable[[str], None]) -> LevelResult:  # fmt: skip
    tables = layout.tables_of_kind(levels.validated_kind(level))
    for table in tables:
        executor.run_validation(layout, table)
        verdict = gate(store.db, layout.case, level, table.name)
        if verdict is None or verdict.status != "passed":
            failed = ", ".join(verdict.failed_checks) if verdict else ""
            raise LevelFailed(
                f"level {level} of case {layout.case} failed for {table.name}: "
                + (
                    f"check {failed} failed (see the check results of the validation asset in the UI)"
                    if failed
                    else "validation did not run to the end"
                )
            )
    return LevelResult(level, len(tables), f"{len(tables)} tables validated")


def _first_problem(store: Store, case: str, level: int) -> str:
    """The first failed notice's error, else why the first ready one was not claimed (a closed gate…)."""
    row = first_unfinished(store.db, case, level)
    if row is None:
        return "nothing left"
    reason = row.error if row.status == "failed" else str(store.why_not_claimed([row.id])[row.id])
    return f"first: {row.path}: {reason}"
