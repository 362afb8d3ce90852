"""Sensors that launch and tidy runs. Each tick is small (a bounded number of notices, a few queries) and only
reads and requests: what changes the workers happens in runs. A catalog or a server that cannot be reached makes
a tick skip, saying so, and the next tick tries again.

- `scheduled_loads`: turns pending schedules (a frozen selection) into queued runs.
- `selection_<name>`: one per saved selection, requests runs for what it selects that may run now.
- `level_gates`: once a table's load level is done, runs its validation (levels 2 and 4).
- `stale_sweeper`: when holds lapsed or died, or workers differ from the catalog, runs the `sweep` job.
- `case_overviews`: each case's overview asset, re-materialized when it changed.
- `unreported_loads`: loaded chunks Dagster does not show (a run killed before its event), materialized from the
  catalog.
"""

import base64
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import dagster as dg

from loader_assets import levels, tags
from loader_assets.catalog import schedules
from loader_assets.catalog.claims import held_back
from loader_assets.catalog.gates import Gate
from loader_assets.catalog.layout import CaseLayout, TableLayout, case_layouts
from loader_assets.catalog.store import Store
from loader_assets.catalog.time import utcnow
from loader_assets.catalog.views import Overview, chunk_statuses, overview
from loader_assets.defs.assets import AssetJob, gate_job_name, overview_key, validation_key
from loader_assets.defs.executors import executor, step_per_worker
from loader_assets.defs.jobs import IN_FLIGHT, SWEEP_JOB, load_notices_job, notices_of_run, run_request, sweep_job
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.defs.unreported import signature, unreported
from loader_assets.engine.level_state import validation_due, validator_alive
from loader_assets.engine.plan import plan_runs
from loader_assets.engine.sweep import findings
from loader_assets.problems import CatalogDown, ServerDown
from loader_assets.selection.saved import SavedSelection, matching_schedulable, saved_selections
from loader_assets.settings import Settings

ENDED_BADLY = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
NOTICES_PER_TICK = 20_000  # what one tick may hand out; the rest waits for the next tick
SCANNED_PER_TICK = 200_000  # waiting notices a tick looks at for an open gate
SCHEDULES_PER_TICK = 5
PENDING_SCHEDULES_READ = 100  # schedules waiting for a gate are read again each tick
# The daemon evaluates its sensors every 5 s at best: these two follow a level's end within a loop or two.
SCHEDULE_INTERVAL_SECONDS = 2
GATE_INTERVAL_SECONDS = 2
OVERVIEW_INTERVAL_SECONDS = 10
REPORT_INTERVAL_SECONDS = 60
REPORTS_PER_TICK = 1000  # materializations one tick reports; the rest, the next tick
SKY_MAP_SECONDS = 300  # a loading case's sky map is drawn again at most this often
SKY_MAP_WIDTH = 720  # pixels: tens of kB of PNG in the overview's metadata
SWEEP_RETRY_SECONDS = 300  # findings a sweep could not clear (a worker still down) are swept again this often


def skips_when_down(evaluate: Callable[..., Any]) -> Callable[..., Any]:
    """A tick that meets the catalog or a server down skips with the problem's line; the next tick tries again."""

    @functools.wraps(evaluate)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return evaluate(*args, **kwargs)
        except (CatalogDown, ServerDown) as problem:
            return dg.SkipReason(problem.line())

    return guarded


def per_worker(catalog: CatalogResource) -> bool:
    """Whether the code location's executor loads a share per MariaDB worker in each run (Celery)."""
    return step_per_worker(executor(catalog.settings))


@dg.sensor(
    job=load_notices_job,
    minimum_interval_seconds=SCHEDULE_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns schedules (`loader-assets schedule`, `Selection.schedule()`) into queued load runs, one "
    "per case, level and worker; a child level once its director's gate passed.",
)
@skips_when_down
def scheduled_loads(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: ClusterResource
) -> dg.SensorResult:
    """Frozen selections handed over by `Selection.schedule()` / `loader-assets schedule` become queued runs;
    notices of a level behind a closed gate stay in their schedule until it passes. A notice is submitted once
    a run for it exists in the instance: requests the daemon never turned into runs are asked again, under the
    same run keys (the same notices at the same attempts), so nothing is lost and nothing runs twice."""
    store = catalog.store()
    shares = per_worker(catalog)
    requests: list[dg.RunRequest] = []
    served = 0
    budget = NOTICES_PER_TICK  # a schedule of millions is served over many ticks, each well under the timeout
    for row in schedules.pending(store.db, PENDING_SCHEDULES_READ):
        if served == SCHEDULES_PER_TICK or budget <= 0:
            break
        row = _record_existing_runs(context.instance, store, row)
        if row.state != "pending":
            continue
        try:
            ready, held = _ready_part(store, row.waiting_ids, budget)
            if not ready:
                continue
            budget -= len(ready)
            plans, attempts = plan_runs(store, cluster.cluster, ready, priority=row.priority, force=row.force)
        except ServerDown as problem:  # this row waits for the next tick; the others go on
            context.log.warning(f"schedule {row.id} not planned, retried next tick: {problem.line()}")
            continue
        served += 1
        requests += [
            run_request(p, f"schedule-{row.id}", attempts, per_worker=shares, extra_tags={tags.SCHEDULE: str(row.id)})
            for p in plans
        ]  # fmt: skip
        waiting = f"; {len(held)} wait for their gate or their case's resume" if held else ""
        context.log.info(f"schedule {row.id}: {len(ready)} notices in {len(plans)} runs{waiting}")
    return dg.SensorResult(run_requests=requests, skip_reason=None if requests else "no pending schedule may start")


