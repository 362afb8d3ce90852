"""`loader-assets`: the operator's command line. Thin: it parses arguments and calls the modules."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from loader_assets import levels, problems, settings, tags
from loader_assets.catalog import views
from loader_assets.catalog.register import CaseOptions, RegistrationError, register_case
from loader_assets.catalog.store import Store
from loader_assets.qserv.metadata import MetadataError
from loader_assets.selection.language import QueryError, describe_fields

Command = Callable[[argparse.Namespace], int]


def _store() -> Store:
    return Store.from_url()


def _print_frame(frame: pd.DataFrame, empty: str) -> None:
    print(empty if frame.empty else frame.to_string())


def cmd_register(args: argparse.Namespace) -> int:
    from loader_assets.defs.instance import prepare_instance
    from loader_assets.defs.partitions import add_chunk_partitions, reload_code_location

    options = CaseOptions(strict_children=args.strict_children, max_num_warnings=args.max_num_warnings)
    instance = prepare_instance()  # before the catalog commits anything: an unusable instance fails first
    added: list[int] = []

    def partitions(case: str, chunks: list[int]) -> None:  # before the case opens: no chunk is loaded unseen
        added.append(add_chunk_partitions(instance, case, chunks))

    result = register_case(
        _store(), Path(args.case_dir), args.case, comment=args.comment, options=options,
        allow_links_out=args.allow_links_out, on_chunks=partitions,
    )  # fmt: skip
    print(f"registered {result.summary()}")
    print(f"{added[0]} new chunk partitions in the Dagster instance at {settings.dagster_home()}")
    print(reload_code_location())
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from loader_assets.definitions import build_definitions
    from loader_assets.defs.instance import prepare_instance
    from loader_assets.defs.runner import LevelFailed, load_case
    from loader_assets.engine.level_state import start_refusal
    from loader_assets.workers.cluster import Cluster

    to_run = (args.level,) if args.level else levels.ALL
    store = _store()
    cluster = Cluster.from_env()
    _preflight(cluster.config)
    layout = _case(store, args.case)
    if layout.state != "active":
        raise problems.case_paused(args.case)
    if (why := start_refusal(store.db, layout, to_run[0])) is not None:
        raise problems.gate_closed(to_run[0], args.case, why)
    try:
        with _progress(store, args.case, to_run) as log:
            results = load_case(
                args.case, build_definitions(), prepare_instance(), store, cluster, levels=to_run, force=args.force,
                log=log, console_level="DEBUG" if args.verbose else "ERROR",
            )  # fmt: skip
    except LevelFailed as failure:
        print(f"loader-assets load: {failure}", file=sys.stderr)
        return problems.Exit.FAILED
    lines = [line for result in results for line in result.summary()]
    if lines:
        print("\nper worker:\n  " + "\n  ".join(lines) + "\n")
    return cmd_status(argparse.Namespace(case=args.case))


@contextmanager
def _progress(store: Store, case: str, to_run: tuple[int, ...]) -> Iterator[Callable[[str], None]]:
    """A bar per load level (files done of the level's, rows, ETA), refreshed from the catalog by a thread off
    the load's path; the runner's lines are printed above it."""
    import threading

    from tqdm import tqdm

    from loader_assets.catalog.notices import status_tally

    bars: dict[int, tqdm] = {}
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(0.5):
            for level, bar in list(bars.items()):
                bar.update(status_tally(store.db, case, level=level).get("done", 0) - bar.n)

    def log(line: str) -> None:
        level = next((lv for lv in to_run if line.startswith(f"run: case {case} level {lv} ")), None)
        if level is not None and level not in bars:
            total = sum(status_tally(store.db, case, level=level).values())
            bars[level] = tqdm(total=total, desc=f"level {level}", unit=" files", leave=True, file=sys.stderr,
                               disable=not sys.stderr.isatty())  # fmt: skip
        done = next((lv for lv in bars if line.startswith(f"level {lv} of {case}:")), None)
        if done is not None:
            bar = bars.pop(done)
            bar.update(status_tally(store.db, case, level=done).get("done", 0) - bar.n)
            bar.close()
        tqdm.write(line)

    thread = threading.Thread(target=refresh, daemon=True, name="progress")
    thread.start()
    try:
        yield log
    finally:
        stop.set()
        for bar in bars.values():
            bar.close()


def cmd_sample(args: argparse.Namespace) -> int:
    from loader_assets.qserv.sample import write_sample_case

    out = Path(args.out_dir)
    root = write_sample_case(
        out, chunks=args.chunks, rows_per_chunk=args.rows_per_chunk, fmt=args.format, seed=args.seed, database=out.name
    )
    print(f"sample case written to {root}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    store = _store()
    if args.case is not None:
        _case(store, args.case)
    db = store.db
    _print_frame(views.status_counts(db, args.case), "no notices registered")
    gates = views.gates(db, args.case)
    if not gates.empty:
        print()
        print(gates.to_string(index=False))
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    from loader_assets.workers import local
    from loader_assets.workers.cluster import ClusterConfig

    if args.action == "up":
        config = local.start_cluster(settings.state_dir(), args.count)
        print(f"{len(config.workers)} workers and a czar are up; config in {settings.state_dir() / 'workers.json'}")
    elif args.action == "down":
        local.stop_cluster(settings.state_dir())
        print("local workers stopped")
    else:
        config = ClusterConfig.from_env()
        configured = os.environ.get("LOADER_CZAR") and os.environ.get("LOADER_WORKERS")
        local_servers = {} if configured else local.cluster_status(settings.state_dir())

        def state(name: str) -> str:
            server = local_servers.get(name)
            return (
                ""
                if server is None
                else f"  ({'running, pid ' + str(server['pid']) if server['running'] else 'stopped'})"
            )

        print(f"{config.czar_url}  czar{state('czar')}")
        for name, url in config.workers.items():
            print(f"{url}  {name}{state(name)}")
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of workers, 1 or more")
    return int(text)


def cmd_plan(args: argparse.Namespace) -> int:
    from loader_assets import capacity
    from loader_assets.engine.sizing import case_sizes
    from loader_assets.workers.cluster import ClusterConfig

    store = _store()
    _case(store, args.case)
    rates = capacity.Rates.load(Path(args.rates) if args.rates else None)
    workers = args.workers or [len(ClusterConfig.from_env().workers)]
    sizes = case_sizes(store, args.case)
    print("\n".join(capacity.report(args.case, sizes, rates, workers)))
    return 0


def cmd_locks(args: argparse.Namespace) -> int:
    _print_frame(views.locks(_store().db, args.case), "no locks held")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from loader_assets.catalog.notices import run_known

    store = _store()
    if not run_known(store.db, args.run_id):
        raise problems.unknown("run", args.run_id, "locks")
    # Who released is part of the audit: it goes into the attempt row with the reason.
    released = store.release_run(args.run_id, f"{args.reason} (by {getpass.getuser()}@{socket.gethostname()})")
    print(f"released {len(released)} notices of run {args.run_id}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    store = _store()
    _notices(store, [args.notice])
    _print_frame(views.history(store.db, args.notice), f"no attempt at notice {args.notice} yet")
    return 0


def cmd_case_state(state: str) -> Command:
    def run(args: argparse.Namespace) -> int:
        store = _store()
        _case(store, args.case)
        store.set_case_state(args.case, state)
        print(f"case {args.case} {state}")
        return 0

    return run


def cmd_reset(args: argparse.Namespace) -> int:
    store = _store()
    _notices(store, args.notices)
    done = sorted(i for i, status in views.shown_statuses(store.db, args.notices).items() if status == "done")
    if done and not args.force:
        shown = ", ".join(map(str, done[:10]))
        raise problems.Problem(
            problems.Exit.USAGE,
            f"notices {shown} are done: a reset loads their chunks again",
            "add --force to reset them",
        )
    print(f"{store.reset(args.notices)} notices ready again")
    return 0


def _case(store: Store, case: str):  # type: ignore[no-untyped-def]  # a CaseLayout
    from loader_assets.catalog.layout import case_layouts

    found = case_layouts(store.db, case)
    if case not in found:
        raise problems.unknown("case", case, "status")
    return found[case]


def _notices(store: Store, ids: list[int]) -> None:
    from loader_assets.catalog.notices import known_notices

    missing = sorted(set(ids) - known_notices(store.db, ids))
    if missing:
        raise problems.unknown("notice", ", ".join(map(str, missing[:10])), 'select "case = <case>"')


def _preflight(config) -> None:  # type: ignore[no-untyped-def]  # a ClusterConfig
    """Stop before anything is launched when the catalog, the czar or a worker does not answer."""
    from loader_assets import doctor

    problem = doctor.first_failure([doctor.catalog(settings.catalog_url()), *doctor.servers(config)])
    if problem is not None:
        raise problem


def cmd_drop(args: argparse.Namespace) -> int:
    from loader_assets.catalog.retire import CaseHeld
    from loader_assets.defs.instance import prepare_instance
    from loader_assets.defs.partitions import reload_code_location, remove_chunk_partitions
    from loader_assets.engine.retire import retire_case
    from loader_assets.workers.cluster import Cluster

    store = _store()
    _case(store, args.case)
    if not args.force:
        raise problems.Problem(
            problems.Exit.USAGE, f"drop retires case {args.case}: its tables on every worker, its placement and "
            "index at the czar, its catalog rows and Dagster partitions", "add --force to do it",
        )  # fmt: skip
    cluster = Cluster.from_env()
    _preflight(cluster.config)
    try:
        retire_case(store, cluster, args.case)
    except CaseHeld as held:
        raise problems.Problem(problems.Exit.FAILED, f"{held}: nothing retired",
                               "wait for the run, or `loader-assets release --run <run>`") from held  # fmt: skip
    print(f"Dagster: {remove_chunk_partitions(prepare_instance(), args.case)} chunk partitions removed")
    print(reload_code_location())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from loader_assets import doctor
    from loader_assets.defs.instance import daemon_check, prepare_instance, webserver_check
    from loader_assets.defs.partitions import WEBSERVER_ENV
    from loader_assets.workers.cluster import ClusterConfig

    checks = [doctor.catalog(settings.catalog_url())]
    try:
        checks += doctor.servers(ClusterConfig.from_env())
    except (OSError, ValueError) as error:
        checks.append(doctor.Check("workers", problems.Problem(problems.Exit.WORKER_DOWN, str(error),
                                   "`loader-assets workers up`, or set LOADER_CZAR and LOADER_WORKERS")))  # fmt: skip
    checks.append(doctor.Check("daemon", daemon_check(prepare_instance()), "beating"))
    address = os.environ.get(WEBSERVER_ENV, "127.0.0.1:3000")
    web = webserver_check(address)
    print("\n".join(check.line() for check in checks))
    print(f"info  webserver: {web or 'answers at ' + address}")
    failed = doctor.first_failure(checks)
    return 0 if failed is None else failed.exit_code


def cmd_celery_worker(args: argparse.Namespace) -> int:
    """A Celery worker executing the steps of runs (`LOADER_EXECUTOR=celery`): replaces this process."""
    from loader_assets.defs.celery import worker_command
    from loader_assets.defs.instance import prepare_instance

    prepare_instance()  # the same instance (dagster.yaml) as the runs it executes steps of
    command = worker_command(args.name)
    executable = Path(sys.executable).parent / command[0]
    os.execv(executable, [str(executable), *command[1:]])


# What `select --format table` shows of a notice: the full frame is wider than any terminal.
NOTICE_TABLE_COLUMNS = ["case", "table", "level", "chunk", "overlap", "status", "attempts", "priority", "worker",
                        "locked_by", "path", "error"]  # fmt: skip


def _selected(args: argparse.Namespace, limit: int | None = None):  # type: ignore[no-untyped-def]
    from loader_assets.selection import select, select_batches

    return (select_batches if args.batches else select)(args.query, store=_store(), limit=limit)


def cmd_select(args: argparse.Namespace) -> int:
    selection = _selected(args, args.limit)
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


def cmd_schedule(args: argparse.Namespace) -> int:
    if args.query in ("list", "cancel"):
        return _schedule_list(args) if args.query == "list" else _schedule_cancel(args)
    if not args.dry_run and not args.no_daemon:  # what its runs will need: servers, and a daemon to start them
        from loader_assets.defs.instance import daemon_check, prepare_instance
        from loader_assets.workers.cluster import ClusterConfig

        _preflight(ClusterConfig.from_env())
        if (problem := daemon_check(prepare_instance())) is not None:
            raise problem
    if args.batches or args.dry_run:  # a dry run counts what each selected notice's state would request
        selected = _selected(args)
        notices = selected.notices() if args.batches else selected
    else:  # millions of notices: their ids only
        from loader_assets.selection import selection

        notices = selection.preview(args.query, store=_store(), limit=selection.PREVIEW_ROWS)
    result = notices.schedule(priority=args.priority, force=args.force, dry_run=args.dry_run)
    if args.dry_run:
        print(result)
        return 0
    print(
        f"schedule {result.schedule_id}: {len(result.notice_ids)} notices handed to the run queue; the "
        "dagster-daemon's scheduled_loads sensor requests their runs (by case, level and worker; a child level once "
        f"its gate passes), tagged {tags.SCHEDULE}={result.schedule_id}."
    )
    if not args.watch:
        return 0
    from loader_assets.defs.runs import InstanceRuns

    final = result.watch(progress=print, runs=InstanceRuns())
    print(final.to_string())
    return 1 if final.loc["failed", "notices"] else 0


def _schedule_list(args: argparse.Namespace) -> int:
    from loader_assets.catalog import schedules

    rows = [
        {"id": row.id, "state": row.state, "notices": len(row.notice_ids), "waiting": len(row.waiting_ids),
         "runs": len(row.runs or ()), "priority": row.priority, "force": row.force, "created_at": row.created_at,
         "query": row.query}
        for row in schedules.listing(_store().db)
    ]  # fmt: skip
    _print_frame(pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame(), "no schedule")
    return 0


def _schedule_cancel(args: argparse.Namespace) -> int:
    from loader_assets.catalog import schedules

    if not args.ids:
        raise problems.Problem(problems.Exit.USAGE, "which schedule?", "`loader-assets schedule cancel ID [ID ...]`")
    for schedule_id in args.ids:
        try:
            cancelled = schedules.cancel(_store().db, schedule_id)
        except KeyError as error:
            raise problems.unknown("schedule", schedule_id, "schedule list") from error
        print(f"schedule {schedule_id} cancelled: {len(cancelled.waiting_ids)} notices will not be requested")
    return 0


def cmd_selections_list(args: argparse.Namespace) -> int:
    from loader_assets.selection import saved

    _print_frame(saved.list_saved(_store()).set_index("name"), "no saved selection")
    return 0


def cmd_selections_save(args: argparse.Namespace) -> int:
    from loader_assets.selection import saved

    target = "batches" if args.batches else "notices"
    saved.save(_store(), args.name, args.query, target=target, priority=args.priority, enabled=not args.disabled,
               comment=args.comment)  # fmt: skip
    from loader_assets.defs.partitions import reload_code_location

    state = "disabled" if args.disabled else f"enabled: its sensor selection_{args.name} loads from it"
    print(f"saved selection {args.name} over {target} ({state})")
    print(reload_code_location())
    return 0


def cmd_selections_enabled(enabled: bool) -> Command:
    def run(args: argparse.Namespace) -> int:
        from loader_assets.selection import saved

        saved.set_enabled(_store(), args.name, enabled)
        print(f"saved selection {args.name} {'enabled' if enabled else 'disabled'}")
        return 0

    return run


def cmd_selections_delete(args: argparse.Namespace) -> int:
    from loader_assets.selection import saved

    saved.delete(_store(), args.name)
    print(f"saved selection {args.name} deleted")
    return 0


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


def _add_selection_commands(commands) -> None:  # type: ignore[no-untyped-def]
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


def _caret(text: str, position: int) -> str:
    """The query line holding `position`, and a caret under that position."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = text[start : end if end >= 0 else len(text)]
    return f"  {line}\n  {' ' * (position - start)}^"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loader-assets", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="Dagster's log lines and tracebacks too")
    commands = parser.add_subparsers(dest="command", required=True)

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

    doctor = commands.add_parser("doctor", help="check catalog, czar, workers, daemon and webserver, each with its fix")
    doctor.set_defaults(run=cmd_doctor)

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

    _add_selection_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        warnings.simplefilter("ignore")  # Dagster's beta and deprecation warnings are not the operator's business
    try:
        return args.run(args)
    except Exception as error:
        if args.verbose:
            traceback.print_exc()
        code, message = _explained(error, args)
        print(f"loader-assets {args.command}: {message}", file=sys.stderr)
        return code


def _explained(error: Exception, args: argparse.Namespace) -> tuple[int, str]:
    """The exit code and the one line an expected failure is told in; anything else is re-raised."""
    from sqlalchemy.exc import OperationalError

    from loader_assets.workers.connection import WorkerUnavailable

    if isinstance(error, WorkerUnavailable):
        from loader_assets import doctor
        from loader_assets.workers.cluster import ClusterConfig

        error = doctor.server_down(ClusterConfig.from_env(), error.url, error.reason)
    elif isinstance(error, OperationalError):
        from loader_assets import doctor

        error = doctor.catalog(settings.catalog_url()).problem or error
    if isinstance(error, problems.Problem):
        return error.exit_code, f"{error.cause}; {error.fix}"
    if isinstance(error, QueryError):
        return problems.Exit.USAGE, f"{error}\n{_caret(args.query, error.position)}"
    if isinstance(error, KeyError):
        return problems.Exit.UNKNOWN, str(error.args[0] if error.args else error)
    if isinstance(error, MetadataError | RegistrationError | ValueError | FileExistsError | FileNotFoundError):
        return problems.Exit.USAGE, str(error)
    raise error


if __name__ == "__main__":
    sys.exit(main())
