"""Per registered case, assets named after its real tables; the levels of the old loader are the asset graph,
one asset group per case and level (`<case>_1_load_director`, `<case>_2_gate_director`, …).

    <case>/<Director>  (level 1, partitioned by chunk) ─► <case>/<Director>_gate  (level 2: blocking checks)
    <case>/<Regular>   (level 1, unpartitioned)                     │
    <case>/<Child>     (level 3, partitioned by chunk) ◄────────────┘ ─► <case>/<Child>_gate (level 4)
    <case>/overview    what `loader-assets status` shows, refreshed by the `case_overviews` sensor

A load asset loads the notices of the partitions it was asked for, and logs a materialization for exactly the
chunks whose notices it loaded (its output is skippable), so the UI never shows a chunk it did not load.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from loader_assets import levels, tags
from loader_assets.catalog.layout import CaseLayout, TableLayout
from loader_assets.catalog.notices import notice_ids
from loader_assets.defs.chunk_partitions import chunk_partitions
from loader_assets.defs.events import check_results, failure, load_in_run
from loader_assets.defs.instance import LOAD_POOL
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.engine.validate import CHILD_CHECKS, DIRECTOR_CHECKS, VERDICT_DROPPED, validate_table
from loader_assets.problems import Problem

CHUNKS_PER_BACKFILL_RUN = 500
AssetJob = Any  # what dg.define_asset_job returns (its class is not public)


class LoadConfig(dg.Config):
    force: bool = Field(default=False, description="reload notices that are already done (their rows are replaced)")


def table_key(case: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([case, table])


def validation_key(case: str, table: TableLayout) -> dg.AssetKey:
    """The gate of a table: its validation asset, whose blocking checks open the next level."""
    return dg.AssetKey([case, f"{table.name}_gate"])


def overview_key(case: str) -> dg.AssetKey:
    return dg.AssetKey([case, "overview"])


def group(case: str, level: int) -> str:
    return f"{case}_{level}_{levels.name(level)}"


def gate_job_name(case: str, level: int) -> str:
    return f"{case}_gate_level_{level}"


def case_assets(layout: CaseLayout) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    partitions = chunk_partitions(layout.case)
    load_assets = [_table_asset(layout, table, partitions) for table in layout.tables.values()]
    validations = [_validation_asset(layout, table) for table in layout.validated_tables()]
    overview = dg.AssetSpec(
        overview_key(layout.case),
        group_name=f"{layout.case}_0_overview",
        kinds={"overview"},
        description=f"Case {layout.case}: notices per level, table and status, gates and their failing checks, "
        "locks, paused or not. Materialized by the case_overviews sensor whenever it changes (no run).",
    )
    return [*load_assets, *validations, overview]


def gate_jobs(layout: CaseLayout) -> list[AssetJob]:
    """A named job per validation level of the case (the level_gates sensor and `load` run them)."""
    jobs = []
    for level in levels.VALIDATION_LEVELS:
        keys = [validation_key(layout.case, t) for t in layout.tables_of_kind(levels.validated_kind(level))]
        if keys:
            jobs.append(dg.define_asset_job(
                gate_job_name(layout.case, level), selection=dg.AssetSelection.assets(*keys),
                description=f"level {level} of case {layout.case}: validate {', '.join(k.path[-1] for k in keys)}",
                tags={tags.CASE: layout.case, tags.LEVEL: str(level)},
            ))  # fmt: skip
    return jobs


def _table_asset(layout: CaseLayout, table: TableLayout, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    partitioned = table.kind != levels.REGULAR
    deps: list[dg.AssetKey] = []
    gated = ""
    if table.kind == levels.CHILD and table.director_table:
        director = layout.director_of(table)
        deps = [table_key(layout.case, director.name), validation_key(layout.case, director)]
        checks = ", ".join(DIRECTOR_CHECKS)
        gated = (f" Gated: loads only once {validation_key(layout.case, director).to_user_string()} passed "
                 f"(level {levels.VALIDATE_DIRECTOR}, blocking checks {checks}).")  # fmt: skip
    spec = dg.AssetSpec(
        key=table_key(layout.case, table.name),
        deps=deps,
        group_name=group(layout.case, table.level),
        partitions_def=partitions if partitioned else None,
        skippable=True,
        kinds={"mariadb"},
        description=f"Level {table.level}: {table.kind} table {table.name} of {layout.database}, loaded into the "
        f"worker nodes, a partition per chunk.{gated}",
        metadata={"level": table.level, "kind": table.kind, "database": layout.database},
        tags={tags.LEVEL: str(table.level)},
    )

    @dg.multi_asset(
        name=f"{layout.case}__load_{table.name}",
        specs=[spec],
        partitions_def=partitions if partitioned else None,
        # A UI backfill of many chunks: runs of up to this many chunks each, not a run per chunk.
        backfill_policy=dg.BackfillPolicy.multi_run(CHUNKS_PER_BACKFILL_RUN) if partitioned else None,
        pool=LOAD_POOL,
        op_tags={tags.CASE: layout.case, tags.LEVEL: str(table.level)},
    )
    def load_table(
        context: dg.AssetExecutionContext, config: LoadConfig, catalog: CatalogResource, cluster: ClusterResource
    ) -> Iterator[dg.AssetMaterialization]:
        store = catalog.store()
        chunks = [int(key) for key in context.partition_keys] if partitioned else None
        ids = notice_ids(store.db, layout.case, table=table.name, chunks=chunks)
        load_in_run(context, cluster.loader(store), ids, config.force)
        # A generator yielding nothing: only the chunks logged as they loaded count as materialized (a skippable
        # output that returned None would be materialized as a whole).
        yield from ()

    return load_table


def _validation_asset(layout: CaseLayout, table: TableLayout) -> dg.AssetsDefinition:
    key = validation_key(layout.case, table)
    names = DIRECTOR_CHECKS if table.kind == levels.DIRECTOR else CHILD_CHECKS
    level = table.validation_level
    spec = dg.AssetSpec(
        key=key,
        deps=[table_key(layout.case, table.name)],
        group_name=group(layout.case, level),
        kinds={"mariadb", "gate"},
        description=(
            f"Level {level} gate of {table.name}: its director index at the czar, validated; level "
            f"{levels.LOAD_CHILDREN} (the children) loads only once every blocking check passed."
            if table.kind == levels.DIRECTOR
            else f"Level {level} gate of {table.name}: validated against its director and the director index."
        ),
        metadata={"level": level},
        tags={tags.LEVEL: str(level)},
    )
    check_specs = [
        dg.AssetCheckSpec(name, asset=key, blocking=True, description=description)
        for name, description in names.items()
    ]

    @dg.multi_asset(name=f"{layout.case}__validate_{table.name}", specs=[spec], check_specs=check_specs)
    def validate(
        context: dg.AssetExecutionContext, catalog: CatalogResource, cluster: ClusterResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        try:
            validation = validate_table(
                catalog.store(), cluster.cluster, layout, table, context.run.run_id, context.log.info
            )
        except Problem as problem:  # not loaded, validated elsewhere, a server down: the run says which
            raise failure(problem) from problem
        if not validation.recorded:  # its results describe data that changed meanwhile: the gate validates again
            raise dg.Failure(description=f"{key.to_user_string()}: {VERDICT_DROPPED}")
        yield dg.MaterializeResult(asset_key=key, metadata=validation.metadata)
        yield from check_results(key, validation)

    return validate
