"""The one entry point of loader_assets' Dagster definitions, built lazily from the registered cases.

Nothing is read at import: Dagster calls `defs()` when it loads the code location (a few small catalog
queries); a case registered later appears after a code-location reload. Assets and resources come from the
same catalog URL.
"""

from __future__ import annotations

import dagster as dg

from loader_assets import settings
from loader_assets.catalog.engine import catalog_db
from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.store import Store
from loader_assets.defs.assets import case_assets, gate_jobs
from loader_assets.defs.celery import executor
from loader_assets.defs.jobs import load_notices_job
from loader_assets.defs.resources import default_resources
from loader_assets.defs.sensors import all_sensors
from loader_assets.selection.saved import saved_selections


def build_definitions(catalog_url: str | None = None) -> dg.Definitions:
    url = catalog_url or settings.catalog_url()
    layouts = case_layouts(catalog_db(url)).values()
    gates = [job for layout in layouts for job in gate_jobs(layout)]
    selections = saved_selections(Store(catalog_db(url)))
    return dg.Definitions(
        assets=[asset for layout in layouts for asset in case_assets(layout)],
        jobs=[load_notices_job, *gates],
        sensors=all_sensors(gates, selections),
        resources=default_resources(url),
        executor=executor(),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
