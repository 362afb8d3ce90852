"""The Dagster side of the operator's actions, as one object the operations layer holds: the instance, the chunk
partitions of a case, reloading the code location, the daemon's heartbeat, the runs of a schedule, and the
runner's executor — a load run in this process against the persistent instance (like `dagster asset
materialize`: recorded and shown in the UI, not waiting in the run queue), and a level's validation.

`load`'s validations are not runs: each table is validated in this process and its gate asset's materialization
and check evaluations are reported to the instance without a run (the UI shows them on the gate asset and its
checks, not in the run list). A run's start and events cost 0.15-0.25 s, a tenth of a small case's wall time
(issue 21). The `level_gates` sensor's validations are runs of the case's gate jobs.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, redirect_stderr

import dagster as dg

from loader_assets import levels, tags
from loader_assets.catalog.layout import CaseLayout
from loader_assets.catalog.store import Store
from loader_assets.defs.assets import validation_key
from loader_assets.defs.chunk_partitions import add_chunk_partitions, remove_chunk_partitions
from loader_assets.defs.events import error_of, problem_of, validation_events
from loader_assets.defs.executors import interrupts_forwarded, load_executor, step_per_worker
from loader_assets.defs.instance import (
    RunFileAhead,
    daemon_problem,
    first_line,
    open_instance,
    storage_errors,
    webserver_problem,
)
from loader_assets.defs.jobs import LOAD_JOB, load_notices_job, run_config
from loader_assets.defs.resources import default_resources
from loader_assets.defs.unreported import unreported
from loader_assets.engine.interruption import INTERRUPTION
from loader_assets.engine.plan import RunPlan
from loader_assets.engine.runner import RunOutcome
from loader_assets.engine.validate import VERDICT_DROPPED, validate_table
from loader_assets.problems import NoDaemon, Problem
from loader_assets.settings import Settings
from loader_assets.workers.cluster import Cluster

CODE_LOCATION = "loader_assets"
REPORTED_AT_LOAD = 1000  # 10-16 s of events at most before a load starts; the sensor reports any more
QUIET, VERBOSE = "CRITICAL", "DEBUG"  # what of a run's events reaches the terminal (all stay in the instance)
STDERR = 2  # the file descriptor
LOG = logging.getLogger(__name__)  # a validation's lines (on the terminal with -v)


class DagsterPlatform:
    """One Dagster instance, opened once per command."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance | None = None) -> None:
        self.settings = settings
        self.instance = instance if instance is not None else open_instance(settings)
        # the next run's event file, for `load`'s runs in process
        self.run_ahead = RunFileAhead(self.instance, sqlite=settings.dagster_pg_url is None)

    def close(self) -> None:
        self.run_ahead.close()
        self.instance.dispose()

    # -- partitions and the code location -----------------------------------------------------------

    def add_chunks(self, case: str, chunks: Iterable[int]) -> int:
        return add_chunk_partitions(self.instance, case, chunks)

    def remove_chunks(self, case: str) -> int:
        with storage_errors(self.settings):
            return remove_chunk_partitions(self.instance, case)

    def report_loaded(self, store: Store, case: str) -> int:
        """Materialize up to REPORTED_AT_LOAD loaded chunks of `case` Dagster does not show (`unreported`); how
        many. An interrupt stops it between two (the rest: next time, or the daemon's sensor)."""
        with storage_errors(self.settings):
            events = unreported(self.instance, store, case, REPORTED_AT_LOAD).events
            for done, event in enumerate(events):
                if INTERRUPTION.is_set:
                    return done
                self.instance.report_runless_asset_event(event)
        return len(events)

    def reload_code_location(self) -> str:
        return reload_code_location(self.settings)

    # -- the daemon, the webserver, the runs ----------------------------------------------------------

    def daemon_problem(self) -> NoDaemon | None:
        return daemon_problem(self.instance, self.settings)

    def webserver_problem(self) -> str | None:
        return webserver_problem(self.settings.webserver)

    def runs_of_schedule(self, schedule_id: int) -> list[tuple[str, str]]:
        """(run id, status) of each run requested for the schedule (a `selection.RunLookup`)."""
        records = self.instance.get_run_records(dg.RunsFilter(tags={tags.SCHEDULE: str(schedule_id)}))
        return [(record.dagster_run.run_id, record.dagster_run.status.value) for record in records]

    def executor(self, catalog_url: str, *, verbose: bool = False) -> DagsterExecutor:
        return DagsterExecutor(self, catalog_url, VERBOSE if verbose else QUIET)


