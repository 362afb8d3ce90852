"""A connection left idle after a clean block serves the next one; nothing doubtful is ever reused; a server that
accepts but does not answer is down in seconds."""

from __future__ import annotations

import os
import select
import signal

import pytest

from loader_assets.problems import WorkerDown
from loader_assets.workers import local
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.connection import IdleConnections, Server, close_idle_connections
from loader_assets.workers.statements import InFlight
from loader_assets_tests.recovery.helpers import all_threads_stopped, wait_for


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


def pings_of(conn) -> int:  # type: ignore[no-untyped-def]
    """The pings this connection's session received (a ping is an admin command to the server)."""
    with conn.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Com_admin_commands'")
        return int(cursor.fetchone()[1])


@pytest.mark.parametrize(("fresh_seconds", "pinged"), [(3600.0, False), (0.0, True)])
def test_a_connection_reused_within_its_fresh_spell_costs_no_ping(cluster: Cluster, monkeypatch, fresh_seconds, pinged):  # type: ignore[no-untyped-def]
    """Within FRESH_SECONDS of its last block a connection is reused as it is (a file's load costs its worker no
    round trip but the LOAD DATA); after it, it is pinged first."""
    monkeypatch.setattr(IdleConnections, "FRESH_SECONDS", fresh_seconds)
    server = cluster.worker("worker1")
    with server.connect(reuse=True) as first:  # perhaps a connection an earlier test left, pinged then
        before = pings_of(first)
    with server.connect(reuse=True) as conn:
        assert conn is first
        assert (pings_of(conn) > before) is pinged


def test_an_idle_connection_the_server_dropped_is_replaced_not_reported(cluster: Cluster) -> None:
    server = cluster.worker("worker1")
    idle = connection_id(server)
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"KILL CONNECTION {idle}")
    assert connection_id(server) not in (idle, 0)


def test_idle_connections_outlive_a_restart_of_their_server(cluster: Cluster, cluster_state) -> None:  # type: ignore[no-untyped-def]
    server = cluster.worker("worker2")
    with server.connect(reuse=True) as conn:
        before = conn
    local.stop_server(cluster_state, "worker2")
    local.start_server(cluster_state, "worker2")
    with server.connect(reuse=True) as conn, conn.cursor() as cursor:  # no "went away": a new connection
        cursor.execute("SELECT 1")
        assert conn is not before and not before.open


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
    try:
        assert select.select([reader], [], [], 30)[0], "the forked process never connected"
        assert int(os.read(reader, 64)) != parent
    finally:
        os.waitpid(child, 0)
        os.close(reader)
    assert connection_id(server) == parent


def test_idle_connections_are_closed_when_the_process_ends(cluster: Cluster) -> None:
    server = cluster.worker("worker1")
    with server.connect(reuse=True) as conn:
        idle = conn
    close_idle_connections()  # what the process runs at exit: each server told goodbye (COM_QUIT), not dropped
    assert not idle.open
    with server.connect(reuse=True) as conn:
        assert conn is not idle


def test_a_frozen_worker_is_down_in_seconds_not_waited_on(cluster: Cluster, cluster_state, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """SIGSTOP: the kernel still accepts connections, nothing answers them. The idle connection's ping and the new
    connection's greeting are each bounded (pymysql would wait for ever on both). One idle for less than
    FRESH_SECONDS is not pinged (a freeze since is one mid-statement, the stall watchdog's): here every one is."""
    monkeypatch.setattr(IdleConnections, "FRESH_SECONDS", 0.0)
    server = cluster.worker("worker2")
    connection_id(server)  # an idle connection to ping first
    pid = local.cluster_status(cluster_state)["worker2"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        # kill() returns before every thread stopped: a thread running on the other core answered a ping in that
        # moment once (a full `make test`)
        wait_for(lambda: all_threads_stopped(pid), "worker2 to stop")
        with pytest.raises(WorkerDown, match=r"worker worker2 .* does not answer"), server.connect(reuse=True):
            pass
    finally:
        os.kill(pid, signal.SIGCONT)
    assert connection_id(server)  # back once it runs again
