"""Cluster configuration and Qserv chunk placement (stored at the czar, balanced, stable, per family)."""

from __future__ import annotations

import json
import uuid

import pytest

from loader_assets.problems import BadInput
from loader_assets.settings import Settings
from loader_assets.workers.cluster import Cluster, ClusterConfig, choose_workers, parse_worker_list


def settings_of(tmp_path, **environ: str) -> Settings:
    return Settings.from_env({"LOADER_STATE_DIR": str(tmp_path), **environ})


def test_config_from_env_names_workers(tmp_path):
    settings = settings_of(tmp_path, LOADER_CZAR="mysql+pymysql://root@czar:3306",
                           LOADER_WORKERS="mysql+pymysql://qsmaster@w1:3306, big=mysql+pymysql://qsmaster@w2:3307")  # fmt: skip
    config = ClusterConfig.of(settings)
    assert config.czar_url == "mysql+pymysql://root@czar:3306"
    assert config.workers == {"worker1": "mysql+pymysql://qsmaster@w1:3306", "big": "mysql+pymysql://qsmaster@w2:3307"}
    cluster = Cluster.of(settings)
    assert {name: server.url for name, server in cluster.workers.items()} == config.workers
    assert str(cluster.worker("big")) == "worker big (w2:3307)" and str(cluster.czar) == "the czar (czar:3306)"


def test_config_falls_back_to_workers_json(cluster_state, cluster_config):
    assert ClusterConfig.of(Settings.from_env({"LOADER_STATE_DIR": str(cluster_state)})) == cluster_config
    stored = json.loads((cluster_state / "workers.json").read_text())
    assert set(stored) == {"czar", "workers"}
    assert ":@" not in json.dumps(stored)  # no password anywhere


def test_passwords_are_refused_in_urls(tmp_path):
    settings = settings_of(tmp_path, LOADER_CZAR="mysql+pymysql://root:secret@czar:3306",
                           LOADER_WORKERS="mysql+pymysql://root@w1:3306")  # fmt: skip
    with pytest.raises(BadInput, match="LOADER_WORKER_PASSWORD") as failure:
        ClusterConfig.of(settings)
    assert "secret" not in str(failure.value)


def test_no_cluster_configured_says_how_to_configure_one(tmp_path):
    with pytest.raises(BadInput, match=r"no cluster configured .*; set LOADER_CZAR and LOADER_WORKERS"):
        ClusterConfig.of(settings_of(tmp_path))


@pytest.mark.parametrize("given", ["LOADER_CZAR", "LOADER_WORKERS"])
def test_one_of_czar_and_workers_alone_is_refused_not_ignored(tmp_path, given):
    ClusterConfig("mysql+pymysql://root@czar:3306", {"w1": "mysql+pymysql://root@w1:3306"}).save(tmp_path)
    settings = Settings.from_env({"LOADER_STATE_DIR": str(tmp_path), given: "mysql+pymysql://root@h:3306"})
    with pytest.raises(BadInput, match=rf"{given} is set but LOADER_\w+ is not; set both"):
        ClusterConfig.of(settings)  # workers.json is there: the other half would have come from it


@pytest.mark.parametrize("written", ["", "{", "[]", '{"czar": 1}', '{"czar": "mysql+pymysql://root@c", "workers": 3}'])
def test_a_damaged_workers_json_is_named_with_what_rewrites_it(tmp_path, written):
    (tmp_path / "workers.json").write_text(written)
    with pytest.raises(BadInput, match=r"workers.json is not a cluster configuration .*; `loader-assets workers up`"):
        ClusterConfig.of(settings_of(tmp_path))


def test_duplicate_worker_names_are_refused():
    with pytest.raises(BadInput, match="twice"):
        parse_worker_list(["a=mysql://h1", "a=mysql://h2"])


def test_choose_workers_balances_bytes_then_chunks():
    choice = choose_workers({1: 100, 2: 100, 3: 10, 4: 10}, ["w1", "w2"], {})
    assert choice == {1: "w1", 2: "w2", 3: "w1", 4: "w2"}
    assert choose_workers({5: 1}, ["w1", "w2"], {"w1": (50, 1), "w2": (10, 9)}) == {5: "w2"}
    assert choose_workers({5: 1}, ["w1", "w2"], {"w1": (10, 1), "w2": (10, 9)}) == {5: "w1"}


@pytest.fixture
def family() -> tuple[int, int, float]:
    """Partitioning unique to the test (stripes drawn at random), so families never collide across tests."""
    return (int(uuid.uuid4().int % 100_000) + 1000, 3, 0.01667)


BIG = 10**12  # bytes


def test_placement_is_balanced_stored_and_stable(cluster, database, family):
    cluster.register_database(database, *family)
    try:
        # Chunks far larger than what the session's other tests placed, so their load does not tip the balance
        placement = cluster.place_chunks(database, range(100, 110), BIG)
        counts = {worker: list(placement.values()).count(worker) for worker in cluster.workers}
        assert counts == {"worker1": 5, "worker2": 5}
        assert cluster.placement(database) == placement

        again = cluster.place_chunks(database, [*range(100, 110), 200, 201], {200: BIG, 201: 1})
        assert {c: again[c] for c in placement} == placement  # existing chunks never move
        assert again[200] != again[201]  # the big one and the small one go to different workers
    finally:  # the family's placement goes with it: the tests after this one see the load they made
        cluster.unregister_database(database, [])


def test_databases_of_one_family_share_chunk_placement(cluster, database, family):
    other = f"{database}_b"
    cluster.register_database(database, *family)
    cluster.register_database(other, *family)
    first = cluster.place_chunks(database, [1, 2, 3, 4], 10)
    assert cluster.place_chunks(other, [4, 3, 2, 1, 5], 10) == {**first, 5: cluster.place_chunks(other, [5])[5]}
    unrelated = f"{database}_c"
    cluster.register_database(unrelated, family[0] + 1, *family[1:])
    assert cluster.place_chunks(unrelated, [1]) is not None


def test_database_partitioning_cannot_change(cluster, database, family):
    cluster.register_database(database, *family)
    with pytest.raises(BadInput, match="registered"):
        cluster.register_database(database, family[0], family[1] + 1, family[2])


def test_check_room_reports_workers_short_of_space(cluster, database, family):
    cluster.register_database(database, *family)
    placement = cluster.place_chunks(database, [1, 2], 10)
    assert cluster.check_room(placement, 10) == {}
    problems = cluster.check_room(placement, {1: 10**18, 2: 1})
    assert list(problems) == [placement[1]]
    short = problems[placement[1]]
    assert short.refused and f"worker {placement[1]}" in short.line() and "MB free on its disk" in short.line()


@pytest.mark.parametrize("half", [{"czar_url": "mysql+pymysql://root@c"}, {"worker_urls": ["mysql+pymysql://root@w"]}])
def test_a_cluster_resource_given_half_a_cluster_is_refused(half):
    from loader_assets.defs.resources import ClusterResource

    with pytest.raises(BadInput, match="give it both czar_url and worker_urls, or neither"):
        _ = ClusterResource(**half).cluster
