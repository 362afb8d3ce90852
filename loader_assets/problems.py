"""Expected failures an operator can fix: each says its cause and its fix in one line, with an exit code of its
own, so scripts tell them apart and nobody reads a traceback to learn that a server is down."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """`loader-assets` exit codes (0: success)."""

    FAILED = 1  # a level failed: a notice's error or a check, named in the message
    USAGE = 2  # a malformed query, file, metadata or option
    UNKNOWN = 3  # no such case, notice, run or schedule
    WORKER_DOWN = 4
    CZAR_DOWN = 5
    CATALOG_DOWN = 6
    CASE_PAUSED = 7
    GATE_CLOSED = 8
    NO_DAEMON = 9


class Problem(Exception):
    """An expected failure: `cause` (what is wrong) and `fix` (what to do about it)."""

    def __init__(self, exit_code: Exit, cause: str, fix: str) -> None:
        super().__init__(f"{cause}; {fix}")
        self.exit_code, self.cause, self.fix = exit_code, cause, fix


def unknown(what: str, name: object, listing: str) -> Problem:
    return Problem(Exit.UNKNOWN, f"no {what} {name}", f"`loader-assets {listing}` lists them")


def server_down(name: str, address: str, error: str, *, czar: bool) -> Problem:
    local = "`loader-assets workers up` starts the local cluster"
    configured = "LOADER_CZAR" if czar else "LOADER_WORKERS"
    return Problem(
        Exit.CZAR_DOWN if czar else Exit.WORKER_DOWN,
        f"{name} at {address} does not answer ({error})",
        f"start it ({local}) or correct {configured}",
    )


def catalog_down(url: str, error: str) -> Problem:
    return Problem(
        Exit.CATALOG_DOWN,
        f"the catalog at {url} cannot be reached ({error})",
        "start its server or correct LOADER_CATALOG_URL",
    )


def case_paused(case: str) -> Problem:
    return Problem(Exit.CASE_PAUSED, f"case {case} is paused: nothing is claimed", f"`loader-assets resume {case}`")


def gate_closed(level: int, case: str, why: str) -> Problem:
    return Problem(
        Exit.GATE_CLOSED,
        f"level {level} of case {case} cannot start: {why}",
        f"load and validate the level before it (`loader-assets load {case} --level {level - 1}`), "
        f"or see `loader-assets status --case {case}`",
    )


def no_daemon(home: str) -> Problem:
    return Problem(
        Exit.NO_DAEMON,
        f"no dagster-daemon is running for the instance at {home}: queued runs would wait",
        "start one (`dagster-daemon run -w workspace.yaml`, or `dagster dev`), or add --no-daemon to queue anyway",
    )
