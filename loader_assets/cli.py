"""`loader-assets`: the operator's command line. A presenter over `operations`: it parses arguments, calls one
action, prints its result, and tells an expected failure in one line with its exit code (`problems.Exit`).

Without `-v` no Dagster log line and no traceback reaches the terminal for an expected failure; SIGINT and SIGTERM
end a command cleanly (a load gives back its notices first) with exit 130 and 143. Anything that is not a
`Problem` is a bug: its traceback is shown.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from loader_assets import levels, tags
from loader_assets.catalog.register import CaseOptions
from loader_assets.engine.interruption import INTERRUPTION
from loader_assets.engine.runner import LevelResult
from loader_assets.operations import cases, doctor, loading, local, notices, planning, scheduling
from loader_assets.operations.context import Context
from loader_assets.problems import BadInput, Problem
from loader_assets.selection.language import QueryError, describe_fields
from loader_assets.wording import counted, table

if TYPE_CHECKING:
    import pandas as pd  # imported where used: half a second of every command's start-up

Command = Callable[[Context, argparse.Namespace], int]
COOPERATIVE = ("load", "metrics")  # commands that end by themselves once interrupted (`register --load`: its load)


def _print_frame(frame: pd.DataFrame, empty: str) -> None:
    print(empty if frame.empty else frame.to_string())


# -- cases ---------------------------------------------------------------------------------------------------


def cmd_init(ctx: Context, args: argparse.Namespace) -> int:
    print(f"Dagster instance written to {cases.init(ctx)}")
    return 0


def cmd_register(ctx: Context, args: argparse.Namespace) -> int:
    options = CaseOptions(strict_children=args.strict_children, max_num_warnings=args.max_num_warnings)
    done = cases.register(ctx, Path(args.case_dir), args.case, comment=args.comment, options=options,
                          allow_links_out=args.allow_links_out)  # fmt: skip
    print(f"registered {done.registration.summary()}")
    print(f"{done.new_partitions} new chunk partitions in the Dagster instance at {ctx.settings.dagster_home}")
    print(done.reload)
    if not args.load:
        return 0
    # One process for both: a second command would import Dagster again (~1 s of a small case's wall time).
    sys.stdout.flush()  # what was registered reaches a log before the load's hours
    with _signals(cooperative=True):  # registered, the load gives back what it holds before it ends
        return cmd_load(ctx, argparse.Namespace(case=done.registration.case, level=None, force=False))


def cmd_case_state(state: str) -> Command:
    def run(ctx: Context, args: argparse.Namespace) -> int:
        (cases.pause if state == "paused" else cases.resume)(ctx, args.case)
        print(f"case {args.case} {state}")
        return 0

    return run


def cmd_drop(ctx: Context, args: argparse.Namespace) -> int:
    cases.drop(ctx, args.case, force=args.force, log=print)
    return 0


# -- loading -------------------------------------------------------------------------------------------------


class Bars:
    """The CLI's `Progress`: a bar per level (files done of the level's, ETA), refreshed from the catalog by a
    thread off the load's path; the level's result and per-worker lines printed above the bars."""

    def __init__(self, ctx: Context, case: str) -> None:
        from tqdm import tqdm

        self.ctx, self.case, self.tqdm = ctx, case, tqdm
        self.bars: dict[int, object] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, daemon=True, name="progress")

    def __enter__(self) -> Bars:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for bar in self.bars.values():
            bar.close()  # type: ignore[attr-defined]

    def level_started(self, level: int, notices: int) -> None:
        # No bar off a terminal: nothing would show it, and its refreshes read the catalog twice a second.
        if levels.is_load_level(level) and sys.stderr.isatty():
            self.bars[level] = self.tqdm(total=notices, desc=f"level {level}", unit=" files", leave=True,
                                         file=sys.stderr)  # fmt: skip

    def level_ended(self, result: LevelResult) -> None:
        bar = self.bars.pop(result.level, None)
        if bar is not None:
            self._advance(result.level, bar)
            bar.close()  # type: ignore[attr-defined]
        for line in [f"level {result.level} of {self.case}: {result.message}", *result.summary()]:
            self.note(line)

    def note(self, line: str) -> None:
        self.tqdm.write(line)
        sys.stdout.flush()  # a level's line reaches a log (`load | tee`) when the level ends, not at exit

    def _refresh(self) -> None:
        while not self._stop.wait(0.5):
            for level, bar in list(self.bars.items()):
                try:
                    self._advance(level, bar)
                except Problem:  # the catalog out of reach: the bar waits; the load itself tells what happened
                    continue

    def _advance(self, level: int, bar: object) -> None:
        bar.update(loading.files_done(self.ctx, self.case, level) - bar.n)  # type: ignore[attr-defined]


def cmd_load(ctx: Context, args: argparse.Namespace) -> int:
    with Bars(ctx, args.case) as bars:
        results = loading.load(ctx, args.case, level=args.level, force=args.force, progress=bars)
    lines = [line for result in results for line in result.summary()]
    if lines:
        print("\nper worker:\n  " + "\n  ".join(lines) + "\n")
    return cmd_status(ctx, argparse.Namespace(case=args.case))


def cmd_plan(ctx: Context, args: argparse.Namespace) -> int:
    print("\n".join(planning.plan(ctx, args.case, args.workers, Path(args.rates) if args.rates else None)))
    return 0


# -- inspecting ----------------------------------------------------------------------------------------------


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    found = notices.status(ctx, args.case)
    print(table(found.counts) if found.counts else "no notices registered")
    if found.gates:
        print()
        print(table(found.gates))
    return 0


def cmd_locks(ctx: Context, args: argparse.Namespace) -> int:
    _print_frame(notices.locks(ctx, args.case), "no locks held")
    return 0


def cmd_history(ctx: Context, args: argparse.Namespace) -> int:
    _print_frame(notices.history(ctx, args.notice), f"no attempt at notice {args.notice} yet")
    return 0


def cmd_doctor(ctx: Context, args: argparse.Namespace) -> int:
    checks, web = doctor.doctor(ctx)
    print("\n".join(check.line() for check in checks))
    print(f"info  webserver: {web}")
    failed = doctor.first_failure(checks)
    return 0 if failed is None else failed.exit_code


def cmd_metrics(ctx: Context, args: argparse.Namespace) -> int:
    """A Prometheus exporter of the catalog's numbers, until SIGINT or SIGTERM."""
    from loader_assets.operations.metrics import serve  # prometheus_client is imported only when used

    serve(ctx, args.port, args.address,
          ready=lambda port: print(f"serving metrics on http://{args.address}:{port}/metrics", flush=True))  # fmt: skip
    return 0


