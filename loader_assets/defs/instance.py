"""The persistent Dagster instance: `$DAGSTER_HOME/dagster.yaml` written from the repository's template.

A yaml file cannot switch storage on an environment variable by itself, so the switch happens here: SQLite by
default, dagster-postgres when `LOADER_DAGSTER_PG_URL` is set (read by Dagster from the environment at start,
never written to the file).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import yaml
from dagster import DagsterInstance

from loader_assets import problems, settings, tags

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


DAEMON_SILENT_SECONDS = 60  # a daemon that has not beaten for this long is taken for stopped


def daemon_check(instance: DagsterInstance) -> problems.Problem | None:
    """None when a dagster-daemon beats for this instance; else the problem, with its fix."""
    now = time.time()
    beats = instance.get_daemon_heartbeats()
    if any(now - beat.timestamp < DAEMON_SILENT_SECONDS for beat in beats.values()):
        return None
    return problems.no_daemon(str(settings.dagster_home()))


def webserver_check(address: str) -> str | None:
    """None when a Dagster webserver answers at `address` (host:port); else why not."""
    try:
        with urllib.request.urlopen(f"http://{address}/server_info", timeout=2) as response:
            json.load(response)
    except (OSError, ValueError) as error:
        return f"no Dagster webserver at {address} ({type(error).__name__}); `dagster dev -w workspace.yaml` starts one"
    return None