def _record_existing_runs(instance: dg.DagsterInstance, store: Store, row: schedules.Schedule) -> schedules.Schedule:
    """The schedule with what the instance's runs of it cover marked submitted."""
    runs = instance.get_runs(dg.RunsFilter(tags={tags.SCHEDULE: str(row.id)}))
    covered = {notice for run in runs for notice in notices_of_run(run)}
    if covered == set(row.submitted_ids or ()) and sorted(r.run_id for r in runs) == sorted(row.runs or ()):
        return row
    return schedules.record_runs(store.db, row, [run.run_id for run in runs], sorted(covered))


def _ready_part(store: Store, waiting: list[int], budget: int) -> tuple[list[int], set[int]]:
    """Up to `budget` of the waiting notices whose gate is open and whose case is active, in schedule order, and
    the ones seen held back (read in slices: a held level of a million is not read whole each tick)."""
    ready: list[int] = []
    held: set[int] = set()
    for start in range(0, min(len(waiting), SCANNED_PER_TICK), budget):
        part = waiting[start : start + budget]
        with store.db.read() as connection:
            held_now = held_back(connection, part)
        held |= held_now
        ready += [i for i in part if i not in held_now][: budget - len(ready)]
        if len(ready) >= budget:
            break
    return ready, held


def first_in_flight(instance: dg.DagsterInstance, tag: str, value: str) -> str | None:
    """Id of a queued or running run carrying the tag, if any."""
    records = instance.get_run_records(dg.RunsFilter(tags={tag: value}, statuses=IN_FLIGHT), limit=1)
    return records[0].dagster_run.run_id if records else None


def selection_sensor(selection: SavedSelection, settings: Settings) -> dg.SensorDefinition:
    """The sensor of one saved selection: its own on/off switch and ticks in the UI. Each tick requests runs
    for what it selects that is ready, unlocked and past its gate; it waits while its earlier runs are queued or
    running, so no notice is requested twice; run keys carry the attempt numbers, so a retry is a new run."""
    name = selection.name

    @dg.sensor(
        name=f"selection_{name}",
        job=load_notices_job,
        minimum_interval_seconds=settings.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING if selection.enabled else dg.DefaultSensorStatus.STOPPED,
        description=f"Saved selection {name} over {selection.target}: `{selection.query}` (priority "
        f"{selection.priority}; higher first). Loads what it selects that may load now.",
    )
    @skips_when_down
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
        shares = per_worker(catalog)
        return dg.SensorResult(
            run_requests=[
                run_request(plan, f"selection-{name}", attempts, per_worker=shares, extra_tags={tags.SELECTION: name})
                for plan in plans
            ]
        )

    return load_selection


@dg.sensor(
    minimum_interval_seconds=OVERVIEW_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Materializes each case's overview asset (notices per level and status, gates, locks, paused) "
    "whenever it changed; no run.",
)
@skips_when_down
def case_overviews(context: dg.SensorEvaluationContext, catalog: CatalogResource) -> dg.SensorResult:
    store = catalog.store()
    seen = _overview_cursor(context.cursor)
    events = []
    now = time.time()
    for case, layout in sorted(case_layouts(store.db).items()):
        found = overview(store, case)
        digest = hashlib.sha1(json.dumps(asdict(found), sort_keys=True, default=str).encode()).hexdigest()
        last_digest, mapped_at = seen.get(case, ("", 0.0))
        if last_digest == digest:
            continue
        # The sky map reads every notice of the case: drawn at most every SKY_MAP_SECONDS while the case loads,
        # and always once nothing of it runs (the picture an operator comes back to is the latest).
        settled = not any(counts.get("running", 0) for counts in found.counts.values())
        if settled or now - mapped_at >= SKY_MAP_SECONDS:
            sky = sky_map_markdown(store, layout)
            mapped_at = now
        else:
            sky = None
        events.append(overview_materialization(found, sky))
        seen[case] = (digest, mapped_at)
    return dg.SensorResult(asset_events=events, cursor=json.dumps(seen), skip_reason=None if events else "no change")


def _overview_cursor(cursor: str | None) -> dict[str, tuple[str, float]]:
    """case -> (digest of its last overview, when its sky map was last drawn); an older cursor held digests only."""
    found = json.loads(cursor) if cursor else {}
    return {case: (value, 0.0) if isinstance(value, str) else (value[0], value[1]) for case, value in found.items()}


