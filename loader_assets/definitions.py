"""The one entry point of loader_assets' Dagster definitions, built lazily from the registered cases.

Nothing is read at import: Dagster calls `defs()` when it loads the code location (the settings once, a few small
catalog queries). A catalog that cannot be reached still gives a code location — no case assets, every sensor
there, each tick skipping with the catalog's problem — so the daemon and the UI stay up and recover by
themselves. A case registered later appears when the code location is reloaded (`register` asks the webserver;
the daemon reloads its own every minute; `dagster code-server start`, as in deploy/k8s, reloads without a
restart).
"""

from __future__ import annotations

import logging

import dagster as dg

from loader_assets.catalog.database import catalog_db
from loader_assets.catalog.layout import CaseLayout, case_layouts
from loader_assets.catalog.store import Store
from loader_assets.defs.alerts import alerts_sensor
from loader_assets.defs.assets import case_assets, gate_jobs
from loader_assets.defs.executors import executor
from loader_assets.defs.jobs import load_notices_job, sweep_job
from loader_assets.defs.resources import default_resources
from loader_assets.defs.sensors import all_sensors
from loader_assets.problems import CatalogDown
from loader_assets.selection.saved import SavedSelection, saved_selections
from loader_assets.settings import Settings

log = logging.getLogger(__name__)


def build_definitions(settings: Settings, catalog_url: str | None = None) -> dg.Definitions:
    url = catalog_url or settings.catalog_url
    layouts, selections = _registered(url)
    gates = [job for layout in layouts for job in gate_jobs(layout)]
    return dg.Definitions(
        assets=[asset for layout in layouts for asset in case_assets(layout)],
        jobs=[load_notices_job, sweep_job, *gates],
        sensors=[*all_sensors(gates, selections, settings), alerts_sensor(settings)],
        resources=default_resources(url),
        executor=executor(settings),
    )


def _registered(url: str) -> tuple[list[CaseLayout], list[SavedSelection]]:
    """The registered cases and saved selections; none while the catalog cannot be reached."""
    try:
        return list(case_layouts(catalog_db(url)).values()), saved_selections(Store(catalog_db(url)))
    except CatalogDown as problem:
        log.warning("loader_assets: no case loaded into the code location: %s", problem.line())
        return [], []


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
