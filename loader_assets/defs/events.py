"""Engine reports translated into Dagster, and Dagster's failures back into problems.

- A loaded chunk: a materialization of its partition, logged as soon as it is loaded.
- A loaded chunk whose event the instance failed to write (its server restarting): logged again by its run a little
  later (`ChunkEvents`).
- A loaded chunk its run never reported (killed between the catalog's finish and the event) or whose event the
  instance lost: reported from the catalog (`unreported`).
- A failed chunk: the catalog keeps its failure (status, attempt, error); Dagster shows it as an observation of
  the partition carrying the error, beside the run's failure. Dagster's own "failed partition" status needs the
  run to have planned that partition, which only a run targeting it creates: a run per failed chunk, or a range
  that would mark every untouched chunk failed too. The overview asset lists the unfinished chunks.
- A problem that stopped a step (a server down, an interrupt) travels as the step failure's metadata, so the
  command that ran it ends with the same problem and exit code (`problem_of`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dagster as dg

from loader_assets.catalog.claims import Refusal
from loader_assets.catalog.store import Owner
from loader_assets.defs.instance import SqliteEventFiles, first_line, keep_connections, storage_unreachable
from loader_assets.engine.load import ChunkKey, Loaded, Loader, LoadReport
from loader_assets.engine.validate import CheckOutcome, Validation
from loader_assets.problems import InstanceDown, Interrupted, Problem, as_record, from_record
from loader_assets.wording import counted

SHOWN_ERRORS = 20
RETRY_SECONDS = 10  # between two tries to log the chunks held back while the instance's writes fail

ATTEMPT_IDS = "attempt ids"  # what a materialization says it reported (`unreported` reads it back)


def materialization(
    items: list[Loaded], *, description: str | None = None, timed: bool = True
) -> dg.AssetMaterialization:
    """The materialization of one chunk (or regular table): its notices this run loaded (`timed`: with the
    seconds their loads took)."""
    first = items[0]
    seconds = {"seconds": round(sum(i.seconds for i in items), 3)} if timed else {}
    return dg.AssetMaterialization(
        asset_key=[first.case, first.table],
        partition=None if first.chunk is None else str(first.chunk),
        description=description,
        metadata={
            "rows": sum(i.rows for i in items),
            "bytes": sum(i.bytes for i in items),
            **seconds,
            "worker": first.worker,
            "files": [i.path for i in items],
            ATTEMPT_IDS: [i.attempt_id for i in items],
        },
    )


def load_in_run(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, loader: Loader, notice_ids: list[int], force: bool
) -> LoadReport:
    """Load the notices in this step: a materialization per chunk as soon as it is loaded, a line per worker."""
    keep_connections(context.instance)  # a run the daemon launched opened its instance itself
    files = SqliteEventFiles(context.instance, context.run.run_id)
    events = ChunkEvents(context, written=files.logged)
    try:
        with files:
            report = loader.load(
                notice_ids, Owner.current(context.run.run_id), force=force, progress=context.log.info,
                on_chunk=events.log,
            )  # fmt: skip
    except Problem as problem:  # the catalog gone mid-load: the run says so (what it held, it gave back or lapses)
        with contextlib.suppress(Exception):  # what stays held back, the catalog's report shows later
            events.flush()
        raise failure(problem) from problem
    events.finish()
    context.log.info(
        f"loaded {counted(len(report.loaded), 'notice')} ({report.rows} rows), {len(report.failed)} failed"
    )
    report_load(context, report)
    return report


class ChunkEvents:
    """A materialization per loaded chunk, logged as it is loaded. One the instance fails to write (its server
    restarting: Dagster raises) does not stop the load: it and the chunks after it are held back and logged again
    RETRY_SECONDS later, or when the load is over. The one whose write failed may then show twice (a write can fail
    after its event is stored; Dagster's public API has no way to finish it)."""

    def __init__(
        self, context: dg.OpExecutionContext | dg.AssetExecutionContext, written: Callable[[], None]
    ) -> None:  # `written`: told after each event stored (`SqliteEventFiles.logged`)
        self.context, self.written = context, written
        self.held_back: dict[ChunkKey, list[Loaded]] = {}
        self.retry_at = 0.0

    def log(self, items: list[Loaded]) -> None:
        first = items[0]
        self.held_back[first.case, first.table, first.chunk] = items
        if time.monotonic() >= self.retry_at and self.flush() is not None:
            self.retry_at = time.monotonic() + RETRY_SECONDS

    def flush(self) -> Exception | None:
        """Log the held-back chunks in order; the storage error that stopped it, if one did."""
        for key, items in list(self.held_back.items()):
            try:
                self.context.log_event(materialization(items))
            except Exception as error:
                if not storage_unreachable(error):
                    raise
                return error
            del self.held_back[key]
            self.written()
        return None

    def finish(self) -> None:
        """Log the held-back chunks; the instance still down is the step's failure (the catalog has the loads: the
        next `load` or the daemon's sensor reports them once it is back)."""
        if (error := self.flush()) is not None:
            down = InstanceDown(
                f"the Dagster instance's storage cannot be written: {first_line(error)}",
                "start its server: the chunks loaded are then reported from the catalog (the next `load`, the daemon)",
            )
            raise failure(down) from error


def failure(problem: Problem, **metadata: object) -> dg.Failure:
    """The step failure carrying `problem` back to whoever reads the run (`problem_of`)."""
    return dg.Failure(description=problem.line(), metadata={**as_record(problem), **metadata})


def error_of(failures: Sequence[dg.DagsterEvent]) -> str | None:
    """The first line of the first step failure's error (for a failure that carries no problem)."""
    for event in failures:
        error = event.step_failure_data.error if event.step_failure_data else None
        if error is not None:
            cause = error.cause or error
            return f"{cause.cls_name}: {cause.message.strip().splitlines()[0] if cause.message.strip() else ''}"
    return None


def problem_of(failures: Sequence[dg.DagsterEvent]) -> Problem | None:
    """The problem the first of a run's step failures carries, if any (a server down, an interrupt)."""
    for event in failures:
        data = event.step_failure_data.user_failure_data if event.step_failure_data else None
        if data is None:
            continue
        record = {name: value.value for name, value in data.metadata.items()}
        found = from_record(record)
        if found is not None:
            return found
    return None


def load_failure(report: LoadReport) -> dg.Failure | None:
    """The failure a load step ends with, or None: a problem that stopped it, failed files, lost leases (a closed
    gate is a wait, not a failure)."""
    if report.problem is not None:
        return failure(_as_seen_by_the_run(report.problem),
                       **{"given back": len(report.given_back), "failed": len(report.failed)})  # fmt: skip
    if report.failed:
        errors = [f"notice {nid}: {error}" for nid, error in sorted(report.failed.items())]
        return dg.Failure(
            description=f"{counted(len(report.failed), 'notice')} failed; first: {errors[0]}",
            metadata={
                "failed": len(report.failed),
                "errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors[:SHOWN_ERRORS])),
            },
        )
    if report.lost:
        return dg.Failure(
            description=f"lease lost on {counted(len(report.lost), 'notice')}; the rows loaded were discarded"
        )
    return None


def _as_seen_by_the_run(problem: Problem) -> Problem:
    """An interrupt reached the step's process (a Celery worker, a run worker), not the command waiting for the
    run: the line says whose."""
    if not isinstance(problem, Interrupted):
        return problem
    where = f"the process running the step (pid {os.getpid()} on {socket.gethostname()}) was {problem.cause}"
    return Interrupted(problem.signum, where, problem.fix)


def report_load(context: dg.OpExecutionContext | dg.AssetExecutionContext, report: LoadReport) -> None:
    """Skipped notices are logged with their holder; each failed chunk is observed with its error; failures fail
    the step, naming the files or the server."""
    gate_waits = sorted({refused.message for refused in report.gate_refusals})
    if gate_waits:
        context.log.warning(
            f"{counted(len(report.gate_refusals), 'notice')} not loaded, waiting for the gate: {gate_waits[0]}"
        )
    for notice_id, refused in sorted(report.skipped.items()):
        if refused.reason is not Refusal.GATE_CLOSED:
            context.log.warning(f"notice {notice_id} skipped: {refused}")
    for (case, table, chunk), error in sorted(
        report.failed_targets.items(), key=lambda kv: (*kv[0][:2], kv[0][2] or -1)
    ):
        context.log_event(
            dg.AssetObservation(
                [case, table], partition=None if chunk is None else str(chunk), description=f"failed: {error}",
                metadata={"failed": error},
            )
        )  # fmt: skip
    found = load_failure(report)
    if found is not None:
        raise found


def check_results(key: dg.AssetKey, validation: Validation) -> Iterator[dg.AssetCheckResult]:
    """What a validation step yields for its checks."""
    for outcome in validation.outcomes:
        yield dg.AssetCheckResult(asset_key=key, **_check_fields(outcome))


def validation_events(
    key: dg.AssetKey, validation: Validation
) -> list[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """What a validation outside a run reports: the gate asset's materialization and its checks' evaluations."""
    checks = [dg.AssetCheckEvaluation(asset_key=key, blocking=True, **_check_fields(o)) for o in validation.outcomes]
    return [dg.AssetMaterialization(key, description=validation.summary, metadata=validation.metadata), *checks]


def _check_fields(outcome: CheckOutcome) -> dict[str, Any]:
    return {
        "check_name": outcome.name,
        "passed": outcome.passed,
        "severity": dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
        "metadata": outcome.metadata,
    }
