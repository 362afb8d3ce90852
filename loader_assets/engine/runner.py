"""A registered case level by level, gates included (`loader-assets load CASE`).

The runner decides what each level needs; an `Executor` carries it out (`defs.platform`: load runs in this process,
recorded in the instance; validations here too, their checks reported to it) and a `Progress` hears how it goes.
Leases still guard every notice, so this path can race with queued runs safely: what another run claimed first is
skipped (reported with its holder in `LevelResult.skipped`) and waited for — unless its holder is dead on this host,
then it is taken back at once — so a level is judged only once nobody is loading it any more. A level whose runs met
a server down or an interrupt ends with that problem; one whose notices or checks failed, with `LevelFailed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from loader_assets import levels
from loader_assets.catalog.claims import Refused
from loader_assets.catalog.gates import Gate, gate
from loader_assets.catalog.layout import CaseLayout, case_layout
from loader_assets.catalog.notices import (
    WorkerLoad,
    claimed_by_run,
    first_unfinished,
    held_under_live_lease,
    loaded_by_runs,
    lost_by_runs,
    notice_ids,
    status_tally,
)
from loader_assets.catalog.store import Store
from loader_assets.engine.level_state import describe, is_loaded
from loader_assets.engine.plan import RunPlan, plan_runs, shortages
from loader_assets.engine.recovery import take_back
from loader_assets.engine.targets import ALL_WORKERS
from loader_assets.problems import CasePaused, Failed, Problem, ServerDown
from loader_assets.wording import counted
from loader_assets.workers.cluster import Cluster

HOLDER_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class RunOutcome:
    """A run the executor carried out (or a validation, in `load`'s process): its id, the problem that stopped it (a
    server, an interrupt), if any, and the first error that failed it otherwise (a bug: its traceback is in the
    run's events, or on the terminal with -v)."""

    run_id: str
    problem: Problem | None = None
    error: str | None = None


class Executor(Protocol):
    """Runs what the runner planned."""

    def run_load(self, plan: RunPlan) -> RunOutcome: ...

    # Every table of the level; the outcome names the validation (a run, or `load`'s own process). `load_follows`:
    # the next level is loaded next if this one passes (the executor may prepare its run meanwhile).
    def run_validation(self, layout: CaseLayout, level: int, store: Store, cluster: Cluster, *,
                       load_follows: bool = False) -> RunOutcome: ...  # fmt: skip


class Progress(Protocol):
    """What a load tells as it goes (the CLI draws bars, the notebook collects lines)."""

    def level_started(self, level: int, notices: int) -> None: ...

    def level_ended(self, result: LevelResult) -> None: ...

    def note(self, line: str) -> None: ...


class Silent:
    """A Progress that tells nothing."""

    def level_started(self, level: int, notices: int) -> None:
        pass

    def level_ended(self, result: LevelResult) -> None:
        pass

    def note(self, line: str) -> None:
        pass


class LevelFailed(Failed):
    """A level did not succeed; the cause says which notices or checks."""

    def __init__(self, cause: str, case: str) -> None:
        super().__init__(cause, f"see `loader-assets status --case {case}` and the notices' history")


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
            f"level {self.level} on {_where(w.worker)}: {counted(w.files, 'file')}, {w.rows:,} rows, "
            f"{w.bytes / 1e6:.1f} MB in "
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
    progress: Progress | None = None,
) -> list[LevelResult]:
    """Run `levels_to_run` in order; raise the first level's problem that does not succeed."""
    told = progress or Silent()
    layout = case_layout(store.db, case)
    results = []
    for level in levels_to_run:
        if levels.is_load_level(level):
            result = _load_level(layout, level, executor, store, cluster, force, told)
        else:
            result = _validate_level(layout, level, executor, store, cluster, told, level + 1 in levels_to_run)
        told.level_ended(result)
        results.append(result)
    return results


