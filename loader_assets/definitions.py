"""The one `Definitions` of loader_assets, built from the cases registered in the catalog.

Loading this module reads the catalog once (cases and tables: a few small queries); a case registered later
appears after a code-location reload.
"""

from __future__ import annotations

import dagster as dg

from loader_assets import settings
from loader_assets.catalog.engine import catalog_db
from loader_assets.catalog.views import case_layouts
from loader_assets.defs.assets import case_assets, validation_key
from loader_assets.defs.jobs import load_notices_job
from loader_assets.defs.resources import default_resources
from loader_assets.defs.sensors import all_sensors


def build_definitions(catalog_url: str | None = None) -> dg.Definitions:
    layouts = case_layouts(catalog_db(catalog_url or settings.catalog_url())).values()
    validations = [validation_key(c.case, t) for c in layouts for t in c.tables.values() if t.kind != "regular"]
    return dg.Definitions(
        assets=[asset for layout in layouts for asset in case_assets(layout)],
        jobs=[load_notices_job],
        sensors=all_sensors(validations),
        resources=default_resources(),
    )


defs = build_definitions()
