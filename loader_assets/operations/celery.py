"""A Celery worker executing the steps of runs (`LOADER_EXECUTOR=celery`), started as dagster-celery documents."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

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
