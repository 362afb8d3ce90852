"""Engine reports translated into Dagster: materializations, check results and failures."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent  # no public API plans a partition

from loader_assets.catalog.claims import Refusal
from loader_assets.catalog.store import Owner
from loader_assets.engine.load import Loaded, Loader, LoadReport
from loader_assets.engine.validate import Validation

SHOWN_ERRORS = 20


def materialization(items: list[Loaded]) -> dg.AssetMaterialization:
    """The materialization of one chunk (or regular table): its notices this run loaded."""
    first = items[0]
    return dg.AssetMaterialization(
        asset_key=[first.case, first.table],
        partition=None if first.chunk is None else str(first.chunk),
        metadata={
            "rows": sum(i.rows for i in items),
            "bytes": sum(i.bytes for i in items),
            "seconds": round(sum(i.seconds for i in items), 3),
            "worker": first.worker,
            "files": [i.path for i in items],
            "attempt ids": [i.attempt_id for i in items],
        },
    )


def load_in_run(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, loader: Loader, notice_ids: list[int], force: bool
) -> LoadReport:
    """Load the notices in this step: a materialization per chunk as soon as it is loaded, a line per worker."""
    report = loader.load(
        notice_ids, Owner.current(context.run_id), force=force, progress=context.log.info,
        on_chunk=lambda items: context.log_event(materialization(items)),
    )  # fmt: skip
    context.log.info(f"loaded {len(report.loaded)} notices ({report.rows} rows), {len(report.failed)} failed")
    report_load(context, report)
    return report


def load_failure(report: LoadReport) -> dg.Failure | None:
    """The failure a load step ends with, or None: failed files, lost leases (a closed gate is a wait)."""
    if report.failed:
        errors = [f"notice {nid}: {error}" for nid, error in sorted(report.failed.items())]
        return dg.Failure(
            description=f"{len(report.failed)} notices failed; first: {errors[0]}",
            metadata={
                "failed": len(report.failed),
                "errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors[:SHOWN_ERRORS])),
            },
        )
    if report.lost:
        return dg.Failure(description=f"lease lost on {len(report.lost)} notices; their rows were discarded")
    return None


def report_load(context: dg.OpExecutionContext | dg.AssetExecutionContext, report: LoadReport) -> None:
    """Skipped notices are logged with their holder; each failed chunk is marked failed with its error (its
    partition shows Failed); failures fail the step, naming the files."""
    gate_waits = sorted({refused.message for refused in report.gate_refusals})
    if gate_waits:
        context.log.warning(f"{len(report.gate_refusals)} notices wait for their gate, not loaded: {gate_waits[0]}")
    for notice_id, refused in sorted(report.skipped.items()):
        if refused.reason is not Refusal.GATE_CLOSED:
            context.log.warning(f"notice {notice_id} skipped: {refused}")
    for target, error in sorted(report.failed_targets.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or -1)):
        _mark_failed(context, target, error)
    failure = load_failure(report)
    if failure is not None:
        raise failure


def _mark_failed(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, target: tuple[str, str, int | None], error: str
) -> None:
    """Dagster counts a partition failed when a run that planned it failed without materializing it: plan it now
    (this run fails just after). The error goes with the partition as an observation (Dagster's own failure
    events are not stored by its open-source storages)."""
    case, table, chunk = target
    key, partition = dg.AssetKey([case, table]), None if chunk is None else str(chunk)
    planned = DagsterEvent.build_asset_materialization_planned_event(
        context.job_name,
        context.get_step_execution_context().step.key,
        AssetMaterializationPlannedData(key, partition=partition),
    )
    context.instance.report_dagster_event(planned, run_id=context.run_id)
    context.log_event(dg.AssetObservation(key, partition=partition, description=f"failed: {error}",
                                          metadata={"failed": error}))  # fmt: skip


def check_results(key: dg.AssetKey, validation: Validation) -> Iterator[dg.AssetCheckResult]:
    for outcome in validation.outcomes:
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=outcome.name,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
            metadata=outcome.metadata,
        )
