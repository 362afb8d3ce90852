"""Sizing a load before starting it: a registered case's predicted wall time per phase on N workers."""

from __future__ import annotations

from pathlib import Path

from loader_assets import capacity
from loader_assets.engine.sizing import case_sizes
from loader_assets.operations.cases import known_case
from loader_assets.operations.context import Context
from loader_assets.problems import BadInput
from loader_assets.workers.cluster import ClusterConfig


def plan(ctx: Context, case: str, workers: list[int] | None = None, rates: Path | None = None) -> list[str]:
    """The report's lines: per phase and worker count, the predicted time, catalog and instance sizes."""
    known_case(ctx, case)
    if workers is not None and any(count < 1 for count in workers):
        raise BadInput(f"worker counts {workers} include one below 1", "ask for 1 worker or more")
    counts = workers or [len(ClusterConfig.of(ctx.settings).workers)]
    return capacity.report(case, case_sizes(ctx.store, case), _rates(rates), counts)


def _rates(path: Path | None) -> capacity.Rates:
    try:
        return capacity.Rates.load(path)
    except (OSError, ValueError) as error:  # unreadable, not JSON, not rates
        raise BadInput(
            f"rates file {path or capacity.RATES_FILE}: {error}",
            "give a JSON file shaped like the shipped loader_assets/capacity_rates.json, or leave --rates out",
        ) from error
