"""The local development cluster: idempotent start, status, stale pid files, stop and restart."""

from __future__ import annotations

import os

from loader_assets.workers import local
from loader_assets.workers.cluster import Cluster


def test_start_is_idempotent(cluster_state, cluster_config):
    before = local.cluster_status(cluster_state)
    assert local.start_cluster(cluster_state, 2) == cluster_config
    after = local.cluster_status(cluster_state)
    assert {name: s["pid"] for name, s in after.items()} == {name: s["pid"] for name, s in before.items()}
    assert set(after) == {"czar", "worker1", "worker2"} and all(s["running"] for s in after.values())


def test_root_connects_over_tcp_with_empty_password_and_local_infile(cluster_config):
    cluster = Cluster(cluster_config)
    for server in [cluster.czar, *cluster.workers.values()]:
        with server.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT @@local_infile, @@bind_address")
            assert cursor.fetchone() == (1, "127.0.0.1")


def test_stale_pid_file_is_replaced_on_start(cluster_state, cluster_config):
    local.stop_server(cluster_state, "worker2")
    assert not local.cluster_status(cluster_state)["worker2"]["running"]
    server = local.LocalServer(cluster_state, "worker2")
    server.pid_file.write_text(f"{os.getpid()}\n")  # a live process, but not this server
    assert server.pid() is None
    local.start_cluster(cluster_state, 2)
    status = local.cluster_status(cluster_state)["worker2"]
    assert status["running"] and status["pid"] != os.getpid()
    with Cluster(cluster_config).worker("worker2").connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1")
