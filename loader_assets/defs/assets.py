"""Per registered case, assets named after its real tables; the levels of the old loader are the asset graph.

    <case>/<Director>  (level 1, partitioned by chunk) ─► <case>/<Director>_index  (level 2: blocking checks)
    <case>/<Regular>   (level 1, unpartitioned)                     │
    <case>/<Child>     (level 3, partitioned by chunk) ◄────────────┘ ─► <case>/<Child>_validated (level 4)

A load asset loads the notices of the partitions it was asked for, and logs a materialization for exactly the
chunks whose notices it loaded (its output is skippable), so the UI never shows a chunk it did not load.
"""

from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from loader_assets.catalog.store import Owner
from loader_assets.catalog.views import CaseLayout, TableLayout, notice_ids
from loader_assets.defs import checks
from loader_assets.defs.loading import Loader, LoadReport, materializations
from loader_assets.defs.partitions import chunk_partitions
from loader_assets.defs.resources import CatalogResource
from loader_assets.instance import LOAD_POOL
from loader_assets.workers.cluster import QservCluster


class LoadConfig(dg.Config):
    force: bool = Field(default=False, description="reload notices that are already done (their rows are replaced)")


def table_key(case: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([case, table])


def validation_key(case: str, table: TableLayout) -> dg.AssetKey:
    return dg.AssetKey([case, f"{table.name}_index" if table.kind == "director" else f"{table.name}_validated"])


def case_assets(layout: CaseLayout) -> list[dg.AssetsDefinition]:
    partitions = chunk_partitions(layout.case)
    load_assets = [_table_asset(layout, table, partitions) for table in layout.tables.values()]
    validations = [_validation_asset(layout, table) for table in layout.tables.values() if table.kind != "regular"]
    return load_assets + validations


def _table_asset(layout: CaseLayout, table: TableLayout, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    partitioned = table.kind != "regular"
    deps: list[dg.AssetKey] = []
    if table.kind == "child" and table.director_table:
        director = layout.tables[table.director_table]
        deps = [table_key(layout.case, director.name), validation_key(layout.case, director)]
    spec = dg.AssetSpec(
        key=table_key(layout.case, table.name),
        deps=deps,
        group_name=layout.case,
        partitions_def=partitions if partitioned else None,
        skippable=True,
        kinds={"mariadb"},
        description=f"{table.kind} table {table.name} of {layout.database}, loaded into the worker nodes",
        metadata={"level": table.level, "kind": table.kind, "database": layout.database},
        tags={"loader/level": str(table.level)},
    )

    @dg.multi_asset(
        name=f"{layout.case}__load_{table.name}",
        specs=[spec],
        partitions_def=partitions if partitioned else None,
        pool=LOAD_POOL,
        op_tags={"loader/case": layout.case, "loader/level": str(table.level)},
    )
    def load_table(
        context: dg.AssetExecutionContext, config: LoadConfig, catalog: CatalogResource, cluster: QservCluster
    ) -> Iterator[dg.AssetMaterialization]:
        store = catalog.store()
        chunks = [int(key) for key in context.partition_keys] if partitioned else None
        ids = notice_ids(store.db, layout.case, table=table.name, chunks=chunks)
        report = Loader(store, cluster).load(
            ids, Owner.current(context.run_id), force=config.force, progress=context.log.info
        )
        yield from materializations(report)
        raise_for_report(context, report)

    return load_table


def raise_for_report(context: dg.OpExecutionContext, report: LoadReport) -> None:
    """Skipped notices are reported with their holder; failures fail the step, naming the files."""
    for notice_id, reason in sorted(report.skipped.items()):
        context.log.warning(f"notice {notice_id} skipped: {reason}")
    gate_refusals = sorted({reason for reason in report.skipped.values() if reason.startswith("level 2")})
    if gate_refusals and not report.loaded:
        raise dg.Failure(description=f"refused: {gate_refusals[0]}", metadata={"refused": len(report.skipped)})
    if report.failed:
        errors = [f"notice {nid}: {error}" for nid, error in sorted(report.failed.items())]
        raise dg.Failure(
            description=f"{len(report.failed)} notices failed; first: {errors[0]}",
            metadata={
                "failed": len(report.failed),
                "errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors[:20])),
            },
        )
    if report.lost:
        raise dg.Failure(description=f"lease lost on {len(report.lost)} notices; their rows were discarded")


def _validation_asset(layout: CaseLayout, table: TableLayout) -> dg.AssetsDefinition:
    key = validation_key(layout.case, table)
    names = checks.DIRECTOR_CHECKS if table.kind == "director" else checks.CHILD_CHECKS
    level = 2 if table.kind == "director" else 4
    spec = dg.AssetSpec(
        key=key,
        deps=[table_key(layout.case, table.name)],
        group_name=layout.case,
        kinds={"mariadb"},
        description=(
            f"director index of {table.name} at the czar, validated (level 2)"
            if table.kind == "director"
            else f"{table.name} validated against the director index (level 4)"
        ),
        metadata={"level": level},
        tags={"loader/level": str(level)},
    )
    check_specs = [
        dg.AssetCheckSpec(name, asset=key, blocking=True, description=description)
        for name, description in names.items()
    ]

    @dg.multi_asset(name=f"{layout.case}__validate_{table.name}", specs=[spec], check_specs=check_specs)
    def validate(
        context: dg.AssetExecutionContext, catalog: CatalogResource, cluster: QservCluster
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        store = catalog.store()
        validation = checks.validate_table(store, cluster, layout, table, context.run_id, context.log.info)
        yield dg.MaterializeResult(asset_key=key, metadata=validation.metadata)
        for outcome in validation.outcomes:
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=outcome.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=outcome.metadata,
            )

    return validate
