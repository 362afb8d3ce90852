"""The `load_notices` job: a frozen list of notices (run config) loaded in one run.

Multi-partition runs cover one contiguous key range, so a frozen selection of scattered chunks is loaded by
this job instead: it logs one materialization per chunk it loaded, so the UI shows exactly those partitions.
"""

from collections.abc import Callable

import dagster as dg

from loader_assets.defs.events import load_in_run
from loader_assets.defs.instance import LOAD_POOL
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.engine.load import Loader
from loader_assets.engine.plan import RunPlan


def console_config(level: str) -> dict:
    """Run config: what of a run's events an in-process run prints to the terminal (all stay in the instance)."""
    return {"loggers": {"console": {"config": {"log_level": level}}}}


QUIET_CONSOLE = console_config("INFO")
LOAD_JOB = "load_notices"
LOAD_OP = "load_notices_op"


class NoticesConfig(dg.Config):
    notice_ids: list[int]
    force: bool = False


@dg.op(name=LOAD_OP, pool=LOAD_POOL)
def load_notices_op(
    context: dg.OpExecutionContext, config: NoticesConfig, catalog: CatalogResource, cluster: ClusterResource
) -> None:
    """Load exactly the notices of the config: claim, load, finish; a materialization per loaded chunk."""
    load_in_run(context, Loader(catalog.store(), cluster.cluster), config.notice_ids, config.force)


@dg.job(name=LOAD_JOB, description="Load a frozen list of notices (run config: notice_ids) into the workers")
def load_notices_job() -> None:
    load_notices_op()


def run_config(plan: RunPlan) -> dict:
    return {"ops": {LOAD_OP: {"config": {"notice_ids": list(plan.notice_ids), "force": plan.force}}}}


def run_request(
    plan: RunPlan, prefix: str, attempts: dict[int, int], extra_tags: dict[str, str] | None = None
) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=plan.run_key(prefix, attempts),
        job_name=LOAD_JOB,
        run_config=run_config(plan),
        tags={**plan.tags, **(extra_tags or {})},
    )


def execute_plan(
    plan: RunPlan,
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    *,
    log: Callable[[str], None] = print,
    console: dict = QUIET_CONSOLE,
) -> dg.ExecuteInProcessResult:
    """Run one plan in this process (`loader-assets load`): recorded in the instance, not queued."""
    log(f"run: case {plan.case} level {plan.level} worker {plan.worker}: {len(plan.notice_ids)} notices")
    run_config_ = {**run_config(plan), **console}
    return job.execute_in_process(run_config=run_config_, instance=instance, tags=plan.tags, raise_on_error=False)
