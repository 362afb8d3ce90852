"""`loader-assets` whose load stops itself (SIGSTOP) as its sixth notice starts: the notices held, nothing in flight.

Run as `python -m loader_assets_tests.recovery.frozen_load load CASE --level 1`, with the in-process executor (the
default: a step process of `LOADER_EXECUTOR=multiprocess` would import the loader without these hooks). Every part
of a load that writes to a worker, the czar, the catalog or the Dagster instance takes one lock here, so the stop
never falls inside a statement or a transaction that holds locks (a client frozen there holds them until its
server gives up on it); the notices load one at a time meanwhile. The progress bars' catalog reads and the
watchdog (which queries only while a statement runs) go on beside it: they hold nothing a sweep or a reload waits
for. The test of a run frozen beyond its lease is then deterministic, with no search for a quiet moment.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from loader_assets.cli import main
from loader_assets.engine.load import Heartbeat, Loader

STOP_AT = 6  # the notice whose start stops the process: five are done by then, the rest held
QUIET = threading.RLock()  # re-entered: a notice's load makes its tables and beats
started = 0


def quiet(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        with QUIET:
            return function(*args, **kwargs)

    return call


def stopping(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        global started
        with QUIET:
            started += 1
            if started == STOP_AT:  # sent to this thread: it stops before going on (sent to the process, it
                signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)  # may run on until another stops it)
            return function(*args, **kwargs)

    return call


def load(loader: Loader, notice_ids: Any, owner: Any, **kwargs: Any) -> Any:
    """The load, its progress lines and chunk reports (writes to the Dagster instance) taking the lock too."""
    for name in ("progress", "on_chunk"):
        if kwargs.get(name) is not None:
            kwargs[name] = quiet(kwargs[name])
    return LOAD(loader, notice_ids, owner, **kwargs)


LOAD = Loader.load
Loader.load = load  # type: ignore[method-assign]
Loader._load_claim = stopping(Loader._load_claim)  # type: ignore[method-assign]
for name in ("_prepare", "_index_chunks", "_census_chunk"):
    setattr(Loader, name, quiet(getattr(Loader, name)))
Heartbeat.beat = quiet(Heartbeat.beat)  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
