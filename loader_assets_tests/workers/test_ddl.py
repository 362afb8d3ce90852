"""DDL generated from table and index JSON, regular tables on every worker, and the director index."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from loader_assets.workers.ddl import (
    SchemaError,
    build_director_index,
    chunk_table_ddl,
    concatenated,
    create_chunk_tables,
    create_database,
    create_table,
    index_ddl,
    key_director_index,
)
from loader_assets.workers.load_data import load_file
from loader_assets_tests.workers.conftest import OBJECT_COLUMNS, OBJECT_NAMES


def test_chunk_table_ddl_keeps_types_verbatim_and_partitions_by_attempt():
    ddl = chunk_table_ddl("db", "Object", OBJECT_COLUMNS, 6630, overlap=True, charset="latin1")
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS `db`.`ObjectFullOverlap_6630` (")
    assert "`objectId` BIGINT NOT NULL," in ddl and "`payload` VARBINARY(64)," in ddl
    assert "`qserv_trans_id` INT NOT NULL" in ddl
    assert "ENGINE=MyISAM DEFAULT CHARSET=latin1" in ddl
    assert ddl.endswith("PARTITION BY LIST (`qserv_trans_id`) (PARTITION p0 VALUES IN (0))")


def test_index_ddl_per_spec():
    column = [{"column": "name", "length": 8, "ascending": 0}]
    assert index_ddl("db", "T_1", {"index": "i", "spec": "DEFAULT", "columns": column}) == (
        "CREATE INDEX IF NOT EXISTS `i` ON `db`.`T_1` (`name`(8) DESC)"
    )
    unique = index_ddl("db", "T_1", {"index": "u", "spec": "UNIQUE", "columns": [{"column": "id"}]})
    assert unique == "CREATE UNIQUE INDEX IF NOT EXISTS `u` ON `db`.`T_1` (`id`, `qserv_trans_id`)"
    with pytest.raises(SchemaError, match="SPATIAL"):
        index_ddl("db", "T_1", {"index": "s", "spec": "SPATIAL", "columns": [{"column": "g"}]})


def test_chunk_tables_and_indexes_are_created(worker, database):
    indexes = [
        {"index": "idx_objectId", "spec": "UNIQUE", "columns": [{"column": "objectId", "length": 0, "ascending": 1}]},
        {"index": "idx_name", "spec": "FULLTEXT", "columns": [{"column": "name", "length": 0, "ascending": 1}]},
    ]
    with worker.connect() as conn:
        create_database(conn, database, "latin1")
        create_chunk_tables(conn, database, "Object", OBJECT_COLUMNS, indexes, 42, "latin1")
        create_chunk_tables(conn, database, "Object", OBJECT_COLUMNS, indexes, 42, "latin1")  # idempotent
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT TABLE_NAME, INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
                "GROUP BY TABLE_NAME, INDEX_NAME ORDER BY 1, 2",
                (database,),
            )
            found = cursor.fetchall()
    assert found == (
        ("ObjectFullOverlap_42", "idx_name"),
        ("ObjectFullOverlap_42", "idx_objectId"),
        ("Object_42", "idx_name"),
        ("Object_42", "idx_objectId"),
    )


def test_a_new_table_is_made_in_one_statement_with_its_indexes_and_the_attempts_partition(worker, database):
    index = {"index": "idx_objectId", "spec": "UNIQUE", "columns": [{"column": "objectId"}]}
    with worker.connect() as conn:
        create_database(conn, database, "latin1")
        assert create_table(conn, database, "Object_7", OBJECT_COLUMNS, [index], "latin1", attempt_id=12) is True
        assert create_table(conn, database, "Object_7", OBJECT_COLUMNS, [index], "latin1", attempt_id=13) is False
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = %s ORDER BY 1",
                (database,),
            )
            partitions = [row[0] for row in cursor.fetchall()]
            cursor.execute("SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s",
                           (database,))  # fmt: skip
            indexes = [row[0] for row in cursor.fetchall()]
    assert partitions == ["p0", "p12"], "a table that exists is left as it is"
    assert indexes == ["idx_objectId"]


def test_regular_table_exists_on_every_worker(cluster, database, tmp_path):
    columns = [{"name": "filterId", "type": "TINYINT NOT NULL"}, {"name": "filterName", "type": "CHAR(3)"}]
    for server in cluster.workers.values():  # a regular table is copied to every worker
        with server.connect() as conn:
            create_database(conn, database, "latin1")
            create_table(conn, database, "Filter", columns, [], "latin1")
    path = tmp_path / "Filter.txt"
    path.write_bytes(b"0\tu\n1\tg\n2\tr\n")
    for server in cluster.workers.values():
        result = load_file(server, database, "Filter", path, "txt", None, "latin1", 1, ["filterId", "filterName"])
        assert result.rows == 3


def write_director_chunk(path, chunk: int, ids: np.ndarray) -> None:
    rows = len(ids)
    table = pa.table(
        {
            "objectId": ids,
            "chunkId": np.full(rows, chunk, dtype=np.int32),
            "subChunkId": (ids % 500).astype(np.int32),
            "ra": np.zeros(rows),
            "decl": np.zeros(rows),
            "name": pa.array(["n"] * rows),
            "payload": pa.array(["p"] * rows),
        }
    )
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"))


def test_director_index_is_built_from_chunks_on_all_workers(cluster, database, tmp_path):
    cluster.register_database(database, 340, 3, 0.01667)
    chunks = [10, 11, 12, 13]
    placement = cluster.place_chunks(database, chunks, 10**12)  # outweighs the chunks placed by other tests
    assert set(placement.values()) == {"worker1", "worker2"}
    rows_per_chunk = 250_000  # 10^6 rows in all
    for position, chunk in enumerate(chunks):
        server = cluster.worker(placement[chunk])
        with server.connect() as conn:
            create_database(conn, database, "latin1")
            create_chunk_tables(conn, database, "Object", OBJECT_COLUMNS, [], chunk, "latin1")
        path = tmp_path / f"chunk_{chunk}.tsv"
        write_director_chunk(path, chunk, np.arange(rows_per_chunk, dtype=np.int64) + position * rows_per_chunk)
        load_file(server, database, f"Object_{chunk}", path, "tsv", None, "latin1", 1, OBJECT_NAMES)

    assert build_director_index(cluster, database, "Object", "objectId", chunks) == 4 * rows_per_chunk
    assert build_director_index(cluster, database, "Object", "objectId", placement) == 4 * rows_per_chunk  # rebuild

    with cluster.czar.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), COUNT(DISTINCT chunkId) FROM qservMeta.`{database}__Object`")
        assert cursor.fetchone() == (1_000_000, 4)
        cursor.execute(f"SELECT chunkId, subChunkId FROM qservMeta.`{database}__Object` WHERE objectId = 750123")
        assert cursor.fetchone() == (13, 750123 % 500)

    key_director_index(cluster, database, "Object", "objectId")  # level 2: keyed, as Qserv reads it
    assert _index_layout(cluster, f"{database}__Object") == (["PRIMARY"], False)


def test_an_index_made_before_it_was_partitioned_is_keyed_too(cluster, database):
    """A catalog whose level 1 ran on an earlier loader_assets: its plain index gets its keys at level 2."""
    with cluster.czar.connect() as conn, conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE IF NOT EXISTS qservMeta")
        cursor.execute(f"CREATE TABLE qservMeta.`{database}__Object` (objectId BIGINT NOT NULL, chunkId INT NOT NULL, "
                       "subChunkId INT NOT NULL) ENGINE=MyISAM")  # fmt: skip
        cursor.execute(f"INSERT INTO qservMeta.`{database}__Object` VALUES (1, 10, 0), (2, 11, 3)")
    key_director_index(cluster, database, "Object", "objectId")
    assert _index_layout(cluster, f"{database}__Object") == (["PRIMARY"], False)


def test_the_chunks_of_an_index_made_before_their_rows_were_recorded_get_them(cluster, database, tmp_path):
    with cluster.czar.connect() as conn, conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE IF NOT EXISTS qservMeta")
        cursor.execute(f"CREATE TABLE qservMeta.`{database}__Object__chunks` (chunkId INT NOT NULL PRIMARY KEY, "
                       "version CHAR(40) NOT NULL) ENGINE=InnoDB")  # fmt: skip
    cluster.register_database(database, 340, 3, 0.01667)
    worker = cluster.place_chunks(database, [20])[20]  # weightless: it tips no later placement
    with cluster.worker(worker).connect() as conn:
        create_database(conn, database, "latin1")
        create_chunk_tables(conn, database, "Object", OBJECT_COLUMNS, [], 20, "latin1")
    write_director_chunk(tmp_path / "chunk_20.tsv", 20, np.arange(100, dtype=np.int64))
    load_file(cluster.worker(worker), database, "Object_20", tmp_path / "chunk_20.tsv", "tsv", None, "latin1", 1,
              OBJECT_NAMES)  # fmt: skip

    assert build_director_index(cluster, database, "Object", "objectId", {20: worker}, {20: "v1"}) == 100
    with cluster.czar.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT version, index_rows FROM qservMeta.`{database}__Object__chunks`")
        assert cursor.fetchall() == (("v1", 100),)


def _index_layout(cluster, name: str) -> tuple[list[str], bool]:
    """The index's keys, and whether it is partitioned."""
    with cluster.czar.connect() as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'qservMeta' "
            "AND TABLE_NAME = %s ORDER BY INDEX_NAME != 'PRIMARY', INDEX_NAME",
            (name,),
        )
        keys = [row[0] for row in cursor.fetchall()]
        cursor.execute(f"SHOW CREATE TABLE qservMeta.`{name}`")
        return keys, "PARTITION" in cursor.fetchone()[1]


def test_a_director_chunk_too_big_for_one_packet_is_read_a_sub_chunk_at_a_time(small_packets):
    """GROUP_CONCAT cuts a text longer than max_allowed_packet with only a warning: the reply's warning count sends
    the read back a sub-chunk at a time, and every key comes back."""
    keys = [4_000_000_000_000_000_000 + key for key in range(80_000)]  # 20 bytes each: 1.6 MB, over 1 MiB
    with small_packets.connect() as conn, conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE IF NOT EXISTS blobs")
        cursor.execute("CREATE TABLE blobs.chunk (objectId BIGINT NOT NULL, subChunkId INT NOT NULL)")
        cursor.executemany("INSERT INTO blobs.chunk VALUES (%s, %s)", [(key, key % 8) for key in keys])
        blobs = concatenated(cursor, "GROUP_CONCAT(objectId SEPARATOR ',')", "blobs.chunk")
    assert len(blobs) == 8
    assert sum(rows for _text, rows, _also in blobs) == len(keys)
    assert sorted(int(key) for text, _rows, _also in blobs for key in text.split(b",")) == keys
