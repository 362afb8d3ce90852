"""`loader-assets drop CASE`: retire a case from the workers, the czar and the catalog (Dagster's partitions
are the caller's, in `defs/`). Refused while any of its notices is held; the case is paused first, so nothing
new starts while its data goes."""

from __future__ import annotations

from collections.abc import Callable

from loader_assets import levels
from loader_assets.catalog.layout import case_layout
from loader_assets.catalog.retire import delete_case, pause_unless_held
from loader_assets.catalog.store import Store
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.connection import connection
from loader_assets.workers.schema import director_index_table, drop_database


def retire_case(store: Store, cluster: Cluster, case: str, log: Callable[[str], None] = print) -> None:
    layout = case_layout(store.db, case)
    pause_unless_held(store.db, case)
    for worker, url in cluster.workers.items():
        with connection(url) as conn:
            dropped = drop_database(conn, layout.database, store.db.catalog_id)
        log(f"{worker}: database {layout.database} {'dropped' if dropped else 'was not there'}")
    directors = [t.name for t in layout.tables.values() if t.kind == levels.DIRECTOR]
    cluster.unregister_database(layout.database, [director_index_table(layout.database, d) for d in directors])
    log(f"czar: placement and director index of {layout.database} forgotten")
    delete_case(store.db, case)
    log(f"catalog: case {case} deleted")
