"""Chunk partitions: one dynamic partitions definition per case, its keys added when the case is registered."""

import os
from collections.abc import Iterable

import dagster as dg

WEBSERVER_ENV = "LOADER_DAGSTER_WEBSERVER"  # host:port of a running `dagster dev` / dagster-webserver
CODE_LOCATION = "loader_assets"
PARTITIONS_PER_CALL = 10_000


def chunk_partitions(case: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{case}__chunks")


def add_chunk_partitions(instance: dg.DagsterInstance, case: str, chunks: Iterable[int]) -> int:
    """Add the chunk ids not yet known to the instance, in chunk order; returns how many were new."""
    name = chunk_partitions(case).name
    assert name is not None
    known = set(instance.get_dynamic_partitions(name))
    new = [str(chunk) for chunk in sorted(set(chunks)) if str(chunk) not in known]
    for start in range(0, len(new), PARTITIONS_PER_CALL):  # one call of 10^5 keys costs hundreds of MB
        instance.add_dynamic_partitions(name, new[start : start + PARTITIONS_PER_CALL])
    return len(new)


def remove_chunk_partitions(instance: dg.DagsterInstance, case: str) -> int:
    """Every chunk partition of a retired case; returns how many there were."""
    name = chunk_partitions(case).name
    assert name is not None
    known = instance.get_dynamic_partitions(name)
    for key in known:
        instance.delete_dynamic_partition(name, key)
    return len(known)


def reload_code_location() -> str:
    """Ask a running webserver to reload the code location; otherwise say how to make a new case appear."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    address = os.environ.get(WEBSERVER_ENV, "127.0.0.1:3000")
    host, _, port = address.partition(":")
    try:
        DagsterGraphQLClient(host, port_number=int(port or 3000), timeout=10).reload_repository_location(CODE_LOCATION)
    except (DagsterGraphQLClientError, OSError, Exception) as error:  # no webserver: nothing to reload
        return (
            f"no Dagster webserver answered at {address} ({type(error).__name__}); the new assets appear when "
            "`dagster dev` (or the daemon) starts, or after Deployment > Reload in the UI"
        )
    return f"code location {CODE_LOCATION} reloaded at {address}"
