"""Expected failures an operator can fix. Every domain error is a `Problem`: its cause and its fix in one line and
an exit code of its own, so scripts tell them apart and nobody reads a traceback to learn that a server is down.
Anything that is not a `Problem` is a bug, and shows its traceback.

The kinds here are the exit codes; each room raises its own subclasses (`MetadataError` is a `BadInput`, a lost
worker connection a `WorkerDown`), classified where the failure is caught, which is where its server is known.
"""

from __future__ import annotations

import enum
import errno
import signal
from typing import ClassVar


class Exit(enum.IntEnum):
    """`loader-assets` exit codes (0: success)."""

    FAILED = 1  # a level failed: a notice's error or a check, named in the message
    USAGE = 2  # a malformed query, file, metadata, option or setting
    UNKNOWN = 3  # no such case, notice, run or schedule
    WORKER_DOWN = 4  # a worker does not answer, refuses the login, or stalled
    CZAR_DOWN = 5
    CATALOG_DOWN = 6
    CASE_PAUSED = 7
    GATE_CLOSED = 8
    NO_DAEMON = 9
    INSTANCE_DOWN = 10  # the Dagster instance (its storage) cannot be used
    INTERRUPTED = 130  # SIGINT: 128 + 2
    TERMINATED = 143  # SIGTERM: 128 + 15


class Problem(Exception):
    """An expected failure: `cause` (what is wrong) and `fix` (what to do about it)."""

    exit_code: ClassVar[Exit] = Exit.FAILED

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}; {fix}")
        self.cause, self.fix = cause, fix

    def line(self) -> str:
        """The one line an operator reads."""
        return f"{self.cause}; {self.fix}"

    def __str__(self) -> str:
        return self.line()


class Failed(Problem):
    """A level, a check or a command's work did not succeed; the cause names what."""


class BadInput(Problem):
    exit_code = Exit.USAGE


class Unknown(Problem):
    exit_code = Exit.UNKNOWN

    @classmethod
    def named(cls, what: str, name: object, listing: str) -> Unknown:
        return cls(f"no {what} {name}", f"`loader-assets {listing}` lists them")


class ServerDown(Problem):
    """A MariaDB server of the cluster does not answer, refused the login, went away or stalled; `server` names
    it as the configuration does (a worker's name, or `czar`)."""

    def __init__(self, cause: str, fix: str, server: str | None = None) -> None:
        super().__init__(cause, fix)
        self.server = server


class WorkerDown(ServerDown):
    exit_code = Exit.WORKER_DOWN


class CzarDown(ServerDown):
    exit_code = Exit.CZAR_DOWN


class CatalogDown(Problem):
    exit_code = Exit.CATALOG_DOWN


class CasePaused(Problem):
    exit_code = Exit.CASE_PAUSED

    @classmethod
    def of(cls, case: str, state: str = "paused") -> CasePaused:
        """A case not `active` (`catalog.schema.case_state`), with what ends that state."""
        if state == "dropping":
            return cls(f"case {case} is being dropped (a drop under way or cut short): nothing is claimed",
                       f"once no drop runs, `loader-assets drop {case} --force` finishes it")  # fmt: skip
        if state == "registering":
            return cls(f"case {case} is registering: nothing is claimed",
                       "`loader-assets register` of its directory finishes the registration")  # fmt: skip
        return cls(f"case {case} is {state}: nothing is claimed", f"`loader-assets resume {case}`")


class GateClosed(Problem):
    exit_code = Exit.GATE_CLOSED

    @classmethod
    def at(cls, level: int, case: str, why: str) -> GateClosed:
        return cls(
            f"level {level} of case {case} cannot start: {why}",
            f"load and validate the level before it (`loader-assets load {case} --level {level - 1}`), "
            f"or see `loader-assets status --case {case}`",
        )


class NoDaemon(Problem):
    exit_code = Exit.NO_DAEMON

    @classmethod
    def at(cls, home: str) -> NoDaemon:
        return cls(
            f"no dagster-daemon is running for the instance at {home}: queued runs would wait",
            "start one (`dagster-daemon run -w workspace.yaml`, or `dagster dev`), or add --no-daemon to queue anyway",
        )


class InstanceDown(Problem):
    exit_code = Exit.INSTANCE_DOWN


class Interrupted(Problem):
    """A command stopped by a signal, after releasing what it held."""

    def __init__(self, signum: int, cause: str, fix: str) -> None:
        super().__init__(cause, fix)
        self.signum = int(signum)  # a plain number, whether given as one or as a `signal.Signals`

    @property
    def exit_code(self) -> Exit:  # type: ignore[override]  # the signal decides
        return Exit.TERMINATED if self.signum == signal.SIGTERM else Exit.INTERRUPTED


_UNWRITABLE = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM})


def unwritable(error: OSError, place: str, setting: str) -> BadInput | None:
    """The one line of a directory the command cannot write (read-only, full, not its user's), `setting` being
    what names it; None for any other error."""
    if error.errno not in _UNWRITABLE:
        return None
    return BadInput(f"cannot write {error.filename or place}: {error.strerror}",
                    f"free its disk or make it writable, or point {setting} at a directory that is")  # fmt: skip


# The kinds a run's failure can carry back to the command that ran it (a Dagster step failure's metadata).
_KINDS: dict[str, type[Problem]] = {
    kind.__name__: kind
    for kind in (Failed, BadInput, Unknown, WorkerDown, CzarDown, CatalogDown, CasePaused, GateClosed, InstanceDown)
}


def as_record(problem: Problem) -> dict[str, str | int]:
    """What a run's failure carries of a problem: its kind (the nearest exit-code kind), cause, fix, server."""
    record: dict[str, str | int] = {"problem": _kind_of(problem), "cause": problem.cause, "fix": problem.fix}
    if isinstance(problem, ServerDown) and problem.server:
        record["server"] = problem.server
    if isinstance(problem, Interrupted):
        record["signal"] = problem.signum
    return record


def from_record(record: dict[str, object]) -> Problem | None:
    """The problem `as_record` wrote, as its kind (None when the record is not one)."""
    kind, cause, fix = record.get("problem"), str(record.get("cause", "")), str(record.get("fix", ""))
    if kind == "Interrupted":
        return Interrupted(int(str(record.get("signal", signal.SIGINT))), cause, fix)
    found = _KINDS.get(str(kind))
    if found is None:
        return None
    if issubclass(found, ServerDown):
        return found(cause, fix, str(record["server"]) if "server" in record else None)
    return found(cause, fix)


def _kind_of(problem: Problem) -> str:
    if isinstance(problem, Interrupted):
        return "Interrupted"
    return next((kind.__name__ for kind in type(problem).__mro__ if kind.__name__ in _KINDS), "Failed")
