"""Steps on Celery: the executor a run hands its steps to, and the app the Celery workers run.

With `LOADER_EXECUTOR=celery` every run's steps go to the broker (`LOADER_CELERY_BROKER`, RabbitMQ) and are
executed by whichever Celery worker takes them, on any host that reaches the broker, the Dagster instance
(PostgreSQL), the catalog and the MariaDB servers. Start one with

    loader-assets celery-worker [--name w1]      # = celery -A loader_assets.defs.celery worker …

A worker killed in a step: its message was acknowledged only once the step ended (`task_acks_late`), so the
broker hands the step to another worker and it runs again; the notices the dead process held are taken back by
the stale sweeper (dead pid on this host, else an expired lease) and loaded by the next run or schedule.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_celery import celery_executor
from dagster_celery.config import DEFAULT_CONFIG, dict_wrapper
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from loader_assets import settings

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


def executor() -> dg.ExecutorDefinition:
    """The executor of every job: in the run's process, or on Celery (`LOADER_EXECUTOR`)."""
    if settings.executor() == "celery":
        # The broker by reference to the environment: a password in it is never written into a definition.
        broker = {"env": BROKER_ENV} if os.environ.get(BROKER_ENV) else settings.celery_broker()
        return celery_executor.configured({"broker": broker, "backend": BACKEND, "config_source": CONFIG_SOURCE})
    # A step's loads already run in parallel (threads, every worker at once): a process per step would only
    # add its start-up (seconds) to every run.
    return dg.in_process_executor


def worker_command(name: str | None = None) -> list[str]:
    """The command of one Celery worker: `solo` pool, so a step runs in the worker's own process, one at a time."""
    return ["celery", "-A", __name__, "worker", "-Q", QUEUE, "--pool", "solo", "--loglevel", "INFO",
            *(["-n", f"{name}@%h"] if name else [])]  # fmt: skip


# What `celery -A loader_assets.defs.celery worker` runs: configured as dagster-celery builds the executor's own
# app (its defaults, then CONFIG_SOURCE), so both sides agree.
app = make_app({"broker": settings.celery_broker(), "backend": BACKEND,
                "config_source": dict_wrapper({**DEFAULT_CONFIG, **CONFIG_SOURCE})})  # fmt: skip
execute_plan = create_task(app)
