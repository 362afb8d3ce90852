"""The `load_notices` job: a frozen list of notices (run config) loaded in one run, and the `sweep` job.

Multi-partition runs cover one contiguous key range, so a frozen selection of scattered chunks is loaded by
this job instead: it logs one materialization per chunk it loaded, so the UI shows exactly those partitions.

One graph whatever the executor: `split_by_worker` places the chunks and yields the notices to load in shares,
one `load_share` step each. In process, one share holds every worker's notices (a step loads into all of them at
once, in threads); in step processes or on Celery (`defs/executors.py`) a share per MariaDB worker, each step in a
process of its own, or on whichever Celery worker takes it. The run config says which (`per_worker`).

`IN_FLIGHT`: the run statuses of a run that may still write (sensors wait for it, the sweep fails it once dead).
"""

import re
import sys
from collections.abc import Iterator

import dagster as dg

from loader_assets.defs.events import load_in_run
from loader_assets.defs.executors import stop_on_signals
from loader_assets.defs.instance import LOAD_POOL
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.engine.plan import RunPlan, plan_runs
from loader_assets.engine.sweep import sweep

LOAD_JOB = "load_notices"
SPLIT_OP = "split_by_worker"
SHARE_OP = "load_share"
SWEEP_JOB = "sweep"
# Runs that may still write: to the workers, the catalog or their own events.
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class NoticesConfig(dg.Config):
    notice_ids: list[int]
    force: bool = False
    per_worker: bool = False  # a share per MariaDB worker (steps elsewhere); else one share for the whole run


@dg.op(name=SPLIT_OP, out=dg.DynamicOut(dict))
def split_by_worker(
    context: dg.OpExecutionContext, config: NoticesConfig, catalog: CatalogResource, cluster: ClusterResource
) -> Iterator[dg.DynamicOutput]:
    """The notices of the config in shares (new chunks placed now): one, or one per MariaDB worker."""
    if not config.per_worker:
        value = {"notice_ids": list(config.notice_ids), "force": config.force}
        yield dg.DynamicOutput(value, mapping_key="all_workers")
        return
    plans, _ = plan_runs(
        catalog.store(), cluster.cluster, config.notice_ids, force=config.force, max_per_run=sys.maxsize
    )
    for plan in plans:
        context.log.info(f"{plan.worker}: {len(plan.notice_ids)} notices of case {plan.case} level {plan.level}")
        value = {"notice_ids": list(plan.notice_ids), "force": plan.force}
        yield dg.DynamicOutput(value, mapping_key=re.sub(r"\W", "_", f"{plan.worker}_{plan.case}_{plan.level}"))


@dg.op(name=SHARE_OP, pool=LOAD_POOL)
def load_share(context: dg.OpExecutionContext, share: dict, catalog: CatalogResource, cluster: ClusterResource) -> None:
    """Load one share of the run: claim, load, finish; a materialization per loaded chunk."""
    stop_on_signals(catalog.settings)
    store = catalog.store()
    load_in_run(context, cluster.loader(store), share["notice_ids"], share["force"])


@dg.job(name=LOAD_JOB, description="Load a frozen list of notices (run config: notice_ids) into the workers")
def load_notices_job() -> None:
    split_by_worker().map(load_share)


def run_config(plan: RunPlan, *, per_worker: bool) -> dict:
    notices = {"notice_ids": list(plan.notice_ids), "force": plan.force, "per_worker": per_worker}
    return {"ops": {SPLIT_OP: {"config": notices}}}


def run_request(
    plan: RunPlan, prefix: str, attempts: dict[int, int], *, per_worker: bool, extra_tags: dict[str, str] | None = None
) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=plan.run_key(prefix, attempts),
        job_name=LOAD_JOB,
        run_config=run_config(plan, per_worker=per_worker),
        tags={**plan.tags, **(extra_tags or {})},
    )


def notices_of_run(run: dg.DagsterRun) -> list[int]:
    """The notices a `load_notices` run was asked to load (from its run config)."""
    config = (run.run_config or {}).get("ops", {}).get(SPLIT_OP, {}).get("config", {})
    return list(config.get("notice_ids", []))


@dg.op(name="sweep_catalog")
def sweep_op(context: dg.OpExecutionContext, catalog: CatalogResource, cluster: ClusterResource) -> None:
    """Take back the notices of dead or silent holders (their rows dropped, their runs failed) and reconcile every
    worker's partitions with the catalog."""
    outcome = sweep(catalog.store(), cluster.cluster, log=context.log.info)
    for run_id, taken in sorted(outcome.dead_runs.items()):
        run = context.instance.get_run_by_id(run_id)
        if run is None or run.status not in IN_FLIGHT or run_id == context.run.run_id:
            continue
        why = f"loader_assets: the run's leases expired or its process died ({taken} notices taken back)"
        if run.status == dg.DagsterRunStatus.CANCELING:  # the operator's cancel, completed
            context.instance.report_run_canceled(run, why)
        else:
            context.instance.report_run_failed(run, why)
    context.log.info(outcome.line())


@dg.job(name=SWEEP_JOB, description="Recovery: dead holders' notices taken back, workers reconciled with the catalog")
def sweep_job() -> None:
    sweep_op()
