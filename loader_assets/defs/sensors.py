"""Sensors that launch and tidy runs. Each tick is small: a bounded number of notices, a few queries.

- `scheduled_loads`: turns pending schedules (a frozen selection) into queued runs.
- `saved_selections`: for each enabled saved selection, requests runs for what it selects that may run now.
- `level_gates`: once a table's load level is done, runs its validation (levels 2 and 4).
- `stale_sweeper`: takes back locks of dead or silent runs, drops their partial rows, fails their runs.
"""

from collections.abc import Callable

import dagster as dg

from loader_assets import levels, settings, tags
from loader_assets.catalog import schedules
from loader_assets.catalog.claims import behind_closed_gates
from loader_assets.catalog.gates import Gate
from loader_assets.catalog.layout import TableLayout, case_layouts
from loader_assets.catalog.store import Released
from loader_assets.catalog.time import utcnow
from loader_assets.defs.assets import validation_key
from loader_assets.defs.jobs import load_notices_job, run_request
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.defs.runs import IN_FLIGHT, first_in_flight
from loader_assets.engine.level_state import holder_alive_here, validation_due
from loader_assets.engine.load import Target, drop_attempt_rows
from loader_assets.engine.plan import plan_runs
from loader_assets.engine.reconcile import reconcile
from loader_assets.selection.saved import matching_schedulable
from loader_assets.selection.saved import saved_selections as enabled_selections
from loader_assets.workers.cluster import Cluster

ENDED_BADLY = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
NOTICES_PER_TICK = 20_000  # what one tick may hand out; the rest waits for the next tick
SCHEDULES_PER_TICK = 5
PENDING_SCHEDULES_READ = 100  # schedules waiting for a gate are read again each tick
# The daemon evaluates its sensors every 5 s at best: these two follow a level's end within a loop or two.
SCHEDULE_INTERVAL_SECONDS = 2
GATE_INTERVAL_SECONDS = 2


