"""What the Dagster UI shows, read through its own GraphQL API from a real code location (the workspace.yaml
of the repository, a code server process): a case with a broken chunk file (its partition not materialized, an
observation on it carrying the error, the chunk among the overview's unfinished ones), its children behind the
closed gate (no failure), a paused case, two saved selections (a sensor each, stopped and started), and each
case's overview equal to what `loader-assets status` prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql, infer_sensor_selector

from loader_assets.catalog import views
from loader_assets.catalog.notices import notice_ids
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.engine.plan import plan_runs
from loader_assets.engine.runner import LevelFailed
from loader_assets.selection import saved
from loader_assets_tests.conftest import REPOSITORY, Platform

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)

ASSET_STATE = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      groupName
      description
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions unmaterializedPartitions }
      }
    }
  }
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetEventHistory(limit: 10, eventTypeSelectors: [MATERIALIZATION, OBSERVATION]) {
        results {
          __typename
          ... on ObservationEvent { partition description }
          ... on MaterializationEvent {
            partition
            metadataEntries {
              label
              ... on JsonMetadataEntry { jsonString }
              ... on TextMetadataEntry { text }
            }
          }
        }
      }
    }
  }
}
"""

SENSOR = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { id name description sensorState { id selectorId status } }
  }
}
"""
START = """
mutation ($selector: SensorSelector!) { startSensor(sensorSelector: $selector) { ... on Sensor { sensorState { status } } } }
"""
STOP = """
mutation ($id: String!, $selectorId: String!) {
  stopSensor(id: $id, jobSelectorId: $selectorId) { ... on StopSensorMutationResult { instigationState { status } } }
}
"""


@contextmanager
def graphql(platform: Platform) -> Iterator[object]:
    """The GraphQL context of the repository's workspace (its code location loaded now), on the platform's instance."""
    with define_out_of_process_context(str(REPOSITORY / "workspace.yaml"), None, platform.instance) as context:
        yield context


def query(context: object, text: str, **variables: object) -> dict:
    result = execute_dagster_graphql(context, text, variables=variables)
    assert not result.errors, result.errors
    return result.data


def asset_state(context: object, case: str, name: str) -> tuple[dict, list[dict]]:
    data = query(context, ASSET_STATE, key={"path": [case, name]})
    return data["assetNodeOrError"], data["assetOrError"]["assetEventHistory"]["results"]


def refresh_overviews(platform: Platform) -> None:
    """One tick of the case_overviews sensor, its events stored as the daemon stores them."""
    sensor = platform.definitions().resolve_sensor_def("case_overviews")
    resources = {"catalog": CatalogResource(url=platform.store.db.url), "cluster": ClusterResource()}
    result = sensor(dg.build_sensor_context(instance=platform.instance, resources=resources))
    for event in result.asset_events:
        platform.instance.report_runless_asset_event(event)


def break_a_chunk(case_dir: Path, chunk: int) -> str:
    path = case_dir / "step1_1" / "Object" / f"chunk_{chunk}.txt"
    path.write_text("1,2\n")  # two fields of eleven: LOAD DATA refuses the file
    return str(path.relative_to(case_dir))


def test_the_ui_shows_failed_chunks_gates_paused_cases_and_a_sensor_per_selection(platform: Platform) -> None:
    broken = platform.sample_case(chunks=2, rows_per_chunk=5)
    case, chunks = broken.case, sorted(broken.chunks)
    layout_root = platform.root / "cases" / case
    bad = next(c for c in chunks if (layout_root / "step1_1" / "Object" / f"chunk_{c}.txt").exists())
    broken_path = break_a_chunk(layout_root, bad)
    with pytest.raises(LevelFailed):
        platform.load(case, (1,))
    # The children wait behind the closed gate: their run succeeds and loads nothing.
    plans, _ = plan_runs(platform.store, platform.cluster, notice_ids(platform.store.db, case, level=3))
    assert all(platform.succeeded(platform.run_plan(p).run_id) for p in plans)

    paused = platform.sample_case(chunks=1, rows_per_chunk=5).case
    platform.store.set_case_state(paused, "paused")
    saved.save(platform.store, "retry_failed", f"case = '{case}' AND status = 'failed'", priority=3)
    saved.save(platform.store, "done_sources", "table = 'Source' AND status = 'done'", enabled=False)
    refresh_overviews(platform)
    with graphql(platform) as ui:
        what_the_ui_shows(platform, ui, case, bad, broken_path, paused)


def what_the_ui_shows(platform: Platform, ui: object, case: str, bad: int, broken_path: str, paused: str) -> None:
    node, events = asset_state(ui, case, "Object")
    statuses = node["assetPartitionStatuses"]
    assert str(bad) not in statuses["materializedPartitions"] and statuses["materializedPartitions"]
    # As the partition's page shows it: an observation of the chunk says with which error it failed.
    [failure] = [e for e in events if e["__typename"] == "ObservationEvent"]
    assert failure["partition"] == str(bad) and broken_path in failure["description"]
    assert "records" in failure["description"] or "LOAD DATA" in failure["description"]
    assert node["groupName"] == f"{case}_1_load_director"

    child, _ = asset_state(ui, case, "Source")
    assert child["assetPartitionStatuses"]["failedPartitions"] == [], "a gate wait is not a failure"
    assert f"{case}/Object_gate" in child["description"] and "objectids_on_workers" in child["description"]

    for name, expected_state in ((case, "active"), (paused, "paused")):
        _, overview_events = asset_state(ui, name, "overview")
        [latest_overview] = [e for e in overview_events if e["__typename"] == "MaterializationEvent"][:1]
        entries = {e["label"]: e for e in latest_overview["metadataEntries"]}
        assert entries["state"]["text"] == expected_state
        printed = views.status_counts(platform.store, name)  # what `loader-assets status` prints
        shown = {f"{level} {table}": dict(row) for (_c, level, table), row in printed.iterrows()}
        assert json.loads(entries["counts"]["jsonString"]) == shown
        if name == case:
            assert bad in json.loads(entries["unfinished chunks (first)"]["jsonString"])

    for name, status in (("retry_failed", "RUNNING"), ("done_sources", "STOPPED")):
        selector = infer_sensor_selector(ui, f"selection_{name}")
        sensor = query(ui, SENSOR, selector=selector)["sensorOrError"]
        assert sensor["sensorState"]["status"] == status
        assert "priority" in sensor["description"] and "`" in sensor["description"]
        state = sensor["sensorState"]
        if status == "RUNNING":
            stopped = query(ui, STOP, id=state["id"], selectorId=state["selectorId"])
            assert stopped["stopSensor"]["instigationState"]["status"] == "STOPPED"
        started = query(ui, START, selector=selector)
        assert started["startSensor"]["sensorState"]["status"] == "RUNNING"
