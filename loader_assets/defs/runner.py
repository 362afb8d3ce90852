"""`loader-assets load CASE`: a registered case through Dagster, level by level, gates included.

Runs execute in this process against the persistent instance (like `dagster asset materialize`): they are
recorded and shown in the UI, but do not wait in the run queue. Leases still guard every notice, so this
path can race with queued runs safely: what another run claimed first is skipped (reported with its holder in
`LevelResult.skipped`) and waited for, so a level is judged only once nobody is loading it any more.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
from sqlalchemy import func, select

from loader_assets.catalog.schema import attempts, level_gates, notices
from loader_assets.catalog.store import Store, utcnow
from loader_assets.catalog.views import CaseLayout, case_layouts, notice_ids, status_tally
from loader_assets.defs.assets import validation_key
from loader_assets.defs.jobs import LOAD_JOB, QUIET_CONSOLE, execute_plan, plan_runs
from loader_assets.workers.cluster import QservCluster

LOAD_LEVELS = (1, 3)
HOLDER_POLL_SECONDS = 1.0
VALIDATION_KIND = {2: "director", 4: "child"}


class LevelFailed(RuntimeError):
    """A level did not succeed; the message says which notices or checks."""


@dataclass(frozen=True)
class LevelResult:
    level: int
    runs: int
    message: str
    # Notices other runs claimed before this load's runs could (a queued run racing it): id -> holder.
    skipped: dict[int, str] = field(default_factory=dict)


def load_case(
    case: str,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    store: Store,
    cluster: QservCluster,
    *,
    levels: tuple[int, ...] = (1, 2, 3, 4),
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[LevelResult]:
    """Run `levels` in order; raise LevelFailed at the first level that does not succeed."""
    layouts = case_layouts(store.db, case)
    if case not in layouts:
        raise KeyError(f"unknown case {case!r}: register it first (loader-assets register CASE_DIR)")
    results = []
    for level in levels:
        if level in LOAD_LEVELS:
            result = _load_level(layouts[case], level, defs, instance, store, cluster, force, log)
        else:
            result = _validate_level(layouts[case], level, defs, instance, store, log)
        log(f"level {level} of {case}: {result.message}")
        results.append(result)
    return results


def _load_level(layout: CaseLayout, level: int, defs: dg.Definitions, instance: dg.DagsterInstance, store: Store,
                cluster: QservCluster, force: bool, log: Callable[[str], None]) -> LevelResult:  # fmt: skip
    if layout.state != "active":
        raise LevelFailed(f"case {layout.case} is {layout.state}: nothing claimed (loader-assets resume {layout.case})")
    # Running ones too: if another run holds them, the claim skips them and the report names their holder.
    statuses = None if force else ("ready", "failed", "running")
    ids = notice_ids(store.db, layout.case, level=level, statuses=statuses)
    plans, _ = plan_runs(store, cluster, ids, force=force)
    job = defs.get_job_def(LOAD_JOB)
    skipped: dict[int, str] = {}
    for plan in plans:
        result = execute_plan(plan, job, instance, log=log)
        skipped.update(_not_claimed_by(store, result.run_id, plan.notice_ids))
    if skipped:
        first = min(skipped)
        log(f"{len(skipped)} notices skipped, claimed first by other runs; notice {first}: {skipped[first]}")
    _wait_for_other_runs(store, layout.case, level, log)
    counts = status_tally(store.db, layout.case, level=level)
    if set(counts) - {"done"}:
        raise LevelFailed(
            f"level {level} of case {layout.case} is not done: {_describe(counts)}; {_first_problem(store, layout.case, level)}"
        )
    message = f"{counts.get('done', 0)} notices done in {len(plans)} runs" + (
        f" ({len(skipped)} of them by other runs)" if skipped else ""
    )
    return LevelResult(level, len(plans), message, skipped)


def _not_claimed_by(store: Store, run_id: str, notice_ids: tuple[int, ...]) -> dict[int, str]:
    """Notices handed to run `run_id` that it did not claim, with who holds (or loaded) them now."""
    with store.db.read() as connection:
        claimed = set(
            connection.execute(
                select(attempts.c.notice).where(attempts.c.notice.in_(notice_ids), attempts.c.run_id == run_id)
            ).scalars()
        )
    return store.why_not_claimed(set(notice_ids) - claimed)


def _wait_for_other_runs(store: Store, case: str, level: int, log: Callable[[str], None]) -> None:
    """Until no notice of the level is held under a live lease: its holder is still loading it.

    A holder that died stops renewing its lease, so this ends within a lease; the level then fails naming it.
    """
    announced = False
    while held := _held_under_live_lease(store, case, level):
        if not announced:
            log(f"waiting for {held} notices of level {level} held by other runs")
            announced = True
        time.sleep(HOLDER_POLL_SECONDS)


def _held_under_live_lease(store: Store, case: str, level: int) -> int:
    with store.db.read() as connection:
        return connection.execute(
            select(func.count()).where(
                notices.c.case == case,
                notices.c.level == level,
                notices.c.status == "running",
                notices.c.lease_until >= utcnow(),
            )
        ).scalar_one()


def _validate_level(layout: CaseLayout, level: int, defs: dg.Definitions, instance: dg.DagsterInstance, store: Store,
                    log: Callable[[str], None]) -> LevelResult:  # fmt: skip
    tables = layout.tables_of_kind(VALIDATION_KIND[level])
    for table in tables:
        key = validation_key(layout.case, table)
        log(f"validating {key.to_user_string()}")
        job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={key})
        tags = {"loader/case": layout.case, "loader/level": str(level)}
        job.execute_in_process(run_config=QUIET_CONSOLE, instance=instance, tags=tags, raise_on_error=False)
        gate = _gate(store, layout.case, level, table.name)
        if gate is None or gate.status != "passed":
            failed = ", ".join((gate.details or {}).get("failed_checks", [])) if gate else ""
            raise LevelFailed(
                f"level {level} of case {layout.case} failed for {table.name}: "
                + (
                    f"check {failed} failed (see the check results of {key.to_user_string()} in the UI)"
                    if failed
                    else "validation did not run to the end"
                )
            )
    return LevelResult(level, len(tables), f"{len(tables)} tables validated")


def _first_problem(store: Store, case: str, level: int) -> str:
    """The first failed notice's error, else why the first ready one was not claimed (a closed gate…)."""
    with store.db.read() as connection:
        row = connection.execute(
            select(notices.c.id, notices.c.path, notices.c.status, notices.c.error)
            .where(notices.c.case == case, notices.c.level == level, notices.c.status != "done")
            .order_by(notices.c.status != "failed", notices.c.id)  # failed before ready
            .limit(1)
        ).first()
    if row is None:
        return "nothing left"
    reason = row.error if row.status == "failed" else store.why_not_claimed([row.id])[row.id]
    return f"first: {row.path}: {reason}"


def _gate(store: Store, case: str, level: int, table: str):  # type: ignore[no-untyped-def]
    with store.db.read() as connection:
        return connection.execute(
            select(level_gates).where(
                level_gates.c.case == case, level_gates.c.level == level, level_gates.c.table == table
            )
        ).first()


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
