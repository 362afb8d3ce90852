"""The local development cluster (a czar and N mariadbd workers under the state dir): up, down, list."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loader_assets.operations.context import Context
from loader_assets.problems import BadInput, unwritable
from loader_assets.workers import local
from loader_assets.workers.cluster import ClusterConfig


def binaries(ctx: Context) -> local.Binaries:
    return local.Binaries(ctx.settings.mariadbd, ctx.settings.mariadb_install_db)


def up(ctx: Context, count: int) -> ClusterConfig:
    try:
        return local.start_cluster(ctx.settings.state_dir, count, binaries(ctx))
    except OSError as error:
        filename = os.fsdecode(error.filename) if error.filename is not None else None
        named = {
            ctx.settings.mariadbd: ("LOADER_MARIADBD", "mariadbd"),
            ctx.settings.mariadb_install_db: ("LOADER_MARIADB_INSTALL_DB", "mariadb-install-db"),
        }
        if filename in named:  # a server binary that cannot run
            setting, program = named[filename]
            raise BadInput(
                f"cannot run {filename}: {error.strerror}", f"point {setting} at MariaDB's {program}"
            ) from error
        state_dir = ctx.settings.state_dir
        within = filename is None or Path(filename).is_relative_to(state_dir)
        if not within or (problem := unwritable(error, str(state_dir), "LOADER_STATE_DIR")) is None:
            raise
        raise problem from error


def down(ctx: Context) -> None:
    local.stop_cluster(ctx.settings.state_dir)


@dataclass(frozen=True)
class Listed:
    name: str
    url: str
    state: str  # "" for a configured (not local) server, else running/stopped


def listing(ctx: Context) -> list[Listed]:
    config = ClusterConfig.of(ctx.settings)
    configured = bool(ctx.settings.czar and ctx.settings.workers)
    status = {} if configured else local.cluster_status(ctx.settings.state_dir)

    def state(name: str) -> str:
        found = status.get(name)
        return "" if found is None else (f"running, pid {found['pid']}" if found["running"] else "stopped")

    return [Listed("czar", config.czar_url, state("czar"))] + [
        Listed(name, url, state(name)) for name, url in config.workers.items()
    ]
