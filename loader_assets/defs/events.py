"""Engine reports translated into Dagster: materializations, check results and failures."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

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
    """The failure a load step ends with, or None: a closed gate (nothing loaded), failed files, lost leases."""
    gate_refusals = sorted({refused.message for refused in report.gate_refusals})
    if gate_refusals and not report.loaded:
        return dg.Failure(description=f"refused: {gate_refusals[0]}", metadata={"refused": len(report.skipped)})
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


def report_load(context: dg.OpExecutionContext, report: LoadReport) -> None:
    """Skipped notices are logged with their holder; failures fail the step, naming the files."""
    for notice_id, refused in sorted(report.skipped.items()):
        context.log.warning(f"notice {notice_id} skipped: {refused}")
    failure = load_failure(report)
    if failure is not None:
        raise failure


def check_results(key: dg.AssetKey, validation: Validation) -> Iterator[dg.AssetCheckResult]:
    for outcome in validation.outcomes:
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=outcome.name,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
            metadata=outcome.metadata,
        )