def _load_level(layout: CaseLayout, level: int, executor: Executor, store: Store, cluster: Cluster, force: bool,
                told: Progress) -> LevelResult:  # fmt: skip
    if layout.state != "active":
        raise CasePaused.of(layout.case, layout.state)
    # Running ones too: if another run holds them, the claim skips them and the report names their holder.
    statuses = None if force else ("ready", "failed", "running")
    started = time.monotonic()
    wanted = notice_ids(store.db, layout.case, level=level, statuses=statuses)
    told.level_started(level, sum(status_tally(store.db, layout.case, level=level).values()))
    _check_room(store, cluster, wanted, told)
    plans, _ = plan_runs(store, cluster, wanted, force=force, per_worker=False)
    skipped: dict[int, Refused] = {}
    run_ids = []
    for plan in plans:
        outcome = executor.run_load(plan)
        run_ids.append(outcome.run_id)
        if outcome.problem is not None:  # a server down, an interrupt: what the operator must hear first
            raise outcome.problem
        not_claimed = set(plan.notice_ids) - claimed_by_run(store.db, outcome.run_id, plan.notice_ids)
        skipped.update(store.why_not_claimed(not_claimed, force=force))
    if skipped:
        first = min(skipped)
        told.note(
            f"{counted(len(skipped), 'notice')} skipped, claimed first by other runs; notice {first}: {skipped[first]}"
        )
    _wait_for_other_runs(store, cluster, layout.case, level, told)
    counts = status_tally(store.db, layout.case, level=level)
    if not is_loaded(counts):
        raise LevelFailed(
            f"level {level} of case {layout.case} is not done: {describe(counts)}; "
            f"{_first_problem(store, layout.case, level)}",
            layout.case,
        )
    message = f"{counted(counts.get('done', 0), 'notice')} done in {counted(len(plans), 'run')}" + (
        f" ({len(skipped)} of them by other runs)" if skipped else ""
    )
    if lost := lost_by_runs(store.db, run_ids):
        message += f"; {lost} of this load's notices were taken over by others once its lease lapsed"
    per_worker = loaded_by_runs(store.db, run_ids)
    return LevelResult(level, len(plans), message, skipped, time.monotonic() - started, per_worker)


def _check_room(store: Store, cluster: Cluster, wanted: list[int], told: Progress) -> None:
    """Before the level: a worker that cannot take what it is about to receive stops it, naming the worker and its
    disk; one nearly full is warned of."""
    for found in shortages(store, cluster, wanted):
        if isinstance(found, ServerDown):
            raise found
        if found.refused:
            raise found.problem()
        told.note(f"warning: {found.line()}")


def _wait_for_other_runs(store: Store, cluster: Cluster, case: str, level: int, told: Progress) -> None:
    """Until no notice of the level is held under a live lease: its holder is still loading it.

    A holder dead on this host is taken back at once; one elsewhere stops renewing its lease, so this ends
    within a lease; the level then fails naming it.
    """
    announced = False
    while True:
        take_back(store, cluster, case=case, warn=told.note)
        held = held_under_live_lease(store.db, case, level)
        if not held:
            return
        if not announced:
            told.note(f"waiting for {counted(held, 'notice')} of level {level} held by other runs")
            announced = True
        time.sleep(HOLDER_POLL_SECONDS)


def _validate_level(layout: CaseLayout, level: int, executor: Executor, store: Store, cluster: Cluster,
                    told: Progress, load_follows: bool) -> LevelResult:  # fmt: skip
    tables = layout.tables_of_kind(levels.validated_kind(level))
    told.level_started(level, len(tables))
    started = time.monotonic()
    outcome = executor.run_validation(layout, level, store, cluster, load_follows=load_follows)
    if outcome.problem is not None:
        raise outcome.problem
    for table in tables:
        verdict = gate(store.db, layout.case, level, table.name)
        if verdict is None or verdict.status != "passed":
            failed = ", ".join(verdict.failed_checks) if verdict else ""
            raise LevelFailed(
                f"level {level} of case {layout.case} failed for {table.name}: "
                + (
                    f"check {failed} failed (see the check results of the validation asset in the UI)"
                    if failed
                    else f"validation did not run to the end ({outcome.error or _gate_state(verdict)})"
                ),
                layout.case,
            )
    return LevelResult(
        level, len(tables), f"{counted(len(tables), 'table')} validated", seconds=time.monotonic() - started
    )


def _gate_state(verdict: Gate | None) -> str:
    return f"the gate is {verdict.status}" if verdict else "the gate is missing"


def _first_problem(store: Store, case: str, level: int) -> str:
    """The first failed notice's error, else why the first ready one was not claimed (a closed gate…)."""
    row = first_unfinished(store.db, case, level)
    if row is None:
        return "nothing left"
    reason = row.error if row.status == "failed" else str(store.why_not_claimed([row.id])[row.id])
    return f"first: {row.path}: {reason}"