class DagsterExecutor:
    """The runner's `Executor`: each load plan a run started from this process (its steps here, in step processes
    of its own, or on Celery); each validation level in this process, reported to the instance."""

    def __init__(self, platform: DagsterPlatform, catalog_url: str, console_level: str) -> None:
        self.platform, self.catalog_url, self.quiet = platform, catalog_url, console_level == QUIET
        self.console = {"loggers": {"console": {"config": {"log_level": console_level}}}}
        self._load_job: dg.JobDefinition | None = None  # built once: every run of a load uses it
        self._in_process = not step_per_worker(load_executor(platform.settings))

    def _prepare_run(self) -> None:
        if self._in_process:  # (a run in step processes is started by `execute_job`, which takes no run id)
            self.platform.run_ahead.prepare()

    def run_load(self, plan: RunPlan) -> RunOutcome:
        settings = self.platform.settings
        chosen = load_executor(settings)
        config = {**run_config(plan, per_worker=step_per_worker(chosen)), **self.console}
        if not step_per_worker(chosen):
            with storage_errors(settings), self._dagster_stderr():
                self._load_job = self._load_job or load_job(settings, self.catalog_url)
                run_id = self.platform.run_ahead.take()
                try:
                    result = self._load_job.execute_in_process(
                        run_config=config, instance=self.platform.instance, tags=plan.tags, raise_on_error=False,
                        run_id=run_id,
                    )  # fmt: skip
                except BaseException:
                    if run_id is not None:  # a run that never came to be leaves no file
                        self.platform.run_ahead.discard(run_id)
                    raise
                return _outcome(result)
        job = dg.build_reconstructable_job(
            "loader_assets.defs.platform", "bound_load_job", reconstructable_args=(self.catalog_url,)
        )
        with (
            storage_errors(settings),
            self._dagster_stderr(steps_elsewhere=True),
            interrupts_forwarded(),
            dg.execute_job(job, self.platform.instance, run_config=config, tags=plan.tags) as result,
        ):
            return _outcome(result)

    def run_validation(self, layout: CaseLayout, level: int, store: Store, cluster: Cluster, *,
                       load_follows: bool = False) -> RunOutcome:  # fmt: skip
        """Each table of the level validated here, its recorded verdict reported to the instance without a run (a
        dropped one is not: the gate stays pending, as after a validation run that failed). The outcome's id names
        the validation in the gate's lock and verdict (`check_run`)."""
        validator, dropped, table = f"load-{uuid.uuid4().hex}", None, None
        if load_follows:
            self._prepare_run()  # the next level's, while the workers count
        try:
            for table in layout.tables_of_kind(levels.validated_kind(level)):
                if INTERRUPTION.is_set:
                    return RunOutcome(validator, INTERRUPTION.problem("no validation is held"))
                validation = validate_table(store, cluster, layout, table, validator, LOG.info)
                if not validation.recorded:
                    dropped = dropped or f"{table.name}: {VERDICT_DROPPED}"
                    continue
                with storage_errors(self.platform.settings):
                    for event in validation_events(validation_key(layout.case, table), validation):
                        self.platform.instance.report_runless_asset_event(event)
        except Problem as problem:  # not loaded, validated elsewhere, a server or the instance down
            return RunOutcome(validator, problem)
        except Exception as error:  # a bug: its traceback with -v, its first line in the level's failure
            LOG.exception("validation %s of level %d of case %s failed", validator, level, layout.case)
            where = f"{table.name}: " if table is not None else ""
            return RunOutcome(validator, error=f"{where}{type(error).__name__}: {first_line(error)}")
        return RunOutcome(validator, error=dropped)

    @contextmanager
    def _dagster_stderr(self, *, steps_elsewhere: bool = False) -> Iterator[None]:
        """Quiet, what Dagster writes to stderr itself (an event it could not store) goes to
        `<state dir>/dagster-stderr.log`, not the operator's terminal, which gets one line. Step processes write
        to the file descriptor they inherit: it points there too while such a run lasts (the progress bars then
        move only between levels)."""
        if not self.quiet:
            yield
            return
        path = self.platform.settings.state_dir / "dagster-stderr.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log, redirect_stderr(log), _descriptor_to(log.fileno(), STDERR, steps_elsewhere):
            yield


@contextmanager
def _descriptor_to(target: int, descriptor: int, redirected: bool) -> Iterator[None]:
    """`descriptor` pointing at `target` while the block runs, when `redirected`."""
    if not redirected:
        yield
        return
    kept = os.dup(descriptor)
    os.dup2(target, descriptor)
    try:
        yield
    finally:
        os.dup2(kept, descriptor)
        os.close(kept)


def _outcome(result: dg.ExecuteInProcessResult | dg.JobExecutionResult) -> RunOutcome:
    failures = result.get_step_failure_events()
    return RunOutcome(result.run_id, problem_of(failures), error_of(failures))


# The reload answers once the code server has imported the definitions again: on a busy 2-core host that took
# more than 10 s (seen in a fresh clone's `make test`).
RELOAD_SECONDS = 60


def reload_code_location(settings: Settings) -> str:
    """Ask the webserver to reload the code location (a new case, a new saved selection appear at once); without
    one, say when they appear. Needs no instance: the webserver's GraphQL only (its client imported only when a
    webserver answers: a quarter of a second of every `register` without one)."""
    address = settings.webserver
    absent = webserver_problem(address)
    if absent is None:
        from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

        host, _, port = address.partition(":")
        try:
            client = DagsterGraphQLClient(host, port_number=int(port or 3000), timeout=RELOAD_SECONDS)
            client.reload_repository_location(CODE_LOCATION)
            return f"code location {CODE_LOCATION} reloaded at {address}"
        except (DagsterGraphQLClientError, OSError, ValueError) as error:  # it went away, or timed out
            absent = f"no Dagster webserver answered at {address} ({type(error).__name__})"
    return f"{absent}; the daemon shows the new definitions within a minute"


def load_job(settings: Settings, catalog_url: str) -> dg.JobDefinition:
    """`load_notices` with its resources and the executor the settings choose for `loader-assets load`."""
    definitions = dg.Definitions(
        jobs=[load_notices_job], resources=default_resources(catalog_url), executor=load_executor(settings)
    )
    return definitions.resolve_job_def(LOAD_JOB)


def bound_load_job(catalog_url: str) -> dg.JobDefinition:
    """What a run's steps reconstruct in their own process (a step process, a Celery worker), with the settings of
    its environment."""
    return load_job(Settings.from_env(), catalog_url)
