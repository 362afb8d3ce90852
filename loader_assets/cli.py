"""`loader-assets`: the operator's command line. Thin: it parses arguments and calls the modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from loader_assets import settings
from loader_assets.catalog import views
from loader_assets.catalog.register import RegistrationError, register_case
from loader_assets.catalog.store import Store
from loader_assets.qserv.metadata import MetadataError

Command = Callable[[argparse.Namespace], int]


def _store() -> Store:
    return Store.from_url()


def _print_frame(frame: pd.DataFrame, empty: str) -> None:
    print(empty if frame.empty else frame.to_string())


def cmd_register(args: argparse.Namespace) -> int:
    result = register_case(_store(), Path(args.case_dir), args.case, comment=args.comment)
    print(f"registered {result.summary()}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from loader_assets.qserv.sample import write_sample_case

    root = write_sample_case(
        Path(args.out_dir), chunks=args.chunks, rows_per_chunk=args.rows_per_chunk, fmt=args.format, seed=args.seed
    )
    print(f"sample case written to {root}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    db = _store().db
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
        print(f"{config.czar_url}  czar")
        for name, url in config.workers.items():
            print(f"{url}  {name}")
    return 0


def cmd_locks(args: argparse.Namespace) -> int:
    _print_frame(views.locks(_store().db, args.case), "no locks held")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    released = _store().release_run(args.run, args.reason)
    print(f"released {len(released)} notices of run {args.run}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    _print_frame(views.history(_store().db, args.notice), f"no attempt at notice {args.notice}")
    return 0


def cmd_case_state(state: str) -> Command:
    def run(args: argparse.Namespace) -> int:
        _store().set_case_state(args.case, state)
        print(f"case {args.case} {state}")
        return 0

    return run


def cmd_reset(args: argparse.Namespace) -> int:
    print(f"{_store().reset(args.notices)} notices ready again")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loader-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    register = commands.add_parser("register", help="register a qserv-ingest case directory (metadata.json v12)")
    register.add_argument("case_dir")
    register.add_argument("--case", help="case id ([A-Za-z0-9_]+); default: the directory's name")
    register.add_argument("--comment", help="free text, e.g. the dataset name")
    register.set_defaults(run=cmd_register)

    sample = commands.add_parser("sample", help="write a realistic sample case")
    sample.add_argument("out_dir")
    sample.add_argument("--chunks", type=int, default=10)
    sample.add_argument("--rows-per-chunk", type=int, default=1000)
    sample.add_argument("--format", choices=["csv", "parquet"], default="csv")
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(run=cmd_sample)

    status = commands.add_parser("status", help="notices per case / level / table / status, and level gates")
    status.add_argument("--case")
    status.set_defaults(run=cmd_status)

    workers = commands.add_parser("workers", help="local MariaDB cluster: up, down, list")
    workers.add_argument("action", choices=["up", "down", "list"])
    workers.add_argument("--count", type=int, default=2)
    workers.set_defaults(run=cmd_workers)

    locks = commands.add_parser("locks", help="held locks: owner, age, lease left; stale ones marked")
    locks.add_argument("--case")
    locks.set_defaults(run=cmd_locks)

    release = commands.add_parser("release", help="release by hand every lock of a run (recorded as an attempt)")
    release.add_argument("--run", required=True)
    release.add_argument("--reason", default="operator")
    release.set_defaults(run=cmd_release)

    history = commands.add_parser("history", help="every attempt at a notice")
    history.add_argument("notice", type=int)
    history.set_defaults(run=cmd_history)

    for state, verb in (("paused", "pause"), ("active", "resume")):
        command = commands.add_parser(
            verb, help=f"{verb} a case ({'no new claims' if verb == 'pause' else 'claims again'})"
        )
        command.add_argument("case")
        command.set_defaults(run=cmd_case_state(state))

    reset = commands.add_parser("reset", help="make failed (or done) notices ready again with a fresh attempt budget")
    reset.add_argument("notices", type=int, nargs="+")
    reset.set_defaults(run=cmd_reset)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (MetadataError, RegistrationError, KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"loader-assets {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
