"""Sensors that launch and tidy runs. Each tick is small: a bounded number of notices, a few queries.

- `scheduled_loads`: turns pending `schedules` rows (a frozen selection) into queued runs.
- `saved_selections`: for each enabled saved selection, requests runs for what it selects that may run now.
- `level_gates`: once a table's load level is done, runs its validation (levels 2 and 4).
- `stale_sweeper`: takes back locks of dead or silent runs, drops their partial rows, fails their runs.
"""

import dagster as dg
from sqlalchemy import func, select, update

from loader_assets import settings
from loader_assets.catalog.schema import level_gates, notices, schedules, selections
from loader_assets.catalog.store import Released, Store, utcnow
from loader_assets.catalog.views import case_layouts, status_tally
from loader_assets.defs.assets import validation_key
from loader_assets.defs.jobs import load_notices_job, plan_runs
from loader_assets.defs.loading import Target, drop_attempt_rows
from loader_assets.defs.resources import CatalogResource
from loader_assets.selection.saved import matching_schedulable
from loader_assets.workers.cluster import QservCluster

NOTICES_PER_TICK = 20_000  # what one tick may hand out; the rest waits for the next tick
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.sensor(job=load_notices_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def scheduled_loads(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: QservCluster
) -> dg.SensorResult:
    """Frozen selections handed over by `Selection.schedule()` / `loader-assets schedule` become queued runs."""
    store = catalog.store()
    with store.db.read() as connection:
        pending = connection.execute(
            select(schedules)
            .where(schedules.c.state == "pending")
            .order_by(schedules.c.priority.desc(), schedules.c.id)
            .limit(5)
        ).all()
    requests: list[dg.RunRequest] = []
    for row in pending:
        plans, attempts = plan_runs(store, cluster, row.notice_ids, priority=row.priority, force=row.force)
        batch = [plan.run_request(f"schedule-{row.id}", attempts, {"loader/schedule": str(row.id)}) for plan in plans]
        with store.db.write() as connection:
            connection.execute(
                update(schedules)
                .where(schedules.c.id == row.id)
                .values(state="submitted", submitted_at=utcnow(), runs=[r.run_key for r in batch])
            )
        context.log.info(f"schedule {row.id}: {len(row.notice_ids)} notices in {len(batch)} runs")
        requests += batch
    return dg.SensorResult(run_requests=requests, skip_reason=None if requests else "no pending schedule")


@dg.sensor(
    job=load_notices_job,
    minimum_interval_seconds=settings.sensor_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def saved_selections(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: QservCluster
) -> dg.SensorResult:
    """Each enabled saved selection: what it selects that is ready, unlocked and past its gate, in runs.

    A selection whose earlier runs are still queued or running waits, so no notice is requested twice;
    run keys carry the notices' attempt numbers, so a retry after a failure is a new run.
    """
    store = catalog.store()
    with store.db.read() as connection:
        enabled = connection.execute(
            select(selections)
            .where(selections.c.enabled.is_(True))
            .order_by(selections.c.priority.desc(), selections.c.name)
        ).all()
    budget, requests, lines = NOTICES_PER_TICK, [], []
    for row in enabled:
        if budget <= 0:
            break
        in_flight = context.instance.get_run_records(
            dg.RunsFilter(tags={"loader/selection": row.name}, statuses=IN_FLIGHT), limit=1
        )
        if in_flight:
            lines.append(f"{row.name}: waiting for run {in_flight[0].dagster_run.run_id}")
            continue
        ids = matching_schedulable(store, row, utcnow(), budget)
        if not ids:
            lines.append(f"{row.name}: nothing to load")
            continue
        plans, attempts = plan_runs(store, cluster, ids, priority=row.priority)
        requests += [
            plan.run_request(f"selection-{row.name}", attempts, {"loader/selection": row.name}) for plan in plans
        ]
        budget -= len(ids)
        lines.append(f"{row.name}: {len(ids)} notices in {len(plans)} runs")
    for line in lines:
        context.log.info(line)
    return dg.SensorResult(
        run_requests=requests, skip_reason=None if requests else "; ".join(lines) or "no enabled selection"
    )


def level_gates_sensor(validation_keys: list[dg.AssetKey]) -> dg.SensorDefinition:
    """Runs a table's validation once all its notices are done and its gate is pending (or new data came)."""

    @dg.sensor(
        name="level_gates",
        target=dg.AssetSelection.assets(*validation_keys),
        minimum_interval_seconds=max(1, settings.sensor_interval() // 2),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def level_gates(context: dg.SensorEvaluationContext, catalog: CatalogResource) -> dg.SensorResult:
        store = catalog.store()
        requests = []
        for layout in case_layouts(store.db).values():
            if layout.state != "active":
                continue
            for table in layout.tables.values():
                if table.kind == "regular":
                    continue
                due = _validation_due(store, layout.case, table.name, 2 if table.kind == "director" else 4)
                if due:
                    key = validation_key(layout.case, table)
                    requests.append(
                        dg.RunRequest(
                            run_key=f"gate:{layout.case}:{table.name}:{due}",
                            asset_selection=[key],
                            tags={
                                "loader/case": layout.case,
                                "loader/level": str(2 if table.kind == "director" else 4),
                            },
                        )
                    )
                    context.log.info(f"validating {key.to_user_string()}")
        return dg.SensorResult(run_requests=requests, skip_reason=None if requests else "no level ready for validation")

    return level_gates


def _validation_due(store: Store, case: str, table: str, level: int) -> str | None:
    """A token for the data to validate when the table is fully done and its gate has not judged this data."""
    if set(status_tally(store.db, case, table=table)) != {"done"}:
        return None
    with store.db.read() as connection:
        last_load = connection.execute(
            select(func.max(notices.c.finished_at)).where(notices.c.case == case, notices.c.table == table)
        ).scalar()
        gate = connection.execute(
            select(level_gates.c.status, level_gates.c.updated_at).where(
                level_gates.c.case == case, level_gates.c.table == table, level_gates.c.level == level
            )
        ).first()
    if gate is not None and gate.status != "pending" and gate.updated_at >= last_load:
        return None
    return f"{last_load:%Y%m%dT%H%M%S%f}"


@dg.sensor(minimum_interval_seconds=settings.sensor_interval(), default_status=dg.DefaultSensorStatus.RUNNING)
def stale_sweeper(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: QservCluster
) -> dg.SkipReason:
    """Locks of dead owners (this host) or with expired leases: failed as stale, rows dropped, runs failed."""
    store = catalog.store()
    released = store.reclaim()
    databases = {case: layout.database for case, layout in case_layouts(store.db).items()} if released else {}
    for item in released:
        _drop_released_rows(cluster, databases[item.case], item, context.log)
    dead_runs = sorted({item.run_id for item in released if item.run_id})
    for run_id in dead_runs:
        run = context.instance.get_run_by_id(run_id)
        if run is not None and run.status in IN_FLIGHT:
            taken = sum(item.run_id == run_id for item in released)
            context.instance.report_run_failed(
                run, f"loader_assets: the run's leases expired or its process died ({taken} notices taken back)"
            )
    message = f"took back {len(released)} locks of runs {dead_runs}" if released else "no stale lock"
    context.log.info(message)
    return dg.SkipReason(message)


def _drop_released_rows(cluster: QservCluster, database: str, item: Released, log: dg.DagsterLogManager) -> None:
    """The released attempt is not `done`: whatever it wrote goes now (the next claim would drop it anyway)."""
    if item.attempt_id is None or item.worker is None:
        return
    target = Target(item.table, item.chunk, item.overlap, item.worker)
    drop_attempt_rows(cluster, database, target, [item.attempt_id], log.warning)


def all_sensors(validation_keys: list[dg.AssetKey]) -> list[dg.SensorDefinition]:
    sensors = [scheduled_loads, saved_selections, stale_sweeper]
    return sensors + ([level_gates_sensor(validation_keys)] if validation_keys else [])
