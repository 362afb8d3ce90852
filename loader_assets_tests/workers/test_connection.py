"""A connection left idle after a clean block serves the next one; nothing doubtful is ever reused."""

from __future__ import annotations

import os

import pytest

from loader_assets.workers import local
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.connection import Server, close_idle_connections
from loader_assets.workers.statements import InFlight


def connection_id(server: Server) -> int:
    with server.connect(reuse=True) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return int(cursor.fetchone()[0])


def test_a_clean_block_leaves_its_connection_to_the_next(cluster: Cluster) -> None:
    server = cluster.worker("worker1")
    assert connection_id(server) == connection_id(server)
    with server.connect() as conn:  # not asked to reuse: its own connection
        assert conn.thread_id() != connection_id(server)


def test_a_block_that_raised_closes_its_connection(cluster: Cluster) -> None:
    server = cluster.worker("worker1")
    first = connection_id(server)
    with pytest.raises(RuntimeError), server.connect(reuse=True) as conn:
        assert conn.thread_id() == first
        raise RuntimeError("its caller failed half-way: the session's state is unknown")
    assert connection_id(server) != first


def test_an_idle_connection_the_server_dropped_is_replaced_not_reported(cluster: Cluster) -> None:
    server = cluster.worker("worker1")
    idle = connection_id(server)
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"KILL CONNECTION {idle}")
    assert connection_id(server) not in (idle, 0)


def test_idle_connections_outlive_a_restart_of_their_server(cluster: Cluster, cluster_state) -> None:  # type: ignore[no-untyped-def]
    server = cluster.worker("worker2")
    before = connection_id(server)
    local.stop_server(cluster_state, "worker2")
    local.start_server(cluster_state, "worker2")
    assert connection_id(server) != before  # a new one, no "went away"


def test_a_statement_abandoned_after_its_block_ended_leaves_the_connection_alone(cluster: Cluster) -> None:
    server, statements = cluster.worker("worker1"), InFlight()
    with server.connect(reuse=True) as conn, statements.running(server, conn, "SELECT 1") as entry:
        first = conn.thread_id()
    statements.abandon(entry, "a stall seen too late")  # the watchdog's snapshot was taken before the block ended
    assert entry.abandoned_because is None
    assert connection_id(server) == first


def test_a_forked_process_opens_its_own_connections(cluster: Cluster) -> None:
    server = cluster.worker("worker1")
    parent = connection_id(server)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: a connection of its own, the parent's socket left untouched
        try:
            os.write(writer, str(connection_id(server)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    assert int(os.read(reader, 64)) != parent
    os.waitpid(child, 0)
    assert connection_id(server) == parent


def test_idle_connections_are_closed_when_the_process_ends(cluster: Cluster) -> None:
    server = cluster.worker("worker1")
    idle = connection_id(server)
    close_idle_connections()  # what the process runs at exit: each server told goodbye, not dropped
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (idle,))
        assert cursor.fetchone()[0] == 0
