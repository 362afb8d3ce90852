"""What an operator's action works with: the settings, read once per command, and — each opened when first
needed — the catalog's store, the cluster and the Dagster platform."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from loader_assets.catalog.store import Store
from loader_assets.settings import Settings
from loader_assets.startup import importing
from loader_assets.workers.cluster import Cluster

if TYPE_CHECKING:
    from loader_assets.defs.platform import DagsterPlatform


class Context:
    def __init__(self, settings: Settings, *, verbose: bool = False) -> None:
        self.settings = settings
        self.verbose = verbose  # Dagster's own event lines reach the terminal

    @classmethod
    def from_env(cls, *, verbose: bool = False) -> Context:
        return cls(Settings.from_env(), verbose=verbose)

    @cached_property
    def store(self) -> Store:
        return Store.of(self.settings)

    @cached_property
    def cluster(self) -> Cluster:
        return Cluster.of(self.settings)

    @cached_property
    def dagster(self) -> DagsterPlatform:
        """The Dagster instance (and what is done through it); opened only by the actions that need it."""
        with importing():  # Dagster is imported only when used
            from loader_assets.defs.platform import DagsterPlatform

            return DagsterPlatform(self.settings)

    def close(self) -> None:
        if "dagster" in self.__dict__:
            self.dagster.close()
