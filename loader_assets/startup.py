"""A command's start-up: Dagster, pandas and SQLAlchemy make about a million objects while they are imported, and
each full sweep of Python's cyclic garbage collector walks all of them again. Measured on `loader-assets load`
(benchmarks/end_to_end.py): 1.1 CPU-s of its start-up went to such sweeps, 0.5 of `register`'s.

So the command line imports with the collector paused, then freezes what the imports made (module objects live as
long as the process: no later sweep walks them again). A notebook or a test process only pauses it.
"""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE = False  # set by the command line's entry point: its process keeps what it imported until it ends


@contextmanager
def importing() -> Iterator[None]:
    """Imports (and the definitions they build) with the cyclic garbage collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if FREEZE:
            gc.freeze()
        if enabled:
            gc.enable()


class _Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _raise_signalled(signum: int, _frame: object) -> None:
    raise _Signalled(signum)


def main() -> int:
    """The `loader-assets` console script. A SIGINT or SIGTERM while it imports (the first second) ends it with
    the interrupt's line and exit code, as later: the command line installs its own handlers once imported."""
    global FREEZE
    FREEZE = True
    try:
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _raise_signalled)
        with importing():
            from loader_assets.cli import main as run
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    except _Signalled as stop:
        return _stopped_while_starting(stop.signum)
    try:
        return run()
    except KeyboardInterrupt:  # before the command line's own handlers (while it reads its arguments)
        return _stopped_while_starting(signal.SIGINT)


def _stopped_while_starting(signum: int) -> int:
    for ignored in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the line short
        signal.signal(ignored, signal.SIG_IGN)
    from loader_assets.problems import Interrupted

    stopped = Interrupted(signum, f"interrupted by {signal.Signals(signum).name} while starting: nothing was done",
                          "run the command again")  # fmt: skip
    print(f"loader-assets: {stopped.line()}", file=sys.stderr)
    return int(stopped.exit_code)
