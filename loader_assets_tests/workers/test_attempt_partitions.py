"""Two cleaners of one attempt's partition (the sweeper and the next claimer) at once: the second finds it gone."""

from __future__ import annotations

import pytest

from loader_assets.workers import attempt_partitions as partitions
from loader_assets.workers.attempt_partitions import drop_attempt_partitions, partitions_of, reset_partition
from loader_assets.workers.connection import Server
from loader_assets_tests.workers.conftest import ChunkTableFactory


def test_a_partition_dropped_by_another_cleaner_meanwhile_is_no_error(
    worker: Server, database: str, chunk_table: ChunkTableFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = chunk_table()
    with worker.connect() as conn, conn.cursor() as cursor:
        reset_partition(cursor, database, table, 7)
    seen = partitions.attempts_in

    def then_the_other_cleaner_drops_it(cursor, database_, table_):  # type: ignore[no-untyped-def]
        present = seen(cursor, database_, table_)  # this cleaner saw p7 ...
        with worker.connect() as other, other.cursor() as other_cursor:  # ... the other one dropped it
            other_cursor.execute(f"ALTER TABLE `{database_}`.`{table_}` DROP PARTITION p7")
        return present

    monkeypatch.setattr(partitions, "attempts_in", then_the_other_cleaner_drops_it)
    drop_attempt_partitions(worker, database, table, [7])
    monkeypatch.undo()
    assert partitions_of(worker, database, table) == []
