"""The persistent Dagster instance: `$DAGSTER_HOME/dagster.yaml` written from the repository's template.

A yaml file cannot switch storage on an environment variable by itself, so the switch happens here: SQLite by
default, dagster-postgres when `LOADER_DAGSTER_PG_URL` is set (read by Dagster from the environment at start,
never written to the file).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from dagster import DagsterInstance

from loader_assets import settings, tags

TEMPLATE = Path(__file__).resolve().parents[2] / "dagster.yaml"
PG_URL_ENV = "LOADER_DAGSTER_PG_URL"
LOAD_POOL = "qserv_load"  # concurrency pool of every load step, created before runs race to create it


def instance_config() -> dict:
    config = yaml.safe_load(TEMPLATE.read_text())
    for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]:
        if limit["key"] == tags.WORKER:
            limit["limit"] = settings.runs_per_worker()
    if os.environ.get(PG_URL_ENV):
        config["storage"] = {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    return config


def prepare_instance() -> DagsterInstance:
    """Write `$DAGSTER_HOME/dagster.yaml`, open the instance and create the load pool."""
    home = settings.dagster_home()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config(), sort_keys=False))
    instance = DagsterInstance.get()
    if instance.event_log_storage.get_concurrency_info(LOAD_POOL).slot_count == 0:
        instance.event_log_storage.set_concurrency_slots(LOAD_POOL, 4 * settings.runs_per_worker())
    return instance
