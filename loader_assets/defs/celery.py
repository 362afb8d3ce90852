"""Steps on Celery: the executor a run hands its steps to, and how a Celery worker is started.

With `LOADER_EXECUTOR=celery` every run's steps go to the broker (`LOADER_CELERY_BROKER`, RabbitMQ) and are
executed by whichever Celery worker takes them, on any host that reaches the broker, the Dagster instance
(PostgreSQL), the catalog and the MariaDB servers. A worker is started the way dagster-celery documents,
`dagster-celery worker start -A dagster_celery.app -y <config>`, the config being this executor's own block;
`loader-assets celery-worker [--name w1]` writes that block and runs it.

A worker killed in a step: its message was acknowledged only once the step ended (`task_acks_late`), so the
broker hands the step to another worker and it runs again; the notices the dead process held are taken back by
the next load or the sweeper (dead pid on this host, else an expired lease). A worker told to stop (SIGTERM,
SIGINT) does not finish its step's files: the load gives its notices back at once, and the worker ends.
"""

from __future__ import annotations

import signal
import sys

import dagster as dg

from loader_assets.engine.interruption import INTERRUPTION
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


def celery_executor(settings: Settings) -> dg.ExecutorDefinition:
    from dagster_celery import celery_executor as executor  # imported only when used: 0.2 s of every start-up

    return executor.configured(executor_config(settings))


def worker_command(config_yaml: str, name: str | None = None) -> list[str]:
    """dagster-celery's documented worker start. One step at a time, in the worker's own process (a killed worker
    takes exactly its step with it), on a thread of its own: Dagster then leaves the process's signal handlers to
    Celery, whose warm shutdown interrupts the step's loads (`interrupt_loads`)."""
    return ["dagster-celery", "worker", "start", "-A", "dagster_celery.app", "-y", config_yaml, "-q", QUEUE,
            *(["-n", name] if name else []), "--", "--pool", "threads", "--concurrency", "1"]  # fmt: skip


def worker_config(settings: Settings) -> dict:
    """The file `dagster-celery worker start -y` reads: the executor's block, as a job's run config gives it."""
    return {"execution": {"config": executor_config(settings)}}


def interrupt_loads(sig: str = "SIGTERM", **_: object) -> None:
    """Celery's warm shutdown would wait for the step to load all its files: its loads are interrupted instead
    (statements abandoned, notices given back), so the worker stops within seconds."""
    INTERRUPTION.interrupt(getattr(signal, sig if sig.startswith("SIG") else f"SIG{sig}", signal.SIGTERM))


# Connected when a step first imports the definitions in a Celery worker's process, which has imported Celery
# before; a process without Celery does not import it for this.
if "celery" in sys.modules:
    from celery import signals as celery_signals

    celery_signals.worker_shutting_down.connect(interrupt_loads)
