"""The asset graph of a registered case, compared to a committed snapshot.

Any change to asset keys, groups, partitions, deps, checks (and whether they block), the tags, kinds and
metadata the loader relies on, or the job and sensor names shows up as a diff of
`snapshots/asset_graph.json`. When the change is intended, regenerate the snapshot and commit it:

    UPDATE_SNAPSHOTS=1 .venv/bin/pytest loader_assets_tests/defs/test_asset_graph_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from loader_assets.catalog.register import register_case
from loader_assets.qserv.sample import write_sample_case
from loader_assets_tests.conftest import Platform

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
CASE = "snapshot_case"  # fixed: the case name is part of every key


def _plain(value: Any) -> Any:
    """Metadata values as JSON: a MetadataValue by its value, the rest as is."""
    return getattr(value, "value", value)


def _checks(assets_def: dg.AssetsDefinition, key: dg.AssetKey) -> dict[str, dict[str, bool]]:
    return {spec.name: {"blocking": spec.blocking} for spec in assets_def.check_specs if spec.asset_key == key}


def _asset(defs: dg.Definitions, graph: Any, key: dg.AssetKey) -> dict[str, Any]:
    node = graph.get(key)
    assets_def = defs.resolve_assets_def(key)
    spec = next(s for s in assets_def.specs if s.key == key)
    return {
        "group": node.group_name,
        "partitions": node.partitions_def.name if node.partitions_def else None,
        "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
        "checks": _checks(assets_def, key),
        "kinds": sorted(node.kinds),
        "tags": dict(sorted(node.tags.items())),
        "metadata": {name: _plain(value) for name, value in sorted(node.metadata.items())},
        "skippable": spec.skippable,
        "backfill_policy": str(assets_def.backfill_policy) if assets_def.backfill_policy else None,
        "pools": sorted(node.pools or []),
        "op": assets_def.op.name if assets_def.is_executable else None,  # the overview is materialized by a sensor
        "op_tags": dict(sorted((assets_def.op.tags or {}).items())) if assets_def.is_executable else {},
    }


def asset_graph_snapshot(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    repository = defs.get_repository_def()
    return {
        "assets": {key.to_user_string(): _asset(defs, graph, key) for key in sorted(graph.get_all_asset_keys())},
        "jobs": sorted(job.name for job in repository.get_all_jobs()),
        "sensors": {
            sensor.name: {"target": _sensor_targets(sensor, graph), "default_status": sensor.default_status.value}
            for sensor in sorted(repository.sensor_defs, key=lambda s: s.name)
        },
    }


def _sensor_targets(sensor: dg.SensorDefinition, graph: Any) -> list[str]:
    """The job a sensor requests runs of, or the assets of its selection."""
    if sensor.asset_selection is not None:
        return sorted(key.to_user_string() for key in sensor.asset_selection.resolve(graph))
    return sorted(job.name for job in sensor.jobs) if sensor.has_jobs else []


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_the_asset_graph_of_a_registered_case_matches_the_snapshot(platform: Platform) -> None:
    root = write_sample_case(platform.root / "cases" / CASE, chunks=2, rows_per_chunk=1, database=CASE)
    register_case(platform.store, root, CASE)

    snapshot = asset_graph_snapshot(platform.definitions())

    text = json.dumps(snapshot, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.exists(), f"no snapshot yet: run with UPDATE_SNAPSHOTS=1 to write {SNAPSHOT}"
    assert json.loads(text) == json.loads(SNAPSHOT.read_text()), (
        "the asset graph changed; if intended, regenerate with UPDATE_SNAPSHOTS=1 and commit the diff"
    )
