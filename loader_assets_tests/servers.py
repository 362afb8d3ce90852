"""What the tests and the benchmarks start or borrow from the real servers, written once: a throwaway PostgreSQL
database, and a `dagster-daemon` on an instance (its sensors ticking, its run queue launching)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from sqlalchemy import create_engine, text

REPOSITORY = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "LOADER_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
DAEMON_START_SECONDS = 90


@contextmanager
def postgres_database(prefix: str = "loader_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database (its URL), dropped afterwards whoever still holds it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def dagster_daemon(
    instance: dg.DagsterInstance, log_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the repository's workspace, once its sensor and run-queue daemons beat for
    `instance`; stopped (its whole process group) afterwards."""
    log = log_path.open("wb")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPOSITORY / "workspace.yaml")],
        cwd=REPOSITORY, env=dict(env if env is not None else os.environ), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + DAEMON_START_SECONDS
        while {"SENSOR", "QUEUED_RUN_COORDINATOR"} - set(instance.get_daemon_heartbeats()):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dagster-daemon did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield daemon
    finally:
        stop_group(daemon)
        log.close()


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM a process group, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
