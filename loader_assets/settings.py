"""Environment of a loader_assets process: where its state lives and which servers it talks to.

Credentials come from the environment only; nothing here is read from a file committed to the repository.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def state_dir() -> Path:
    """Directory for the embedded catalog, the local worker cluster and other local state."""
    path = Path(os.environ.get("LOADER_STATE_DIR", ".state")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def catalog_url() -> str:
    """SQLAlchemy URL of the operational catalog: `LOADER_CATALOG_URL`, else a SQLite file in the state dir."""
    url = os.environ.get("LOADER_CATALOG_URL")
    return url if url else f"sqlite:///{state_dir() / 'catalog.sqlite'}"


def lease_seconds() -> float:
    """How long a claimed notice stays locked without a heartbeat before it may be taken back."""
    return float(os.environ.get("LOADER_LEASE_SECONDS", "300"))


def max_attempts() -> int:
    """After this many failed attempts a notice is parked until an operator resets it."""
    return int(os.environ.get("LOADER_MAX_ATTEMPTS", "3"))


def dagster_home() -> Path:
    """`DAGSTER_HOME`, else `<state dir>/dagster`; exported so Dagster's own code finds the same instance."""
    home = Path(os.environ.get("DAGSTER_HOME") or state_dir() / "dagster").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def runs_per_worker() -> int:
    """How many runs may load into one worker node at once (a run-queue tag limit)."""
    return int(os.environ.get("LOADER_RUNS_PER_WORKER", "2"))


def streams_per_worker() -> int:
    """LOAD DATA statements a run keeps going at once into each worker (`benchmarks/end_to_end.py` measured
    the default: one stream leaves a worker idle between files, more than two gain nothing)."""
    return int(os.environ.get("LOADER_STREAMS_PER_WORKER", "2"))


def sensor_interval() -> int:
    """Seconds between two evaluations of the selection and sweeper sensors (tests shorten it)."""
    return int(os.environ.get("LOADER_SENSOR_INTERVAL", "30"))


EXECUTORS = ("in_process", "celery")


def executor() -> str:
    """Where a run's steps execute: `in_process` (default: in the run's own process) or `celery` (on the Celery
    workers listening on the broker; `loader-assets celery-worker` starts one)."""
    name = os.environ.get("LOADER_EXECUTOR", "in_process")
    if name not in EXECUTORS:
        raise ValueError(f"LOADER_EXECUTOR={name!r}: expected one of {', '.join(EXECUTORS)}")
    return name


def celery_broker() -> str:
    """The Celery broker (RabbitMQ): `LOADER_CELERY_BROKER`, else RabbitMQ's guest account on this host."""
    return os.environ.get("LOADER_CELERY_BROKER", "pyamqp://guest@127.0.0.1:5672//")


def psycopg2_url(url: str) -> str:
    """A PostgreSQL URL with the driver the project ships: SQLAlchemy 2.1 reads `postgresql://` (and Dagster's
    `postgres://`) as psycopg 3. Any other URL is returned as it is."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url)
