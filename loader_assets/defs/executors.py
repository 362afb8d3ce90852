"""The executor of each job, as `LOADER_EXECUTOR` says, and what it means for a run's shares.

- `in_process` (the default): a run's one step loads into every worker at once, in threads of the run's process.
- `multiprocess`: `loader-assets load`'s runs (a level over every worker) take a step per MariaDB worker, each in
  a process of its own (Dagster's multiprocess executor): one load past one GIL, for a host with cores to spare and
  many workers. Each step costs a process; the `qserv_load` pool bounds how many load at once. Queued runs (the
  code location's) are one worker each already: they stay in process.
- `celery`: every run takes a step per MariaDB worker, on whichever Celery worker takes it, on any host.

A step process stops as a load here does (`INTERRUPTION`): on SIGINT or SIGTERM — the terminal's, the one `load`
forwards when it is signalled, or Dagster's when its run is terminated — its loads give back what they hold,
however many times it comes.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import dagster as dg

from loader_assets.engine.interruption import INTERRUPTION
from loader_assets.settings import Settings

# Step processes of one run at once: one per MariaDB worker (and one for the regular tables); the pool, not this,
# is the limit an operator sets.
MAX_STEP_PROCESSES = 256
# What the step processes fork from: Dagster and the load job imported once, not in every step (~1 s each).
PRELOADED = ["loader_assets.defs.platform"]
FORWARD_EVERY = 0.2  # seconds between two rounds of signals to the step processes of an interrupted load


def executor(settings: Settings) -> dg.ExecutorDefinition:
    """The code location's (queued runs, the UI's): in process, or on Celery."""
    if settings.executor == "celery":
        from loader_assets.defs.celery import celery_executor  # dagster_celery: 0.2 s of every start-up otherwise

        return celery_executor(settings)
    # A step's loads already run in parallel (threads, every worker at once): a process per step would only
    # add its start-up to every run.
    return dg.in_process_executor


def load_executor(settings: Settings) -> dg.ExecutorDefinition:
    """`loader-assets load`'s."""
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": MAX_STEP_PROCESSES, "start_method": {"forkserver": {"preload_modules": PRELOADED}}}
        )
    return executor(settings)


def step_per_worker(chosen: dg.ExecutorDefinition) -> bool:
    """Whether a run's notices go in a step per MariaDB worker (steps the executor runs elsewhere, so never through
    `execute_in_process`, which runs every step in its caller's process) or in one step spanning them all."""
    return chosen is not dg.in_process_executor


def stop_on_signals(settings: Settings) -> None:
    """In a step process of `load`'s (its main thread): SIGINT and SIGTERM interrupt its loads, as the CLI's
    handler does."""
    if settings.executor == "multiprocess" and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda received, _frame: INTERRUPTION.interrupt(received))


@contextmanager
def interrupts_forwarded() -> Iterator[None]:
    """While the block runs a run's steps in processes of their own: once this process is interrupted, the same
    signal to each of them, again every FORWARD_EVERY s, so that a step started after the interrupt stops too."""
    ended = threading.Event()

    def forward() -> None:
        while not ended.is_set():
            if INTERRUPTION.event.wait(FORWARD_EVERY) and not ended.is_set():
                for pid in step_processes(os.getpid()):
                    with suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, INTERRUPTION.signum or signal.SIGINT)
                ended.wait(FORWARD_EVERY)

    forwarder = threading.Thread(target=forward, name="interrupt-forwarder", daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        ended.set()
        forwarder.join()


def step_processes(pid: int) -> list[int]:
    """The step processes below `pid`: the children of its multiprocessing forkserver (not their own helpers)."""
    children = children_by_parent()
    servers = [child for child in children.get(pid, []) if b"forkserver" in _command(child)]
    return [step for server in servers for step in children.get(server, [])]


def children_by_parent() -> dict[int, list[int]]:
    """Parent pid -> its children's pids, from Linux's /proc."""
    found: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            found.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return found


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
