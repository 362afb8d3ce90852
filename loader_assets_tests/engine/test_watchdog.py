"""A statement waiting for the reply of a worker that froze (SIGSTOP: the kernel keeps its connections open, nothing
answers) is given up by the stall watchdog, naming the worker, instead of waiting for ever."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from loader_assets.engine.watchdog import Watchdog
from loader_assets.workers import local
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.connection import Server
from loader_assets.workers.statements import InFlight, StatementAbandoned


def wait_for_statement(server: Server, sql: str, timeout: float = 30) -> None:
    """Until the server runs `sql` (the process list polled, as an operator would look)."""
    deadline = time.monotonic() + timeout
    with server.connect() as conn, conn.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = %s", (sql,))
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise TimeoutError(f"{sql} never ran")


def test_a_statement_on_a_frozen_worker_is_given_up_naming_it(cluster: Cluster, cluster_state) -> None:  # type: ignore[no-untyped-def]
    server, statements = cluster.worker("worker2"), InFlight()
    watchdog = Watchdog(statements, cluster, stall_seconds=2)
    pid = local.cluster_status(cluster_state)["worker2"]["pid"]

    def waiting_for_its_reply() -> None:
        with server.connect() as conn, statements.running(server, conn, "SELECT SLEEP(3)"), conn.cursor() as c:
            c.execute("SELECT SLEEP(3)")  # the worker freezes before it replies

    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(waiting_for_its_reply)
        wait_for_statement(server, "SELECT SLEEP(3)")
        os.kill(pid, signal.SIGSTOP)
        watchdog.start()
        try:
            with pytest.raises(StatementAbandoned, match=r"worker worker2 .* does not answer.*without an answer"):
                running.result(timeout=120)
        finally:
            os.kill(pid, signal.SIGCONT)
            watchdog.stop()