@dg.sensor(
    job=load_notices_job,
    minimum_interval_seconds=SCHEDULE_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def scheduled_loads(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: ClusterResource
) -> dg.SensorResult:
    """Frozen selections handed over by `Selection.schedule()` / `loader-assets schedule` become queued runs;
    notices of a level behind a closed gate stay in their schedule until it passes."""
    store = catalog.store()
    planned: dict[int, tuple[schedules.Schedule, list[int], list[dg.RunRequest]]] = {}
    for row in schedules.pending(store.db, PENDING_SCHEDULES_READ):
        if len(planned) == SCHEDULES_PER_TICK:
            break
        try:
            with store.db.read() as connection:
                held = behind_closed_gates(connection, row.waiting_ids)
            ready = [i for i in row.waiting_ids if i not in held]
            if not ready:
                continue
            plans, attempts = plan_runs(store, cluster.cluster, ready, priority=row.priority, force=row.force)
        except Exception as error:  # this row waits for the next tick; the others go on
            context.log.error(f"schedule {row.id} not planned, retried next tick: {type(error).__name__}: {error}")
            continue
        batch = [run_request(p, f"schedule-{row.id}", attempts, {tags.SCHEDULE: str(row.id)}) for p in plans]
        planned[row.id] = (row, ready, batch)
        waiting = f"; {len(held)} wait for their gate" if held else ""
        context.log.info(f"schedule {row.id}: {len(ready)} notices in {len(batch)} runs{waiting}")
    # Marked submitted only now, each with exactly the requests this evaluation returns.
    for row, ready, batch in planned.values():
        schedules.submit(store.db, row, [r.run_key for r in batch], ready)
    requests = [request for _row, _ready, batch in planned.values() for request in batch]
    return dg.SensorResult(run_requests=requests, skip_reason=None if requests else "no pending schedule may start")


@dg.sensor(
    job=load_notices_job,
    minimum_interval_seconds=settings.sensor_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def saved_selections(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: ClusterResource
) -> dg.SensorResult:
    """Each enabled saved selection: what it selects that is ready, unlocked and past its gate, in runs.

    A selection whose earlier runs are still queued or running waits, so no notice is requested twice;
    run keys carry the notices' attempt numbers, so a retry after a failure is a new run.
    """
    store = catalog.store()
    budget, requests, lines = NOTICES_PER_TICK, [], []
    for row in sorted(enabled_selections(store, enabled_only=True), key=lambda s: (-s.priority, s.name)):
        if budget <= 0:
            break
        in_flight = first_in_flight(context.instance, tags.SELECTION, row.name)
        if in_flight:
            lines.append(f"{row.name}: waiting for run {in_flight}")
            continue
        ids = matching_schedulable(store, row, utcnow(), budget)
        if not ids:
            lines.append(f"{row.name}: nothing to load")
            continue
        plans, attempts = plan_runs(store, cluster.cluster, ids, priority=row.priority)
        requests += [run_request(plan, f"selection-{row.name}", attempts, {tags.SELECTION: row.name}) for plan in plans]
        budget -= len(ids)
        lines.append(f"{row.name}: {len(ids)} notices in {len(plans)} runs")
    for line in lines:
        context.log.info(line)
    return dg.SensorResult(
        run_requests=requests, skip_reason=None if requests else "; ".join(lines) or "no enabled selection"
    )


def validation_alive(instance: dg.DagsterInstance) -> Callable[[Gate], bool]:
    """A validation holding a gate is dead once its run has ended (or its process died on this host)."""

    def alive(verdict: Gate) -> bool:
        run = instance.get_run_by_id(verdict.validating_run or "")
        if run is not None and run.status not in IN_FLIGHT:
            return False
        return holder_alive_here(verdict)

    return alive


def level_gates_sensor(validation_keys: list[dg.AssetKey]) -> dg.SensorDefinition:
    """Runs a table's validation once all its notices are done and its gate is pending at a new generation, or
    its last validation died (the run key carries both)."""

    @dg.sensor(
        name="level_gates",
        target=dg.AssetSelection.assets(*validation_keys),
        minimum_interval_seconds=GATE_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def level_gates(context: dg.SensorEvaluationContext, catalog: CatalogResource) -> dg.SensorResult:
        store = catalog.store()
        due_by_level: dict[tuple[str, int], list[tuple[TableLayout, Gate]]] = {}
        alive = validation_alive(context.instance)
        for layout in case_layouts(store.db).values():
            if layout.state != "active":
                continue
            for table in layout.validated_tables():
                level = table.validation_level
                assert level is not None
                director = layout.director_of(table).name if table.kind == levels.CHILD else None
                due = validation_due(store.db, layout.case, table.name, level, director=director, holder_alive=alive)
                if due is not None:
                    due_by_level.setdefault((layout.case, level), []).append((table, due))
        requests = [
            _validation_request(context, store.db.catalog_id, case, level, due)
            for (case, level), due in sorted(due_by_level.items())
        ]
        return dg.SensorResult(run_requests=requests, skip_reason=None if requests else "no level ready for validation")

    return level_gates


@dg.sensor(minimum_interval_seconds=settings.sensor_interval(), default_status=dg.DefaultSensorStatus.RUNNING)
def stale_sweeper(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: ClusterResource
) -> dg.SkipReason:
    """Locks of dead owners (this host) or with expired leases: failed as stale, rows dropped, runs failed;
    then every case's workers are reconciled with the catalog (stray partitions dropped, missing ones reloaded)."""
    store = catalog.store()
    released = store.reclaim()
    databases = {case: layout.database for case, layout in case_layouts(store.db).items()} if released else {}
    for item in released:
        _drop_released_rows(cluster.cluster, databases[item.case], item, context.log)
    dead_runs = sorted({item.run_id for item in released if item.run_id})
    for run_id in dead_runs:
        run = context.instance.get_run_by_id(run_id)
        if run is not None and run.status in IN_FLIGHT:
            taken = sum(item.run_id == run_id for item in released)
            context.instance.report_run_failed(
                run, f"loader_assets: the run's leases expired or its process died ({taken} notices taken back)"
            )
    message = f"took back {len(released)} locks of runs {dead_runs}" if released else "no stale lock"
    for layout in case_layouts(store.db).values():  # the workers' partitions = the catalog's attempts
        outcome = reconcile(store, cluster.cluster, layout, log=context.log.info)
        if outcome.changed:
            message += f"; {layout.case}: {sum(map(len, outcome.dropped.values()))} stray partitions dropped, "
            message += f"{len(outcome.missing)} missing"
    context.log.info(message)
    return dg.SkipReason(message)


def _drop_released_rows(cluster: Cluster, database: str, item: Released, log: dg.DagsterLogManager) -> None:
    """The released attempt is not `done`: whatever it wrote goes now (the next claim would drop it anyway)."""
    if item.attempt_id is None or item.worker is None:
        return
    target = Target(item.table, item.chunk, item.overlap, item.worker)
    drop_attempt_rows(cluster, database, target, [item.attempt_id], log.warning)


def _validation_request(
    context: dg.SensorEvaluationContext, catalog_id: str, case: str, level: int, due: list[tuple[TableLayout, Gate]]
) -> dg.RunRequest:
    """One run validating the due tables of a level. The key moves on with the data (generations), a
    validation that died (validations), a run that failed before validating (failed runs) and a new catalog
    on the same instance."""
    gate_tag = f"{case}:{level}:" + ",".join(f"{table.name}@{gate.generation}" for table, gate in due)
    failed = len(context.instance.get_run_records(dg.RunsFilter(tags={tags.GATE: gate_tag}, statuses=ENDED_BADLY)))
    validations = ",".join(str(gate.validations) for _table, gate in due)
    keys = [validation_key(case, table) for table, _gate in due]
    context.log.info(f"validating {', '.join(key.to_user_string() for key in keys)}")
    return dg.RunRequest(
        run_key=f"gate:{catalog_id}:{gate_tag}:{validations}:{failed}",
        asset_selection=keys,
        tags={tags.CASE: case, tags.LEVEL: str(level), tags.GATE: gate_tag},
    )


def all_sensors(validation_keys: list[dg.AssetKey]) -> list[dg.SensorDefinition]:
    sensors = [scheduled_loads, saved_selections, stale_sweeper]
    return sensors + ([level_gates_sensor(validation_keys)] if validation_keys else [])
