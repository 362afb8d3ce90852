"""The code location as Dagster's own processes load it: it loads while the catalog is unreachable (no case, every
sensor there, each tick skipping with the catalog's line), and a case registered while `dagster dev` runs shows
up in its UI without restarting anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from loader_assets.definitions import build_definitions
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.qserv.sample import write_sample_case
from loader_assets.settings import Settings
from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.recovery.helpers import wait_for
from loader_assets_tests.servers import stop_group
from loader_assets_tests.test_cli import dead_address

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)

SENSORS = "{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name } } } } }"
CASE_ASSETS = "{ assetNodes { assetKey { path } } }"


def test_the_code_location_loads_while_the_catalog_is_down_and_its_sensors_skip_saying_why(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.sample_case(chunks=1, rows_per_chunk=2)
    down = dead_address().replace("mysql+pymysql", "postgresql+psycopg2") + "/catalog"
    monkeypatch.setenv("LOADER_CATALOG_URL", down)
    with define_out_of_process_context(str(REPOSITORY / "workspace.yaml"), None, platform.instance) as context:
        result = execute_dagster_graphql(context, SENSORS)
    assert not result.errors, result.errors
    [repository] = result.data["repositoriesOrError"]["nodes"]
    assert {s["name"] for s in repository["sensors"]} >= {"scheduled_loads", "stale_sweeper", "case_overviews",
                                                          "level_gates"}  # fmt: skip

    definitions = build_definitions(Settings.from_env())  # built with the catalog down: no case, the sensors
    assert not list(definitions.resolve_all_asset_keys())
    resources = {"catalog": CatalogResource(url=down), "cluster": ClusterResource()}
    for name in ("scheduled_loads", "stale_sweeper", "case_overviews", "level_gates"):
        result = definitions.resolve_sensor_def(name)(dg.build_sensor_context(instance=platform.instance,
                                                                              resources=resources))  # fmt: skip
        reason = result.skip_reason if isinstance(result, dg.SensorResult) else result
        assert "the catalog at postgresql" in reason.skip_message and "cannot be used" in reason.skip_message, name


def test_a_case_registered_while_dagster_dev_runs_shows_up_without_a_restart(platform: Platform) -> None:
    port = int(dead_address().rsplit(":", 1)[1])
    log = (platform.root / "dagster-dev.log").open("wb")
    dev = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPOSITORY, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: asset_keys(port) is not None, "dagster dev to answer", timeout=180, poll=1)
        case = "shown_at_once"
        root = write_sample_case(platform.root / "cases" / case, chunks=2, rows_per_chunk=2, database=case)
        registered = subprocess.run(
            [sys.executable, "-m", "loader_assets.cli", "register", str(root)], cwd=REPOSITORY,
            env={**os.environ, "LOADER_DAGSTER_WEBSERVER": f"127.0.0.1:{port}"}, capture_output=True, text=True,
        )  # fmt: skip
        assert registered.returncode == 0, registered.stderr
        assert f"code location loader_assets reloaded at 127.0.0.1:{port}" in registered.stdout
        keys = asset_keys(port) or []
        assert [case, "Object"] in keys and [case, "Source_gate"] in keys, "the new case's assets, no restart"
        assert dev.poll() is None, "the same dagster dev process"
    finally:
        stop_group(dev)
        log.close()


def asset_keys(port: int) -> list[list[str]] | None:
    """The asset keys the webserver shows, or None while it does not answer."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": CASE_ASSETS}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = json.load(response)
    except OSError:
        return None
    return [node["assetKey"]["path"] for node in (data.get("data") or {}).get("assetNodes") or []]
