"""Chunk partitions: one dynamic partitions definition per case, its keys added when the case is registered
(before it opens, so no chunk is ever loaded unseen) and removed when it is dropped."""

from collections.abc import Iterable

import dagster as dg

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