def cmd_workers(ctx: Context, args: argparse.Namespace) -> int:
    if args.action == "up":
        config = local.up(ctx, args.count)
        print(f"{len(config.workers)} workers and a czar are up; config in {ctx.settings.state_dir / 'workers.json'}")
    elif args.action == "down":
        local.down(ctx)
        print("local workers stopped")
    else:
        for server in local.listing(ctx):
            print(f"{server.url}  {server.name}" + (f"  ({server.state})" if server.state else ""))
    return 0


# -- acting on notices ---------------------------------------------------------------------------------------


def cmd_release(ctx: Context, args: argparse.Namespace) -> int:
    released = notices.release(ctx, args.run_id, args.reason)
    print(f"released {counted(len(released), 'notice')} of run {args.run_id}")
    return 0


def cmd_reset(ctx: Context, args: argparse.Namespace) -> int:
    print(f"{counted(notices.reset(ctx, args.notices, force=args.force), 'notice')} ready again")
    return 0


# What `select --format table` shows of a notice: the full frame is wider than any terminal.
NOTICE_TABLE_COLUMNS = ["case", "table", "level", "chunk", "overlap", "status", "attempts", "priority", "worker",
                        "locked_by", "path", "error"]  # fmt: skip


def cmd_select(ctx: Context, args: argparse.Namespace) -> int:
    selection = scheduling.select(ctx, args.query, batches=args.batches, limit=args.limit)
    if args.format == "json":
        print(json.dumps(selection.records(), indent=2))
    elif args.format == "csv":
        print(selection.frame.to_csv(), end="")
    else:
        frame = selection.frame if args.batches else selection.frame[NOTICE_TABLE_COLUMNS]
        _print_frame(frame, f"no {selection.target} selected")
        print(
            f"{len(selection)} {selection.target}"
            + (f" (--limit {args.limit})" if len(selection) == args.limit else "")
        )
    return 0


