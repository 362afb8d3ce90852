"""Dagster resources: the operational catalog and the Qserv cluster (czar + workers)."""

from __future__ import annotations

import dagster as dg

from loader_assets import settings
from loader_assets.catalog.store import Store
from loader_assets.workers.cluster import QservCluster


class CatalogResource(dg.ConfigurableResource):
    """The operational catalog; `url` defaults to `LOADER_CATALOG_URL` (else the embedded SQLite file)."""

    url: str = ""
    lease_seconds: float = 0.0  # 0: LOADER_LEASE_SECONDS

    def store(self) -> Store:
        lease = self.lease_seconds or settings.lease_seconds()
        return Store.from_url(self.url or settings.catalog_url(), lease_seconds=lease)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Both resources read the environment when a step first uses them, not when the code location loads."""
    return {"catalog": CatalogResource(), "cluster": QservCluster()}