def sky_map_markdown(store: Store, layout: CaseLayout) -> str:
    """The case's sky map as a small PNG inlined in markdown (the UI shows it with the overview)."""
    from loader_assets import skymap  # matplotlib is imported only when drawn

    shown = chunk_statuses(store, layout.case)
    image = skymap.png(layout.chunker, shown["chunk"], shown["status"].tolist(), f"case {layout.case}",
                       SKY_MAP_WIDTH)  # fmt: skip
    return f"![sky map of {layout.case}](data:image/png;base64,{base64.b64encode(image).decode()})"


def overview_materialization(found: Overview, sky_map: str | None = None) -> dg.AssetMaterialization:
    metadata: dict[str, Any] = {
        "overview": dg.MetadataValue.md(found.markdown()),
        "state": found.state,
        "counts": dg.MetadataValue.json(found.counts),
        "gates": dg.MetadataValue.json(found.gates),
        "held locks": found.held_locks,
        "stale locks": found.stale_locks,
        "unfinished chunks (first)": dg.MetadataValue.json(found.unfinished_chunks),
    }
    if sky_map is not None:
        metadata["sky map"] = dg.MetadataValue.md(sky_map)
    return dg.AssetMaterialization(
        asset_key=overview_key(found.case), description=f"case {found.case}: {found.state}", metadata=metadata
    )


@dg.sensor(
    minimum_interval_seconds=REPORT_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Materializes, from the catalog, the loaded chunks Dagster does not show (a run killed between "
    "the catalog's finish and its event, or events lost), once no run in flight may report them; no run.",
)
@skips_when_down
def unreported_loads(context: dg.SensorEvaluationContext, catalog: CatalogResource) -> dg.SensorResult:
    """A case is looked at again only when it changed since it was last found settled (a notice done, a
    materialization logged or wiped) or while some of its chunks waited for a run."""
    store = catalog.store()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    settled: dict[str, str] = {}
    events: list[dg.AssetMaterialization] = []
    for case, layout in sorted(case_layouts(store.db).items()):
        if len(events) >= REPORTS_PER_TICK:
            break  # the cases left are looked at next tick
        current = signature(context.instance, store, layout)
        if seen.get(case) == current:
            settled[case] = current
            continue
        found = unreported(context.instance, store, case, REPORTS_PER_TICK - len(events))
        events += found.events
        if not found.events and not found.waiting:
            settled[case] = current
    if events:
        context.log.warning(f"{len(events)} loaded chunks were not shown in Dagster; reported from the catalog")
    return dg.SensorResult(
        asset_events=events, cursor=json.dumps(settled), skip_reason=None if events else "every loaded chunk is shown"
    )


def validation_alive(instance: dg.DagsterInstance) -> Callable[[Gate], bool]:
    """A validation holding a gate is dead once its run has ended, its lease lapsed or its process died on this
    host."""

    def alive(verdict: Gate) -> bool:
        run = instance.get_run_by_id(verdict.validating_run or "")
        if run is not None and run.status not in IN_FLIGHT:
            return False
        return validator_alive(verdict)

    return alive


def level_gates_sensor(gate_jobs: list[AssetJob]) -> dg.SensorDefinition:
    """Runs a table's validation once all its notices are done and its gate is pending at a new generation, or
    its last validation died (the run key carries both)."""

    @dg.sensor(
        name="level_gates",
        jobs=gate_jobs or None,
        minimum_interval_seconds=GATE_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Validates a table (levels 2 and 4, in the case's gate_level_N job) once its load level is "
        "done and its gate pending; a passed gate opens the next level.",
    )
    @skips_when_down
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


def stale_sweeper_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="stale_sweeper",
        job=sweep_job,
        minimum_interval_seconds=settings.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs the sweep job when holds lapsed or their owner died (their notices taken back, rows "
        "dropped, runs failed), or when a worker's partitions differ from the catalog's attempts.",
    )
    @skips_when_down
    def stale_sweeper(
        context: dg.SensorEvaluationContext, catalog: CatalogResource, cluster: ClusterResource
    ) -> dg.SensorResult:
        """Reads what a sweep would do; the sweep itself runs in a run, never in this evaluation."""
        running = first_in_flight(context.instance, tags.SWEEP, "1")
        if running:
            return dg.SensorResult(skip_reason=f"sweep run {running} in progress")
        found = findings(catalog.store(), cluster.cluster)
        if not found:
            return dg.SensorResult(skip_reason="no stale lock; workers match the catalog")
        window = int(time.time() // SWEEP_RETRY_SECONDS)
        digest = hashlib.sha1(found.key().encode()).hexdigest()[:16]
        context.log.info(f"sweeping: {len(found.holds)} holds to take back, cases to reconcile: {found.cases}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"sweep:{digest}:{window}", job_name=SWEEP_JOB, tags={tags.SWEEP: "1"})]
        )

    return stale_sweeper


def all_sensors(
    gate_jobs: list[AssetJob], selections: list[SavedSelection], settings: Settings
) -> list[dg.SensorDefinition]:
    return [
        scheduled_loads, stale_sweeper_sensor(settings), case_overviews, unreported_loads,
        level_gates_sensor(gate_jobs),
        *(selection_sensor(s, settings) for s in selections),
    ]  # fmt: skip
