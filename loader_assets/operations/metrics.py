"""`loader-assets metrics --port N`: a Prometheus exporter of the catalog's numbers (`catalog.metrics`), computed
at each scrape from the catalog, so it needs no state of its own and says the same after any restart. A catalog
that cannot be reached is told by `loader_catalog_up 0`, not by a failed scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from loader_assets.catalog.metrics import numbers
from loader_assets.catalog.store import Store
from loader_assets.engine.interruption import INTERRUPTION
from loader_assets.operations.context import Context
from loader_assets.problems import BadInput, CatalogDown


def serve(ctx: Context, port: int, address: str = "0.0.0.0", *, ready: Callable[[int], object] = print) -> None:
    """Serve /metrics on `address:port` until interrupted (then the one line of an interrupt)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(ctx.store))
    try:
        server, thread = start_http_server(port, addr=address, registry=registry)
    except OSError as error:
        raise BadInput(f"cannot serve metrics on {address}:{port}: {error.strerror or error}",
                       "choose another --port (or stop what listens there)") from None  # fmt: skip
    ready(server.server_port)
    try:
        INTERRUPTION.event.wait()
    finally:
        server.shutdown()
        thread.join()
    raise INTERRUPTION.problem("the exporter stopped")


class CatalogCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("loader_catalog_up", "1 when the catalog answered this scrape")
        try:
            found = numbers(self.store)
        except CatalogDown:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield _family(
            "loader_notices",
            "Notices per case, level, table and shown status",
            ["case", "level", "table", "status"],
            [([c, str(lv), t, s], k) for c, lv, t, s, k in found.notices],
        )
        yield _family(
            "loader_rows_loaded",
            "Rows of done notices per case, table and worker",
            ["case", "table", "worker"],
            [([c, t, w], rows) for c, t, w, rows, _ in found.loaded],
        )
        yield _family(
            "loader_bytes_loaded",
            "File bytes of done notices per case, table and worker",
            ["case", "table", "worker"],
            [([c, t, w], size) for c, t, w, _, size in found.loaded],
        )
        yield _family(
            "loader_gate",
            "1 per validation gate, labelled with its status",
            ["case", "level", "table", "status"],
            [([c, str(lv), t, s], 1) for c, lv, t, s in found.gates],
        )
        yield _family("loader_locks_held", "Notices held by a run now", ["case"], [([c], k) for c, k, _ in found.locks])
        yield _family(
            "loader_oldest_lock_seconds",
            "Age of the oldest held lock",
            ["case"],
            [([c], age) for c, _, age in found.locks],
        )
        yield _family(
            "loader_stalls",
            "Statements given back after a stall (full disk, lock)",
            ["case"],
            [([c], k) for c, k in found.stalls],
        )
        yield _family(
            "loader_seconds_since_last_finished",
            "Seconds since the case last finished a notice",
            ["case"],
            [([c], seconds) for c, seconds in found.idle],
        )


def _family(name: str, documentation: str, labels: list[str], samples: list[tuple[list[str], float]]
            ) -> GaugeMetricFamily:  # fmt: skip
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(values, float(value))
    return family
