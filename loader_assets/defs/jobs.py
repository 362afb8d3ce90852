"""Batched loads of a frozen list of notices, and the level-by-level runner behind `loader-assets load`.

A Dagster run costs seconds and a real case has 10^4-10^5 chunks, so one run loads many notices. Multi-
partition runs cover one contiguous key range, so a frozen selection of scattered chunks is loaded by the
`load_notices` job instead: its config carries the notice ids, and it logs one materialization per chunk it
loaded, so the UI shows exactly those partitions materialized.
"""

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dagster as dg
from sqlalchemy import select

from loader_assets.catalog.schema import notices
from loader_assets.catalog.store import Owner, Store
from loader_assets.catalog.views import case_layouts
from loader_assets.defs.assets import raise_for_report
from loader_assets.defs.loading import ALL_WORKERS, Loader, chunk_sizes, materializations, place_chunks
from loader_assets.defs.resources import CatalogResource
from loader_assets.instance import LOAD_POOL
from loader_assets.workers.cluster import QservCluster

MAX_NOTICES_PER_RUN = 1000
# In-process runs print their events to the terminal: INFO and up (every event stays in the instance).
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
LOAD_JOB = "load_notices"


class NoticesConfig(dg.Config):
    notice_ids: list[int]
    force: bool = False


@dg.op(pool=LOAD_POOL)
def load_notices_op(
    context: dg.OpExecutionContext, config: NoticesConfig, catalog: CatalogResource, cluster: QservCluster
) -> None:
    """Load exactly the notices of the config: claim, load, finish; a materialization per loaded chunk."""
    report = Loader(catalog.store(), cluster).load(
        config.notice_ids, Owner.current(context.run_id), force=config.force, progress=context.log.info
    )
    for materialization in materializations(report):
        context.log_event(materialization)
    context.log.info(f"loaded {len(report.loaded)} notices ({report.rows} rows), {len(report.failed)} failed")
    raise_for_report(context, report)


@dg.job(name=LOAD_JOB, description="Load a frozen list of notices (run config: notice_ids) into the workers")
def load_notices_job() -> None:
    load_notices_op()


@dataclass(frozen=True)
class RunPlan:
    """One run to request: notices of one case and level, on one worker."""

    case: str
    level: int
    worker: str
    notice_ids: tuple[int, ...]
    priority: int = 0
    force: bool = False

    @property
    def tags(self) -> dict[str, str]:
        return {
            "loader/case": self.case,
            "loader/level": str(self.level),
            "loader/worker": self.worker,
            "dagster/priority": str(self.priority),
        }

    @property
    def run_config(self) -> dict:
        return {"ops": {"load_notices_op": {"config": {"notice_ids": list(self.notice_ids), "force": self.force}}}}

    def run_key(self, prefix: str, attempts: dict[int, int]) -> str:
        """Same notices at the same attempt numbers -> same key: a retry gets a new run, a duplicate never."""
        digest = hashlib.sha1(",".join(f"{i}:{attempts.get(i, 0)}" for i in self.notice_ids).encode()).hexdigest()
        return f"{prefix}:{self.case}:{self.level}:{self.worker}:{digest[:16]}"

    def run_request(
        self, prefix: str, attempts: dict[int, int], extra_tags: dict[str, str] | None = None
    ) -> dg.RunRequest:
        return dg.RunRequest(
            run_key=self.run_key(prefix, attempts),
            job_name=LOAD_JOB,
            run_config=self.run_config,
            tags={**self.tags, **(extra_tags or {})},
        )


def plan_runs(
    store: Store,
    cluster: QservCluster,
    notice_ids: Iterable[int],
    *,
    priority: int = 0,
    force: bool = False,
    max_per_run: int = MAX_NOTICES_PER_RUN,
) -> tuple[list[RunPlan], dict[int, int]]:
    """Group notices by case, level and worker (placing new chunks) into runs of at most `max_per_run`.

    Returns the plans and the attempt number of every notice (for run keys).
    """
    ids = sorted(set(notice_ids))
    rows = _notice_rows(store, ids)
    layouts = case_layouts(store.db)
    groups: dict[tuple[str, int, str], list[tuple[int | None, int, int]]] = {}
    for case in sorted({row.case for row in rows}):
        of_case = [row for row in rows if row.case == case]
        placement = place_chunks(cluster, layouts[case], chunk_sizes((row.chunk, row.size) for row in of_case))
        for row in of_case:
            worker = ALL_WORKERS if row.chunk is None else placement[row.chunk]
            groups.setdefault((case, row.level, worker), []).append((row.chunk, row.id, row.priority))
    plans = []
    for (case, level, worker), members in sorted(groups.items()):
        members.sort(key=lambda m: (m[0] if m[0] is not None else -1, m[1]))
        for start in range(0, len(members), max_per_run):
            part = members[start : start + max_per_run]
            run_priority = max(priority, *(m[2] for m in part))
            plans.append(RunPlan(case, level, worker, tuple(m[1] for m in part), run_priority, force))
    return plans, {row.id: row.attempts for row in rows}


def _notice_rows(store: Store, ids: list[int]) -> list:  # type: ignore[type-arg]
    n = notices.c
    rows = []
    with store.db.read() as connection:
        for start in range(0, len(ids), 5000):
            rows += connection.execute(
                select(n.id, n.case, n.level, n.chunk, n.size, n.priority, n.attempts).where(
                    n.id.in_(ids[start : start + 5000])
                )
            ).all()
    return rows


def execute_plan(
    plan: RunPlan, job: dg.JobDefinition, instance: dg.DagsterInstance, *, log: Callable[[str], None] = print
) -> dg.ExecuteInProcessResult:
    """Run one plan in this process (`loader-assets load`): recorded in the instance, not queued."""
    log(f"run: case {plan.case} level {plan.level} worker {plan.worker}: {len(plan.notice_ids)} notices")
    run_config = {**plan.run_config, **QUIET_CONSOLE}
    return job.execute_in_process(run_config=run_config, instance=instance, tags=plan.tags, raise_on_error=False)
