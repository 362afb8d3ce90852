"""Steps on Celery: the executor a run hands its steps to, and how a Celery worker is started.

With `LOADER_EXECUTOR=celery` every run's steps go to the broker (`LOADER_CELERY_BROKER`, RabbitMQ) and are
executed by whichever Celery worker takes them, on any host that reaches the broker, the Dagster instance
(PostgreSQL), the catalog and the MariaDB servers. A worker is started the way dagster-celery documents,
`dagster-celery worker start -A dagster_celery.app -y <config>`, the config being this executor's own block;
`loader-assets celery-worker [--name w1]` writes that block and runs it.

A worker killed in a step: its message was acknowledged only once the step ended (`task_acks_late`), so the
broker hands the step to another worker and it runs again; the notices the dead process held are taken back by
the next load or the sweeper (dead pid on this host, else an expired lease).
"""

from __future__ import annotations

import dagster as dg
from dagster_celery import celery_executor

from loader_assets.settings import Settings

BROKER_ENV = "LOADER_CELERY_BROKER"
QUEUE = "dagster"  # dagster-celery's default queue: steps carry no queue tag
BACKEND = "rpc://"  # a step's events come back to the run's process through the broker
# Both sides must agree on these (the executor publishes, the workers consume).
CONFIG_SOURCE = {
    "task_acks_late": True,  # a worker that dies in a step leaves its message to be delivered again
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,  # a worker takes one step at a time: a waiting step goes to an idle worker
    "broker_connection_retry_on_startup": True,
}


def executor_config(settings: Settings) -> dict:
    """The celery executor's config block; the broker by reference to the environment when it is set there (a
    password in it is never written into a definition or a file of ours)."""
    broker = {"env": BROKER_ENV} if settings.celery_broker_from_env else settings.celery_broker
    return {"broker": broker, "backend": BACKEND, "config_source": CONFIG_SOURCE}


def executor(settings: Settings) -> dg.ExecutorDefinition:
    """The executor of every job: in the run's process, or on Celery (`LOADER_EXECUTOR`)."""
    if settings.executor == "celery":
        return celery_executor.configured(executor_config(settings))
    # A step's loads already run in parallel (threads, every worker at once): a process per step would only
    # add its start-up (seconds) to every run.
    return dg.in_process_executor


def worker_command(config_yaml: str, name: str | None = None) -> list[str]:
    """dagster-celery's documented worker start; `solo` pool: a step runs in the worker's own process, one at a
    time (a killed worker then takes exactly its step with it)."""
    return ["dagster-celery", "worker", "start", "-A", "dagster_celery.app", "-y", config_yaml, "-q", QUEUE,
            *(["-n", name] if name else []), "--", "--pool", "solo"]  # fmt: skip


def worker_config(settings: Settings) -> dict:
    """The file `dagster-celery worker start -y` reads: the executor's block, as a job's run config gives it."""
    return {"execution": {"config": executor_config(settings)}}
