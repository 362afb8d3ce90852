"""A Celery worker executing the steps of runs (`LOADER_EXECUTOR=celery`), started as dagster-celery documents:
`dagster-celery worker start`, which starts `celery worker` as its own child. This command stays their parent
and passes SIGINT and SIGTERM on to both, so stopping it (a terminal, systemd, Kubernetes) stops the worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import yaml

from loader_assets.engine.interruption import INTERRUPTION
from loader_assets.operations.context import Context
from loader_assets.settings import child_environment


def worker_command(ctx: Context, name: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The command that runs one Celery worker and its environment; its config (the executor's block) written
    beside the instance."""
    from loader_assets.defs.celery import worker_command, worker_config  # Dagster is imported only when used
    from loader_assets.defs.instance import config_path
    from loader_assets.operations.cases import init

    if not config_path(ctx.settings).exists():
        init(ctx)
    path = ctx.settings.dagster_home / "celery_worker.yaml"
    path.write_text(yaml.safe_dump(worker_config(ctx.settings), sort_keys=False))
    command = worker_command(str(path), name)
    return [str(Path(sys.executable).parent / command[0]), *command[1:]], child_environment(ctx.settings)


def run_worker(ctx: Context, name: str | None = None) -> int:
    """Run the worker in its own process group until it ends; a signal to this process goes to the whole group
    (the step it runs gives its notices back, then it stops: `defs.celery.interrupt_loads`), and ends this
    command with that signal's line and exit code. Returns the worker's exit code when it ended by itself."""
    command, environment = worker_command(ctx, name)
    worker = subprocess.Popen(command, env=environment, start_new_session=True)

    def forward(signum: int, _frame: FrameType | None) -> None:
        INTERRUPTION.interrupt(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    code = worker.wait()
    if INTERRUPTION.is_set:
        raise INTERRUPTION.problem("the Celery worker stopped, the notices of its step given back")
    return code
