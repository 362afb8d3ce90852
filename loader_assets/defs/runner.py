"""The engine's runner carried out by Dagster: runs in this process against the persistent instance (like
`dagster asset materialize`), recorded and shown in the UI, not waiting in the run queue."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from loader_assets import tags
from loader_assets.catalog.layout import CaseLayout, TableLayout
from loader_assets.catalog.store import Store
from loader_assets.defs.assets import gate_job_name, validation_key
from loader_assets.defs.jobs import LOAD_JOB, console_config, execute_plan
from loader_assets.engine import runner
from loader_assets.engine.plan import RunPlan
from loader_assets.engine.runner import LevelFailed, LevelResult
from loader_assets.levels import ALL as ALL_LEVELS
from loader_assets.workers.cluster import Cluster

__all__ = ["DagsterExecutor", "LevelFailed", "load_case"]


class DagsterExecutor:
    def __init__(
        self, defs: dg.Definitions, instance: dg.DagsterInstance, log: Callable[[str], None], console_level: str
    ) -> None:
        self.defs, self.instance, self.log = defs, instance, log
        self.console = console_config(console_level)

    def run_load(self, plan: RunPlan) -> str:
        job = self.defs.get_job_def(LOAD_JOB)
        return execute_plan(plan, job, self.instance, log=self.log, console=self.console).run_id

    def run_validation(self, layout: CaseLayout, table: TableLayout) -> None:
        key = validation_key(layout.case, table)
        level = table.validation_level
        assert level is not None
        self.log(f"validating {key.to_user_string()}")
        job = self.defs.resolve_job_def(gate_job_name(layout.case, level))
        run_tags = {tags.CASE: layout.case, tags.LEVEL: str(level)}
        job.execute_in_process(run_config=self.console, instance=self.instance, tags=run_tags, asset_selection=[key],
                               raise_on_error=False)  # fmt: skip


def load_case(
    case: str,
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    store: Store,
    cluster: Cluster,
    *,
    levels: tuple[int, ...] = ALL_LEVELS,
    force: bool = False,
    log: Callable[[str], None] = print,
    console_level: str = "INFO",
) -> list[LevelResult]:
    """Run `levels` of `case` in order through Dagster; raise LevelFailed at the first that does not succeed.
    `console_level`: what of Dagster's own events reaches the terminal (all of them stay in the instance)."""
    executor = DagsterExecutor(defs, instance, log, console_level)
    return runner.load_case(case, executor, store, cluster, levels_to_run=levels, force=force, log=log)
