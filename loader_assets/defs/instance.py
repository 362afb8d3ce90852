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
from urllib.parse import parse_qsl, urlsplit

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
    storage = _postgres_storage()
    if storage:
        config["storage"] = storage
    return config


def _postgres_storage() -> dict | None:
    """dagster-postgres storage for `LOADER_DAGSTER_PG_URL`, its driver normalised like the catalog's.

    A URL without a password is written out in parts (with the psycopg2 scheme), so a daemon or webserver started
    by hand reads the same; one with a password stays in the environment, normalised here for this process and
    the processes it starts (a daemon started apart needs the `postgresql+psycopg2://` form)."""
    url = os.environ.get(PG_URL_ENV)
    if not url:
        return None
    url = os.environ[PG_URL_ENV] = settings.psycopg2_url(url)
    parts = urlsplit(url)
    if parts.password is not None:
        return {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    scheme, db_name = parts.scheme, parts.path.lstrip("/")
    postgres_db = {"username": parts.username or "postgres", "hostname": parts.hostname or "127.0.0.1",
                   "port": parts.port or 5432, "db_name": db_name or "postgres", "scheme": scheme}  # fmt: skip
    if parts.query:
        postgres_db["params"] = dict(parse_qsl(parts.query))
    return {"postgres": {"postgres_db": postgres_db}}


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
