"""The executor of every job, as `LOADER_EXECUTOR` says, and what it means for a run's shares.

- `in_process` (the default): a run's one step loads into every worker at once, in threads of the run's process.
- `multiprocess`: a step per MariaDB worker, each in a process of its own (Dagster's multiprocess executor): one
  run's loads past one GIL, for a host with cores to spare and many workers. Each step costs a process; the
  `qserv_load` pool bounds how many load at once, instance-wide.
- `celery`: a step per MariaDB worker, on whichever Celery worker takes it, on any host (`celery`).
"""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path

import dagster as dg

from loader_assets.settings import Settings

# Step processes of one run at once: one per MariaDB worker (and one for the regular tables); the pool, not this,
# is the limit an operator sets.
MAX_STEP_PROCESSES = 256
# What the step processes fork from: Dagster and the load job imported once, not in every step (~1 s each).
PRELOADED = ["loader_assets.defs.platform"]


def executor(settings: Settings) -> dg.ExecutorDefinition:
    if settings.executor == "celery":
        from loader_assets.defs.celery import celery_executor  # dagster_celery: 0.2 s of every start-up otherwise

        return celery_executor(settings)
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor.configured(
            {"max_concurrent": MAX_STEP_PROCESSES, "start_method": {"forkserver": {"preload_modules": PRELOADED}}}
        )
    # A step's loads already run in parallel (threads, every worker at once): a process per step would only
    # add its start-up to every run.
    return dg.in_process_executor


def step_per_worker(settings: Settings) -> bool:
    """Whether a run's notices go in a step per MariaDB worker (run by the executor, so never through
    `execute_in_process`, which runs every step in its caller's process) or in one step spanning them all."""
    return settings.executor != "in_process"


def interrupt_step_processes(_why: str) -> None:
    """Tell the step processes this one started to stop, as its own loads do on an interrupt: SIGINT, which
    Dagster raises in a step's thread, so its loads give their notices back. The forkserver they fork from ignores
    it. (A terminal's Ctrl-C reaches them already; a SIGTERM sent to the command alone does not.)"""
    for pid in descendants(os.getpid()):
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGINT)


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux's /proc), children first."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in parents.get(parent, [])]
        found += frontier
    return found
