"""The `load_notices` job: a frozen list of notices (run config) loaded in one run.

Multi-partition runs cover one contiguous key range, so a frozen selection of scattered chunks is loaded by
this job instead: it logs one materialization per chunk it loaded, so the UI shows exactly those partitions.

In process, one step loads into every worker at once (threads). On Celery (`LOADER_EXECUTOR=celery`) the run
fans out: `split_by_worker` places the chunks and yields the notices of each MariaDB worker, and one
`load_worker` step per worker runs on whichever Celery worker takes it, so several hosts load at once.
"""

import re
import sys
from collections.abc import Callable, Iterator

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository

from loader_assets import settings
from loader_assets.defs.events import load_in_run
from loader_assets.defs.instance import LOAD_POOL
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.engine.load import Loader
from loader_assets.engine.plan import RunPlan, plan_runs


def console_config(level: str) -> dict:
    """Run config: what of a run's events an in-process run prints to the terminal (all stay in the instance)."""
    return {"loggers": {"console": {"config": {"log_level": level}}}}


QUIET_CONSOLE = console_config("INFO")
LOAD_JOB = "load_notices"
LOAD_OP = "load_notices_op"
SPLIT_OP = "split_by_worker"
WORKER_OP = "load_worker"


class NoticesConfig(dg.Config):
    notice_ids: list[int]
    force: bool = False


@dg.op(name=LOAD_OP, pool=LOAD_POOL)
def load_notices_op(
    context: dg.OpExecutionContext, config: NoticesConfig, catalog: CatalogResource, cluster: ClusterResource
) -> None:
    """Load exactly the notices of the config: claim, load, finish; a materialization per loaded chunk."""
    load_in_run(context, Loader(catalog.store(), cluster.cluster), config.notice_ids, config.force)


@dg.op(name=SPLIT_OP, out=dg.DynamicOut(dict))
def split_by_worker(
    context: dg.OpExecutionContext, config: NoticesConfig, catalog: CatalogResource, cluster: ClusterResource
) -> Iterator[dg.DynamicOutput]:
    """The notices of the config by MariaDB worker (new chunks placed now), a `load_worker` step each."""
    plans, _ = plan_runs(
        catalog.store(), cluster.cluster, config.notice_ids, force=config.force, max_per_run=sys.maxsize
    )
    for plan in plans:
        context.log.info(f"{plan.worker}: {len(plan.notice_ids)} notices of case {plan.case} level {plan.level}")
        value = {"notice_ids": list(plan.notice_ids), "force": plan.force}
        yield dg.DynamicOutput(value, mapping_key=re.sub(r"\W", "_", f"{plan.worker}_{plan.case}_{plan.level}"))


@dg.op(name=WORKER_OP, pool=LOAD_POOL)
def load_worker(
    context: dg.OpExecutionContext, share: dict, catalog: CatalogResource, cluster: ClusterResource
) -> None:
    """Load one worker's share of the run: claim, load, finish; a materialization per loaded chunk."""
    load_in_run(context, Loader(catalog.store(), cluster.cluster), share["notice_ids"], share["force"])


def _load_job() -> dg.JobDefinition:
    description = "Load a frozen list of notices (run config: notice_ids) into the workers"
    if settings.executor() == "celery":

        @dg.job(name=LOAD_JOB, description=description + ", a step per worker")
        def fanned_out() -> None:
            split_by_worker().map(load_worker)

        return fanned_out

    @dg.job(name=LOAD_JOB, description=description)
    def in_one_step() -> None:
        load_notices_op()

    return in_one_step


load_notices_job = _load_job()


def run_config(plan: RunPlan) -> dict:
    entry = SPLIT_OP if settings.executor() == "celery" else LOAD_OP
    return {"ops": {entry: {"config": {"notice_ids": list(plan.notice_ids), "force": plan.force}}}}


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
) -> dg.ExecuteInProcessResult | dg.JobExecutionResult:
    """Run one plan from this process (`loader-assets load`): recorded in the instance, not queued; its steps
    run here, or on the Celery workers."""
    log(f"run: case {plan.case} level {plan.level} worker {plan.worker}: {len(plan.notice_ids)} notices")
    run_config_ = {**run_config(plan), **console}
    if settings.executor() == "celery":  # execute_in_process would run the steps here whatever the executor
        recon = ReconstructableRepository.for_module("loader_assets.definitions", "defs").get_reconstructable_job(
            job.name
        )
        with dg.execute_job(recon, instance, run_config=run_config_, tags=plan.tags) as result:
            return result
    return job.execute_in_process(run_config=run_config_, instance=instance, tags=plan.tags, raise_on_error=False)
