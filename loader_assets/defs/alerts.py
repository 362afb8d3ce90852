"""The `alerts` sensor: what went wrong reaches the operator by email and/or webhook (`loader_assets.alerts`), each
finding once — a failed load or validation run (read from the instance), a failed gate, a stalled statement and a
parked notice (read from the catalog)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from loader_assets import tags
from loader_assets.alerts import deliver
from loader_assets.catalog.findings import Finding, failed_gates, parked, record_sent, stalls, unsent
from loader_assets.defs.resources import CatalogResource
from loader_assets.defs.sensors import skips_when_down
from loader_assets.settings import Settings

LOOK_BACK = timedelta(days=1)  # failed runs older than this when the sensor first runs are not told
ALERTS_PER_TICK = 50


def failed_runs(instance: dg.DagsterInstance) -> list[Finding]:
    """Load and validation runs that failed lately (their cause read only for the ones not told yet)."""
    since = datetime.now(UTC) - LOOK_BACK
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], updated_after=since),
                                       limit=500)  # fmt: skip
    found = []
    for record in records:
        run = record.dagster_run
        if tags.CASE not in run.tags:  # not one of the loader's runs (a sweep, a run of someone else's)
            continue
        level = run.tags.get(tags.LEVEL)
        found.append(Finding(f"run:{run.run_id}", "run", run.tags.get(tags.CASE), int(level) if level else None,
                             None, run.tags.get(tags.WORKER), "", f"the run {run.run_id} in the Dagster UI; "
                             f"loader-assets status --case {run.tags.get(tags.CASE)}"))  # fmt: skip
    return found


def with_cause(instance: dg.DagsterInstance, finding: Finding) -> Finding:
    """A failed run's finding with the first step failure's description."""
    if finding.kind != "run":
        return finding
    run_id = finding.key.split(":", 1)[1]
    cause = "the run failed"
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = entry.dagster_event.step_failure_data if entry.dagster_event else None
        if data is not None:
            described = data.user_failure_data.description if data.user_failure_data else None
            cause = described or (data.error.message.strip().splitlines()[0] if data.error else cause)
            break
    return Finding(finding.key, finding.kind, finding.case, finding.level, finding.table, finding.worker, cause,
                   finding.more)  # fmt: skip


def alerts_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="alerts",
        minimum_interval_seconds=settings.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Tells the operator, once each, by email (LOADER_ALERT_SMTP_HOST, LOADER_ALERT_TO) and/or webhook "
        "(LOADER_ALERT_WEBHOOK): failed load or validation runs, failed gates, stalls, parked notices.",
    )
    @skips_when_down
    def alerts(context: dg.SensorEvaluationContext, catalog: CatalogResource) -> dg.SkipReason:
        transport = catalog.settings.alerts
        if not transport.enabled:
            return dg.SkipReason("no alert transport: set LOADER_ALERT_SMTP_HOST and LOADER_ALERT_TO, or "
                                 "LOADER_ALERT_WEBHOOK")  # fmt: skip
        store = catalog.store()
        found = [*failed_runs(context.instance), *failed_gates(store.db), *stalls(store.db),
                 *parked(store.db, store.max_attempts)]  # fmt: skip
        delivered, failures = [], []
        for finding in unsent(store.db, found)[:ALERTS_PER_TICK]:
            finding = with_cause(context.instance, finding)
            errors = deliver(finding, transport)
            if errors:
                failures += errors
            else:
                delivered.append(finding)
        record_sent(store.db, delivered)
        if failures:
            context.log.warning(f"alerts not delivered, tried again next tick: {failures[0]}")
        return dg.SkipReason(f"{len(delivered)} alerts sent" + (f"; {len(failures)} not delivered" if failures else ""))

    return alerts
