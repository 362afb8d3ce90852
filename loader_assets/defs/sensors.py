"""Sensors that launch and tidy runs. Each tick is small: a bounded number of notices, a few queries.

- `scheduled_loads`: turns pending schedules (a frozen selection) into queued runs.
- `selection_<name>`: one per saved selection, requests runs for what it selects that may run now.
- `level_gates`: once a table's load level is done, runs its validation (levels 2 and 4).
- `stale_sweeper`: takes back locks of dead or silent runs, drops their partial rows, fails their runs.
- `case_overviews`: each case's overview asset, re-materialized when it changed.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,  # define_asset_job's type
)

from loader_assets import levels, settings, tags
from loader_assets.catalog import schedules
from loader_assets.catalog.claims import behind_closed_gates
from loader_assets.catalog.gates import Gate
from loader_assets.catalog.layout import TableLayout, case_layouts
from loader_assets.catalog.store import Released, Store
from loader_assets.catalog.time import utcnow
from loader_assets.catalog.views import Overview, overview
from loader_assets.defs.assets import gate_job_name, overview_key, validation_key
from loader_assets.defs.jobs import load_notices_job, run_request
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.defs.runs import IN_FLIGHT, first_in_flight
from loader_assets.engine.level_state import holder_alive_here, validation_due
from loader_assets.engine.load import Target, drop_attempt_rows
from loader_assets.engine.plan import plan_runs
from loader_assets.engine.reconcile import reconcile
from loader_assets.selection.saved import SavedSelection, matching_schedulable, saved_selections
from loader_assets.workers.cluster import Cluster

ENDED_BADLY = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
NOTICES_PER_TICK = 20_000  # what one tick may hand out; the rest waits for the next tick
SCANNED_PER_TICK = 200_000  # waiting notices a tick looks at for an open gate
SCHEDULES_PER_TICK = 5
PENDING_SCHEDULES_READ = 100  # schedules waiting for a gate are read again each tick
# The daemon evaluates its sensors every 5 s at best: these two follow a level's end within a loop or two.
SCHEDULE_INTERVAL_SECONDS = 2
GATE_INTERVAL_SECONDS = 2
OVERVIEW_INTERVAL_SECONDS = 10


@dg.sensor(
    job=load_notices_job,
    minimum_interval_seconds=SCHEDULE_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns schedules (`loader-assets schedule`, `Selection.schedule()`) into queued load runs, one "
    "per case, level and worker; a child level once its director's gate passed.",
)
def scheduled_loads(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: ClusterResource
) -> dg.SensorResult:
    """Frozen selections handed over by `Selection.schedule()` / `loader-assets schedule` become queued runs;
    notices of a level behind a closed gate stay in their schedule until it passes."""
    store = catalog.store()
    planned: dict[int, tuple[schedules.Schedule, list[int], list[dg.RunRequest]]] = {}
    budget = NOTICES_PER_TICK  # a schedule of millions is served over many ticks, each well under the timeout
    for row in schedules.pending(store.db, PENDING_SCHEDULES_READ):
        if len(planned) == SCHEDULES_PER_TICK or budget <= 0:
            break
        try:
            ready, held = _ready_part(store, row.waiting_ids, budget)
            if not ready:
                continue
            budget -= len(ready)
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


def _ready_part(store: Store, waiting: list[int], budget: int) -> tuple[list[int], set[int]]:
    """Up to `budget` of the waiting notices whose gate is open, in schedule order, and the ones seen held
    behind a closed gate (read in slices: a held level of a million is not read whole each tick)."""
    ready: list[int] = []
    held: set[int] = set()
    for start in range(0, min(len(waiting), SCANNED_PER_TICK), budget):
        part = waiting[start : start + budget]
        with store.db.read() as connection:
            closed = behind_closed_gates(connection, part)
        held |= closed
        ready += [i for i in part if i not in closed][: budget - len(ready)]
        if len(ready) >= budget:
            break
    return ready, held


def selection_sensor(selection: SavedSelection) -> dg.SensorDefinition:
    """The sensor of one saved selection: its own on/off switch and ticks in the UI. Each tick requests runs
    for what it selects that is ready, unlocked and past its gate; it waits while its earlier runs are queued or
    running, so no notice is requested twice; run keys carry the attempt numbers, so a retry is a new run."""
    name = selection.name

    @dg.sensor(
        name=f"selection_{name}",
        job=load_notices_job,
        minimum_interval_seconds=settings.sensor_interval(),
        default_status=dg.DefaultSensorStatus.RUNNING if selection.enabled else dg.DefaultSensorStatus.STOPPED,
        description=f"Saved selection {name} over {selection.target}: `{selection.query}` (priority "
        f"{selection.priority}; higher first). Loads what it selects that may load now.",
    )
    def load_selection(
        context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: ClusterResource
    ) -> dg.SensorResult:
        store = catalog.store()
        row = next((s for s in saved_selections(store) if s.name == name), None)
        if row is None or not row.enabled:
            return dg.SensorResult(skip_reason=f"{name}: {'deleted' if row is None else 'disabled'} in the catalog")
        in_flight = first_in_flight(context.instance, tags.SELECTION, name)
        if in_flight:
            return dg.SensorResult(skip_reason=f"{name}: waiting for run {in_flight}")
        ids = matching_schedulable(store, row, utcnow(), NOTICES_PER_TICK)
        if not ids:
            return dg.SensorResult(skip_reason=f"{name}: nothing to load")
        plans, attempts = plan_runs(store, cluster.cluster, ids, priority=row.priority)
        context.log.info(f"{name}: {len(ids)} notices in {len(plans)} runs")
        return dg.SensorResult(
            run_requests=[run_request(plan, f"selection-{name}", attempts, {tags.SELECTION: name}) for plan in plans]
        )

    return load_selection


@dg.sensor(
    minimum_interval_seconds=OVERVIEW_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Materializes each case's overview asset (notices per level and status, gates, locks, paused) "
    "whenever it changed; no run.",
)
def case_overviews(context: dg.SensorEvaluationContext, catalog: CatalogResource) -> dg.SensorResult:
    db = catalog.store().db
    seen = json.loads(context.cursor) if context.cursor else {}
    events = []
    for case in sorted(case_layouts(db)):
        found = overview(db, case)
        digest = hashlib.sha1(json.dumps(asdict(found), sort_keys=True, default=str).encode()).hexdigest()
        if seen.get(case) != digest:
            events.append(overview_materialization(found))
            seen[case] = digest
    return dg.SensorResult(asset_events=events, cursor=json.dumps(seen), skip_reason=None if events else "no change")


def overview_materialization(found: Overview) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(
        asset_key=overview_key(found.case),
        description=f"case {found.case}: {found.state}",
        metadata={
            "overview": dg.MetadataValue.md(found.markdown()),
            "state": found.state,
            "counts": dg.MetadataValue.json(found.counts),
            "gates": dg.MetadataValue.json(found.gates),
            "held locks": found.held_locks,
            "stale locks": found.stale_locks,
            "unfinished chunks (first)": dg.MetadataValue.json(found.unfinished_chunks),
        },
    )


def validation_alive(instance: dg.DagsterInstance) -> Callable[[Gate], bool]:
    """A validation holding a gate is dead once its run has ended (or its process died on this host)."""

    def alive(verdict: Gate) -> bool:
        run = instance.get_run_by_id(verdict.validating_run or "")
        if run is not None and run.status not in IN_FLIGHT:
            return False
        return holder_alive_here(verdict)

    return alive


def level_gates_sensor(gate_jobs: list[UnresolvedAssetJobDefinition]) -> dg.SensorDefinition:
    """Runs a table's validation once all its notices are done and its gate is pending at a new generation, or
    its last validation died (the run key carries both)."""

    @dg.sensor(
        name="level_gates",
        jobs=gate_jobs,
        minimum_interval_seconds=GATE_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Validates a table (levels 2 and 4, in the case's gate_level_N job) once its load level is "
        "done and its gate pending; a passed gate opens the next level.",
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


@dg.sensor(
    minimum_interval_seconds=settings.sensor_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Takes back the locks of dead or silent runs (their rows dropped, their runs failed) and keeps "
    "every worker's partitions equal to the catalog's attempts.",
)
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
        job_name=gate_job_name(case, level),
        asset_selection=keys,
        tags={tags.CASE: case, tags.LEVEL: str(level), tags.GATE: gate_tag},
    )


def all_sensors(
    gate_jobs: list[UnresolvedAssetJobDefinition], selections: list[SavedSelection]
) -> list[dg.SensorDefinition]:
    sensors = [scheduled_loads, stale_sweeper, case_overviews, *(selection_sensor(s) for s in selections)]
    return sensors + ([level_gates_sensor(gate_jobs)] if gate_jobs else [])