def cmd_schedule(ctx: Context, args: argparse.Namespace) -> int:
    if args.query in ("list", "cancel"):
        return _schedule_list(ctx) if args.query == "list" else _schedule_cancel(ctx, args)
    if args.batches:
        chosen = scheduling.select(ctx, args.query, batches=True, limit=None).notices()  # type: ignore[union-attr]
    else:
        chosen = scheduling.select(ctx, args.query)
    if args.dry_run:
        print(scheduling.dry_run(chosen, priority=args.priority, force=args.force))  # type: ignore[arg-type]
        return 0
    result = scheduling.schedule(ctx, chosen, priority=args.priority, force=args.force, check=not args.no_daemon)  # type: ignore[arg-type]
    print(
        f"schedule {result.schedule_id}: {counted(len(result.notice_ids), 'notice')} handed to the run queue; the "
        "dagster-daemon's scheduled_loads sensor requests their runs (by case, level and worker; a child level once "
        f"its gate passes), tagged {tags.SCHEDULE}={result.schedule_id}."
    )
    if not args.watch:
        return 0
    final = scheduling.watch(ctx, result, progress=print)
    print(final.to_string())
    return 1 if final.loc["failed", "notices"] else 0


def _schedule_list(ctx: Context) -> int:
    import pandas as pd

    rows = [
        {"id": row.id, "state": row.state, "notices": len(row.notice_ids), "waiting": len(row.waiting_ids),
         "runs": len(row.runs or ()), "priority": row.priority, "force": row.force, "created_at": row.created_at,
         "query": row.query}
        for row in scheduling.listing(ctx)
    ]  # fmt: skip
    _print_frame(pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame(), "no schedule")
    return 0


def _schedule_cancel(ctx: Context, args: argparse.Namespace) -> int:
    for cancelled in scheduling.cancel(ctx, args.ids):
        print(
            f"schedule {cancelled.id} cancelled: {counted(len(cancelled.waiting_ids), 'notice')} will not be requested"
        )
    return 0


def cmd_selections_list(ctx: Context, args: argparse.Namespace) -> int:
    _print_frame(scheduling.saved_selections(ctx).set_index("name"), "no saved selection")
    return 0


def cmd_selections_save(ctx: Context, args: argparse.Namespace) -> int:
    reload = scheduling.save_selection(ctx, args.name, args.query, batches=args.batches, priority=args.priority,
                                       enabled=not args.disabled, comment=args.comment)  # fmt: skip
    state = "disabled" if args.disabled else f"enabled: its sensor selection_{args.name} loads from it"
    print(f"saved selection {args.name} over {'batches' if args.batches else 'notices'} ({state})")
    print(reload)
    return 0


def cmd_selections_enabled(enabled: bool) -> Command:
    def run(ctx: Context, args: argparse.Namespace) -> int:
        scheduling.enable_selection(ctx, args.name, enabled)
        print(f"saved selection {args.name} {'enabled' if enabled else 'disabled'}")
        return 0

    return run


def cmd_selections_delete(ctx: Context, args: argparse.Namespace) -> int:
    scheduling.delete_selection(ctx, args.name)
    print(f"saved selection {args.name} deleted")
    return 0


