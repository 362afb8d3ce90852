"""Runs in the Dagster instance, as the rest of the package asks for them."""

from __future__ import annotations

import dagster as dg

from loader_assets import tags

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class InstanceRuns:
    """`selection.RunLookup` over a Dagster instance: the runs requested for a schedule."""

    def __init__(self, instance: dg.DagsterInstance | None = None) -> None:
        self.instance = instance or dg.DagsterInstance.get()

    def runs_of_schedule(self, schedule_id: int) -> list[tuple[str, str]]:
        records = self.instance.get_run_records(dg.RunsFilter(tags={tags.SCHEDULE: str(schedule_id)}))
        return [(record.dagster_run.run_id, record.dagster_run.status.value) for record in records]


def first_in_flight(instance: dg.DagsterInstance, tag: str, value: str) -> str | None:
    """Id of a queued or running run carrying the tag, if any."""
    records = instance.get_run_records(dg.RunsFilter(tags={tag: value}, statuses=IN_FLIGHT), limit=1)
    return records[0].dagster_run.run_id if records else None
