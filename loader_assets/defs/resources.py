"""Dagster resources over the engine's plain objects: the operational catalog, the Qserv cluster and the loader's
settings, each read from the environment once per resource instance (a step, a sensor tick) unless configured."""

from __future__ import annotations

from functools import cached_property

import dagster as dg

from loader_assets.catalog.store import Store
from loader_assets.engine.load import Loader
from loader_assets.problems import BadInput
from loader_assets.settings import Settings
from loader_assets.workers.cluster import Cluster, ClusterConfig, parse_worker_list, server_options


class CatalogResource(dg.ConfigurableResource):
    """The operational catalog; `url` defaults to `LOADER_CATALOG_URL` (else the embedded SQLite file)."""

    url: str = ""
    lease_seconds: float = 0.0  # 0: LOADER_LEASE_SECONDS

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env()

    def store(self) -> Store:
        settings = self.settings
        return Store.from_url(self.url or settings.catalog_url, lease_seconds=self.lease_seconds or
                              settings.lease_seconds, max_attempts=settings.max_attempts)  # fmt: skip


class ClusterResource(dg.ConfigurableResource):
    """The czar and the workers. Empty: `LOADER_CZAR` / `LOADER_WORKERS` or the local cluster's `workers.json`,
    read when a step first uses it, so the code location loads before any worker is up."""

    czar_url: str = ""
    worker_urls: list[str] = []  # "name=url" or bare URLs (named worker1..N)

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env()

    @cached_property
    def cluster(self) -> Cluster:
        """Resolved once per resource instance (a step, a sensor tick)."""
        if not self.czar_url and not self.worker_urls:
            return Cluster.of(self.settings)
        if not (self.czar_url and self.worker_urls):  # else the other half would silently come from elsewhere
            raise BadInput("the cluster resource names only its " + ("czar" if self.czar_url else "workers"),
                           "give it both czar_url and worker_urls, or neither (then LOADER_CZAR/LOADER_WORKERS)")  # fmt: skip
        config = ClusterConfig(czar_url=self.czar_url, workers=parse_worker_list(self.worker_urls))
        return Cluster(config, server_options(self.settings))

    def loader(self, store: Store) -> Loader:
        settings = self.settings
        return Loader(store, self.cluster, streams=settings.streams_per_worker, stall_seconds=settings.stall_seconds)


def default_resources(catalog_url: str) -> dict[str, dg.ConfigurableResource]:
    """The same catalog the assets were built from; the cluster read from the environment when first used."""
    return {"catalog": CatalogResource(url=catalog_url), "cluster": ClusterResource()}