# -- programs this command becomes ----------------------------------------------------------------------------


def cmd_sample(ctx: Context, args: argparse.Namespace) -> int:
    from loader_assets.qserv.sample import write_sample_case

    out = Path(args.out_dir)
    try:
        root = write_sample_case(out, chunks=args.chunks, rows_per_chunk=args.rows_per_chunk, fmt=args.format,
                                 seed=args.seed, database=out.name)  # fmt: skip
    except OSError as error:  # not a directory, no such parent, read-only, full
        full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        raise BadInput(f"cannot write a sample case to {out}: {error.strerror or error}",
                       f"free space, remove {out} and run it again" if full
                       else "name a new or empty directory this user can write to") from error  # fmt: skip
    print(f"sample case written to {root}")
    return 0


def cmd_celery_worker(ctx: Context, args: argparse.Namespace) -> int:
    """A Celery worker executing the steps of runs (`LOADER_EXECUTOR=celery`), until it ends or is signalled."""
    from loader_assets.operations.celery import run_worker

    return run_worker(ctx, args.name)


# -- the parser ------------------------------------------------------------------------------------------------


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port, 0 to 65535")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of workers, 1 or more")
    return int(text)


def _query_command(commands, name: str, purpose: str, *, named: bool = False) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
    """A subcommand taking a selection query (after a selection name if `named`); --help lists the fields."""
    command = commands.add_parser(
        name, help=purpose, epilog=describe_fields(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if named:
        command.add_argument("name", help="[A-Za-z0-9_]+")
    command.add_argument("query", help='a selection query, e.g. "case = dc2 AND status = failed"')
    command.add_argument("--batches", action="store_true", help="the query selects batches (their notices)")
    return command


def _add_selection_commands(commands):  # type: ignore[no-untyped-def]  # the sub-commands of `selections`
    select = _query_command(commands, "select", "print the notices (or batches) a query selects")
    select.add_argument("--format", choices=["table", "csv", "json"], default="table")
    select.add_argument("--limit", type=int, help="at most this many rows, by id")
    select.set_defaults(run=cmd_select)

    schedule = _query_command(
        commands, "schedule", "hand the selected notices to the run queue; `schedule list`, `schedule cancel ID`"
    )
    schedule.add_argument("ids", type=int, nargs="*", help="with `cancel`: the schedules to cancel")
    schedule.add_argument("--priority", type=int, default=0, help="higher runs first (the run's dagster/priority)")
    schedule.add_argument("--no-daemon", action="store_true",
                          help="queue for later: no check of the daemon and the servers")  # fmt: skip
    schedule.add_argument("--force", action="store_true", help="reload notices that are already done")
    schedule.add_argument("--dry-run", action="store_true", help="show what would be requested; write nothing")
    schedule.add_argument("--watch", action="store_true", help="wait until the runs finish; exit 1 if any failed")
    schedule.set_defaults(run=cmd_schedule)

    selections = commands.add_parser("selections", help="saved selections the saved-selection sensor loads from")
    actions = selections.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every saved selection").set_defaults(run=cmd_selections_list)
    save = _query_command(actions, "save", "save (or update) a named query", named=True)
    save.add_argument("--priority", type=int, default=0, help="higher selections are served first each tick")
    save.add_argument("--disabled", action="store_true", help="save without letting the sensor load from it")
    save.add_argument("--comment")
    save.set_defaults(run=cmd_selections_save)
    for verb, run in (
        ("enable", cmd_selections_enabled(True)),
        ("disable", cmd_selections_enabled(False)),
        ("delete", cmd_selections_delete),
    ):
        action = actions.add_parser(verb, help=f"{verb} a saved selection")
        action.add_argument("name")
        action.set_defaults(run=run)
    return actions


VERBOSE = "Dagster's log lines and tracebacks too"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loader-assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("init", help="write the Dagster instance's dagster.yaml from the settings").set_defaults(
        run=cmd_init
    )

    register = commands.add_parser("register", help="register a qserv-ingest case directory (metadata.json v12)")
    register.add_argument("case_dir", help="the directory holding metadata.json")
    register.add_argument("--case", help="case id ([A-Za-z0-9_]+); default: the directory's name")
    register.add_argument("--comment", help="free text, e.g. the dataset name")
    register.add_argument(
        "--strict-children",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="orphan child rows (director key absent from the director) fail level 4; default: a warning, as "
        "Qserv loads them (stored on the case; --no-strict-children turns it off)",
    )
    register.add_argument(
        "--allow-links-out", action="store_true",
        help="follow symlinks that lead out of the case directory (refused by default)",
    )  # fmt: skip
    register.add_argument(
        "--max-num-warnings", type=int, default=None, metavar="N",
        help="LOAD DATA warnings tolerated per file when every record loads (Qserv's name; stored; default 0)",
    )  # fmt: skip
    register.add_argument("--load", action="store_true", help="then load the case, as `loader-assets load` does")
    register.set_defaults(run=cmd_register)

    load = commands.add_parser("load", help="load a registered case through Dagster, level by level, gates included")
    load.add_argument("case", help="a registered case (`loader-assets status` lists them)")
    load.add_argument("--level", type=int, choices=list(levels.ALL),
                      help="run one level only: 1 director, 2 its gate, 3 children, 4 their gates")  # fmt: skip
    load.add_argument("--force", action="store_true", help="reload notices that are already done")
    load.set_defaults(run=cmd_load)

    plan = commands.add_parser("plan", help="predict a registered case's wall time per level on N workers")
    plan.add_argument("case")
    plan.add_argument("--workers", type=_positive, nargs="+", help="worker counts (default: the configured workers)")
    plan.add_argument("--rates", help="a rates file of benchmarks/capacity.py (default: the one shipped)")
    plan.set_defaults(run=cmd_plan)

    drop = commands.add_parser("drop", help="retire a case: worker tables, czar placement, catalog rows, partitions")
    drop.add_argument("case")
    drop.add_argument("--force", action="store_true", help="really do it (refused while a notice is held)")
    drop.set_defaults(run=cmd_drop)

    worker = commands.add_parser("celery-worker", help="a Celery worker executing run steps (LOADER_EXECUTOR=celery)")
    worker.add_argument("--name", help="the worker's name (default: Celery's own), shown with each step it runs")
    worker.set_defaults(run=cmd_celery_worker)

    doctor_ = commands.add_parser("doctor", help="check catalog, czar, workers, instance, daemon and webserver")
    doctor_.set_defaults(run=cmd_doctor)

    metrics = commands.add_parser("metrics", help="serve the catalog's numbers to Prometheus (until interrupted)")
    metrics.add_argument("--port", type=_port, default=9464, help="TCP port (default 9464; 0: any free port)")
    metrics.add_argument("--address", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    metrics.set_defaults(run=cmd_metrics)

    sample = commands.add_parser("sample", help="write a realistic sample case")
    sample.add_argument("out_dir", help="a new or empty directory; its name is the case's database")
    sample.add_argument("--chunks", type=int, default=10, help="chunks of the sky (default 10)")
    sample.add_argument("--rows-per-chunk", type=int, default=1000, help="director rows per chunk (default 1000)")
    sample.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")
    sample.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same case")
    sample.set_defaults(run=cmd_sample)

    status = commands.add_parser("status", help="notices per case / level / table / status, and level gates")
    status.add_argument("--case", help="one case (default: all)")
    status.set_defaults(run=cmd_status)

    workers = commands.add_parser("workers", help="local MariaDB cluster: up, down, list")
    workers.add_argument("action", choices=["up", "down", "list"], help="start, stop or list the servers")
    workers.add_argument("--count", type=int, default=2, help="workers to start with `up` (default 2)")
    workers.set_defaults(run=cmd_workers)

    locks = commands.add_parser("locks", help="held locks: owner, age, lease left; stale ones marked")
    locks.add_argument("--case", help="one case (default: all)")
    locks.set_defaults(run=cmd_locks)

    release = commands.add_parser("release", help="release by hand every lock of a run (recorded as an attempt)")
    release.add_argument("--run", dest="run_id", required=True)  # `run` is the command's function
    release.add_argument("--reason", default="operator", help="recorded in each released attempt")
    release.set_defaults(run=cmd_release)

    history = commands.add_parser("history", help="every attempt at a notice")
    history.add_argument("notice", type=int, help="a notice id (`loader-assets select` shows them)")
    history.set_defaults(run=cmd_history)

    for state, verb in (("paused", "pause"), ("active", "resume")):
        command = commands.add_parser(
            verb, help=f"{verb} a case ({'no new claims' if verb == 'pause' else 'claims again'})"
        )
        command.add_argument("case")
        command.set_defaults(run=cmd_case_state(state))

    reset = commands.add_parser("reset", help="make failed (or done) notices ready again with a fresh attempt budget")
    reset.add_argument("notices", type=int, nargs="+", help="notice ids")
    reset.add_argument("--force", action="store_true", help="reset done notices too (their chunks load again)")
    reset.set_defaults(run=cmd_reset)

    actions = _add_selection_commands(commands)
    for command in [*commands.choices.values(), *actions.choices.values()]:  # `loader-assets load CASE -v` too
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_unless(args.verbose)
    INTERRUPTION.reset()
    ctx: Context | None = None
    try:
        # A load (a watch, the exporter) stops by itself once interrupted, a load giving back what it holds first;
        # any other command is stopped where it stands: it holds nothing a rerun would not finish.
        with _signals(cooperative=args.command in COOPERATIVE or getattr(args, "watch", False)):
            ctx = Context.from_env(verbose=args.verbose)
            return args.run(ctx, args)
    except KeyboardInterrupt:  # a signal where the command stood (it held nothing a rerun would not finish)
        return _tell(args, INTERRUPTION.problem("nothing is held"))
    except BrokenPipeError:  # the reader of the output went away (`| head`): nothing left to tell
        sys.stderr.close()
        return 141
    except Problem as problem:
        return _tell(args, problem)
    finally:
        if ctx is not None:
            ctx.close()


def _tell(args: argparse.Namespace, problem: Problem) -> int:
    """The one line of an expected failure (a query's with a caret under the mistake); its exit code."""
    if args.verbose:
        logging.getLogger(__name__).error("traceback of the failure", exc_info=problem)
    line = problem.line()
    if isinstance(problem, QueryError):
        line = f"{problem.cause}\n{_caret(args.query, problem.position)}"
    print(f"loader-assets {args.command}: {line}", file=sys.stderr)
    return int(problem.exit_code)


@contextmanager
def _signals(*, cooperative: bool) -> Iterator[None]:
    """SIGINT and SIGTERM interrupt the process's loads (`INTERRUPTION`); a cooperative command then ends by itself,
    any other is stopped where it stands."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        INTERRUPTION.interrupt(signum)
        if not cooperative:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # e.g. a test calling main() in a thread
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _quiet_unless(verbose: bool) -> None:
    """Without -v: no warning, no Dagster or loader log line on the terminal (they stay in the instance)."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        return
    warnings.simplefilter("ignore")  # Dagster's beta and deprecation warnings are not the operator's business
    for name in ("", "dagster", "loader_assets", "alembic"):  # "": the root logger (Dagster's storage retries)
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _caret(text: str, position: int) -> str:
    """The query line holding `position`, and a caret under that position."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : end if end >= 0 else len(text)]
    return f"  {line}\n  {' ' * (position - start)}^"


if __name__ == "__main__":
    sys.exit(main())
