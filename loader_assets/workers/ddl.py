"""DDL of a Qserv catalog on the workers and of its director index at the czar.

Every table (chunk, overlap, regular) is MyISAM and LIST-partitioned on `qserv_trans_id`, the id of the
load attempt that wrote the row: dropping one partition removes exactly what one attempt wrote. `p0` is a
placeholder, since a partitioned table needs at least one partition.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

import pymysql
from pymysql.constants import ER

from loader_assets.problems import BadInput, Failed
from loader_assets.qserv.column_types import is_column_type
from loader_assets.workers import local_infile
from loader_assets.workers.attempt_partitions import partition_name
from loader_assets.workers.cluster import META_DB, Cluster
from loader_assets.workers.connection import Server, charset_name, quote_name, quote_table

TRANS_ID = "qserv_trans_id"
INDEX_SPECS = {"DEFAULT": "", "UNIQUE": "UNIQUE ", "FULLTEXT": "FULLTEXT ", "SPATIAL": "SPATIAL "}
_FEW_CHUNKS = 1000  # asked of the director index by their ids, not by reading all it knows
GROUP_CONCAT_BYTES = 1 << 30  # one blob's text must fit (and in max_allowed_packet)


class SchemaError(BadInput):
    """A table or index description that cannot be turned into DDL, or a database that is not this catalog's."""

    def __init__(self, cause: str, fix: str = "correct the table JSON of the case") -> None:
        super().__init__(cause, fix)


class DirectorIndexError(Failed):
    """The director index could not be built exactly (e.g. a key appears in two chunks)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause, "see the level-2 checks of the director (`loader-assets status`)")


def chunk_table_name(table: str, chunk: int, overlap: bool = False) -> str:
    """`Object_6630`, or `ObjectFullOverlap_6630` for the overlap rows."""
    return f"{table}FullOverlap_{chunk}" if overlap else f"{table}_{chunk}"


def director_index_table(database: str, director: str) -> str:
    """Name of the director index in `qservMeta` at the czar."""
    return f"{database}__{director}"


def director_index_tables(database: str, director: str) -> list[str]:
    """Every table the director index keeps at the czar: the index and the version of each chunk in it."""
    return [director_index_table(database, director), director_index_table(database, director) + "__chunks"]


STAMP_TABLE = "loader_catalog"  # in every database a catalog creates on a worker: which catalog owns it


def create_database(conn: pymysql.Connection, db: str, charset: str, catalog_id: str | None = None) -> None:
    """The database (and, with `catalog_id`, its owner's stamp: another catalog's database is refused)."""
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {quote_name(db)} CHARACTER SET {charset_name(charset)}")
        if catalog_id is None:
            return
        stamp = quote_table(db, STAMP_TABLE)
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {stamp} (catalog_id CHAR(36) NOT NULL PRIMARY KEY) ENGINE=MyISAM")
        cursor.execute(
            f"INSERT INTO {stamp} SELECT %s FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM {stamp})", (catalog_id,)
        )
        cursor.execute(f"SELECT catalog_id FROM {stamp}")
        owners = [row[0] for row in cursor.fetchall()]
    if owners != [catalog_id]:
        raise SchemaError(
            f"database {db} on {conn.host}:{conn.port} belongs to catalog {', '.join(owners)}, not to this one "
            f"({catalog_id})",
            "load it from its own catalog, or drop that database first",
        )


def drop_database(conn: pymysql.Connection, db: str, catalog_id: str) -> bool:
    """Drop a database this catalog created (its stamp says so); another catalog's is refused. False: none."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,))
        if cursor.fetchone() is None:
            return False
        cursor.execute(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (db, STAMP_TABLE)
        )
        owners = []
        if cursor.fetchone() is not None:
            cursor.execute(f"SELECT catalog_id FROM {quote_table(db, STAMP_TABLE)}")
            owners = [row[0] for row in cursor.fetchall()]
        if owners != [catalog_id]:
            raise SchemaError(f"database {db} on {conn.host}:{conn.port} is not this catalog's ({catalog_id})",
                              "left as it is: drop it from the catalog that made it")  # fmt: skip
        cursor.execute(f"DROP DATABASE {quote_name(db)}")
    return True


def table_ddl(
    db: str,
    name: str,
    columns: Sequence[Mapping[str, str]],
    charset: str,
    *,
    indexes: Iterable[Mapping] = (),
    attempt_id: int | None = None,
    if_not_exists: bool = True,
) -> str:
    """`CREATE TABLE` with the JSON's MariaDB types verbatim plus the attempt-id column, `indexes` inline and,
    beside `p0`, the partition of `attempt_id`: one statement where a worker would otherwise run several."""
    if not columns:
        raise SchemaError(f"table {db}.{name} has no columns")
    for column in columns:  # registration refused these already; a DDL never trusts what it pastes
        if not is_column_type(column["type"]):
            raise SchemaError(f"table {db}.{name}: column {column['name']!r}: {column['type']!r} is not a column type")
    lines = [f"  {quote_name(column['name'])} {column['type']}" for column in columns]
    lines.append(f"  {quote_name(TRANS_ID)} INT NOT NULL")
    lines += [f"  {_index_clause(index)}" for index in indexes]
    body = ",\n".join(lines)
    partitions = ["PARTITION p0 VALUES IN (0)"]
    if attempt_id is not None:
        partitions.append(f"PARTITION {partition_name(attempt_id)} VALUES IN ({int(attempt_id)})")
    return (
        f"CREATE TABLE {'IF NOT EXISTS ' if if_not_exists else ''}{quote_table(db, name)} (\n{body}\n) ENGINE=MyISAM "
        f"DEFAULT CHARSET={charset_name(charset)}\nPARTITION BY LIST ({quote_name(TRANS_ID)}) "
        f"({', '.join(partitions)})"
    )


def chunk_table_ddl(
    db: str, table: str, columns: Sequence[Mapping[str, str]], chunk: int, overlap: bool, charset: str
) -> str:
    return table_ddl(db, chunk_table_name(table, chunk, overlap), columns, charset)


def index_ddl(db: str, table_name: str, index: Mapping) -> str:
    """`CREATE … INDEX IF NOT EXISTS` from an index JSON document."""
    spec, parts = _index_spec(index)
    return (
        f"CREATE {INDEX_SPECS[spec]}INDEX IF NOT EXISTS {quote_name(index['index'])} "
        f"ON {quote_table(db, table_name)} ({', '.join(parts)})"
    )


def _index_clause(index: Mapping) -> str:
    """The index inside a CREATE TABLE."""
    spec, parts = _index_spec(index)
    return f"{INDEX_SPECS[spec]}KEY {quote_name(index['index'])} ({', '.join(parts)})"


def _index_spec(index: Mapping) -> tuple[str, list[str]]:
    spec = str(index.get("spec", "DEFAULT")).upper()
    if spec not in INDEX_SPECS:
        raise SchemaError(f"index {index.get('index')}: unknown spec {spec!r}")
    if spec == "SPATIAL":
        # MariaDB partitioned tables support no GEOMETRY columns, hence no SPATIAL index on chunk tables.
        raise SchemaError(f"index {index.get('index')}: SPATIAL indexes are not supported on partitioned tables")
    parts = [_index_part(column) for column in index["columns"]]
    if spec == "UNIQUE":
        parts.append(quote_name(TRANS_ID))  # MariaDB: a unique key must contain the partitioning column
    return spec, parts


def _index_part(column: Mapping) -> str:
    part = quote_name(column["column"])
    if int(column.get("length", 0) or 0) > 0:
        part += f"({int(column['length'])})"
    if not int(column.get("ascending", 1)):
        part += " DESC"
    return part


def create_table(
    conn: pymysql.Connection,
    db: str,
    name: str,
    columns: Sequence[Mapping],
    indexes: Iterable[Mapping],
    charset: str,
    *,
    attempt_id: int | None = None,
) -> bool:
    """Create one table with its indexes (and the partition of `attempt_id`) in one statement; True when it was
    created now. A table that existed is kept, its missing indexes added (idempotent)."""
    indexes = list(indexes)
    with conn.cursor() as cursor:
        try:
            cursor.execute(
                table_ddl(db, name, columns, charset, indexes=indexes, attempt_id=attempt_id, if_not_exists=False)
            )
            return True
        except pymysql.err.MySQLError as error:
            if error.args[0] != ER.TABLE_EXISTS_ERROR:
                raise
        for index in indexes:  # e.g. a table made by an earlier loader_assets, its indexes added one by one
            cursor.execute(index_ddl(db, name, index))
        return False


def create_chunk_tables(
    conn: pymysql.Connection,
    db: str,
    table: str,
    columns: Sequence[Mapping],
    indexes: Iterable[Mapping],
    chunk: int,
    charset: str,
) -> None:
    """The chunk table and its FullOverlap twin, both with the table's indexes."""
    indexes = list(indexes)
    for overlap in (False, True):
        create_table(conn, db, chunk_table_name(table, chunk, overlap), columns, indexes, charset)


def build_director_index(
    cluster: Cluster,
    db: str,
    director: str,
    director_key: str,
    chunks: Mapping[int, str] | Iterable[int],
    versions: Mapping[int, str] | None = None,
) -> int:
    """Fill `qservMeta.<db>__<director>` (key -> chunkId, subChunkId) from the director's chunk tables.

    `chunks` maps chunk -> worker name, or lists chunks whose worker is read from the placement. Per chunk:
    with `versions` (chunk -> what its rows are, e.g. its attempts), only the chunks whose version changed
    since the index last took them are replaced; without, all of them. The workers' rows stream into a
    temporary TSV file (one GROUP_CONCAT blob per sub-chunk: memory bounded by a sub-chunk) loaded at the czar
    with LOAD DATA. Returns the number of index rows written. Beside each chunk's version, the index's rows of
    that chunk are recorded (`index_rows_per_chunk` reads them instead of counting the index).

    The index is made without keys: while level 1 appends chunk after chunk, a MyISAM append updates no key.
    `key_director_index` (level 2) then builds them in one sorted pass. Until then it is a table of one
    partition: MyISAM caches the writes of a LOAD DATA into a partitioned table, but writes a plain table's rows
    a few at a time when it cannot tell how many come (MariaDB 10.11: 0.6-1.0 against 1.6-2.1 µs of CPU a key).
    """
    placement = chunks if isinstance(chunks, Mapping) else _placed_chunks(cluster, db, chunks)
    if not placement:
        return 0
    index = f"{META_DB}.{quote_name(director_index_table(db, director))}"
    indexed = f"{META_DB}.{quote_name(director_index_tables(db, director)[1])}"
    key_type = _column_type(cluster, db, placement, director, director_key)
    with cluster.czar.connect(local_infile=True, reuse=True) as czar, czar.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {META_DB}")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {index} ({quote_name(director_key)} {key_type} NOT NULL, "
            f"chunkId INT NOT NULL, subChunkId INT NOT NULL) ENGINE=MyISAM "
            f"PARTITION BY KEY ({quote_name(director_key)}) PARTITIONS 1"
        )
        _create_chunk_versions(cursor, indexed)
        stale, known = _stale_chunks(cursor, indexed, placement, versions)
        if not stale:
            return 0
        # Marked before their rows go in: a build that dies half-way leaves them known, so cleared next time.
        cursor.executemany(
            f"REPLACE INTO {indexed} (chunkId, version, index_rows) VALUES (%s, 'building', NULL)",
            [(c,) for c in stale],
        )
        _clear_index_chunks(cursor, index, [c for c in stale if c in known])
        dumped: dict[int, tuple[int, int]] = {}
        with tempfile.NamedTemporaryFile("wb", suffix=".tsv") as dump:
            for worker, worker_chunks in _by_worker({c: placement[c] for c in stale}).items():
                dumped |= _dump_director_rows(cluster.worker(worker), db, director, director_key, worker_chunks, dump)
            dump.flush()
            loaded = _load_index_file(cursor, index, Path(dump.name), director_key, sum(r for r, _ in dumped.values()))
        if versions is not None:
            cursor.executemany(
                f"REPLACE INTO {indexed} (chunkId, version, index_rows) VALUES (%s, %s, %s)",
                [(c, versions[c], dumped[c][1]) for c in stale],
            )
        return loaded


def _create_chunk_versions(cursor: pymysql.cursors.Cursor, indexed: str) -> None:
    """The table of the chunks the index holds: their version and the index's rows of each (a column added to
    a table made before it existed; NULL: not recorded, the index is counted)."""
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {indexed} (chunkId INT NOT NULL PRIMARY KEY, version CHAR(40) NOT NULL, "
        "index_rows BIGINT NULL) ENGINE=InnoDB"
    )
    cursor.execute(f"SHOW COLUMNS FROM {indexed} LIKE 'index_rows'")  # a read: no ALTER on every build
    if cursor.fetchone() is None:
        cursor.execute(f"ALTER TABLE {indexed} ADD COLUMN index_rows BIGINT NULL")


def index_is_current(cluster: Cluster, db: str, director: str, versions: Mapping[int, str]) -> bool:
    """Whether the director index holds every one of these chunks at its version (nothing to rebuild)."""
    indexed = f"{META_DB}.{quote_name(director_index_tables(db, director)[1])}"
    with cluster.czar.connect() as czar, czar.cursor() as cursor:
        try:
            stale, _known = _stale_chunks(cursor, indexed, versions, versions)
        except pymysql.err.ProgrammingError:  # no index yet
            return False
    return not stale


def key_director_index(cluster: Cluster, db: str, director: str, director_key: str) -> None:
    """The index's primary key on the director key, built in one sorted pass if it has none yet, and its
    level-1 partitioning removed in the same pass; a key found twice is a `DirectorIndexError` naming it. No key
    by chunk: it would double the sort, and what is asked by chunk is recorded beside the index or read off
    the worker."""
    name = director_index_table(db, director)
    with cluster.czar.connect() as czar, czar.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT COUNT(*) FROM information_schema.STATISTICS "
            "        WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY'), "
            "       (SELECT COUNT(*) FROM information_schema.PARTITIONS "
            "        WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND PARTITION_NAME IS NOT NULL)",
            (META_DB, name, META_DB, name),
        )
        keyed, partitioned = cursor.fetchone()
        if keyed:
            return
        try:
            cursor.execute(
                f"ALTER TABLE {META_DB}.{quote_name(name)} ADD PRIMARY KEY ({quote_name(director_key)})"
                + (" REMOVE PARTITIONING" if partitioned else "")  # an index made before it was partitioned: none
            )
        except pymysql.err.IntegrityError as error:
            raise DirectorIndexError(f"director index {META_DB}.{name}: {error.args[-1]}") from None


def index_version(incarnation: str, attempt_ids: Iterable[int]) -> str:
    """What a chunk's rows are, for the director index: the case's incarnation and the attempts that wrote them
    (hashed)."""
    return hashlib.sha1(f"{incarnation}:{','.join(map(str, sorted(attempt_ids)))}".encode()).hexdigest()


def _stale_chunks(
    cursor: pymysql.cursors.Cursor, indexed: str, placement: Mapping[int, str], versions: Mapping[int, str] | None
) -> tuple[list[int], set[int]]:
    """The chunks to (re)build, and those of them the index holds rows of (or may, after a build that died);
    without `versions`, every chunk the index knows. Only the asked chunks are read when they are few: level 1
    asks chunk by chunk, and a case has up to ~150,000."""
    if versions is not None and len(placement) <= _FEW_CHUNKS:
        listed = ",".join(str(int(c)) for c in placement) or "NULL"
        cursor.execute(f"SELECT chunkId, version FROM {indexed} WHERE chunkId IN ({listed})")
    else:
        cursor.execute(f"SELECT chunkId, version FROM {indexed}")
    known = dict(cursor.fetchall())
    if versions is None:
        return sorted(placement), set(placement)  # all of them, whatever the index holds of them
    return sorted(c for c in placement if known.get(c) != versions[c]), set(known)


def _clear_index_chunks(cursor: pymysql.cursors.Cursor, index: str, chunks: list[int]) -> None:
    """Remove the index rows of these chunks; TRUNCATE when they are all there is (much faster than DELETE)."""
    if not chunks:
        return
    listed = ",".join(map(str, chunks))
    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {index} WHERE chunkId NOT IN ({listed}))")
    if cursor.fetchone()[0]:
        cursor.execute(f"DELETE FROM {index} WHERE chunkId IN ({listed})")
    else:
        cursor.execute(f"TRUNCATE TABLE {index}")


def _placed_chunks(cluster: Cluster, db: str, chunks: Iterable[int]) -> dict[int, str]:
    placement = cluster.placement(db)
    missing = [c for c in chunks if c not in placement]
    if missing:
        raise LookupError(f"chunks without placement in {db}: {missing[:10]}")
    return {c: placement[c] for c in chunks}


def _by_worker(placement: Mapping[int, str]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for chunk, worker in sorted(placement.items()):
        grouped.setdefault(worker, []).append(chunk)
    return grouped


def _column_type(cluster: Cluster, db: str, placement: Mapping[int, str], director: str, column: str) -> str:
    """SQL type of the director key, read from one loaded chunk table so the index matches it exactly."""
    chunk, worker = min(placement.items())
    table = chunk_table_name(director, chunk)
    with cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME = %s",
            (db, table, column),
        )
        row = cursor.fetchone()
    if row is None:
        raise SchemaError(f"{db}.{table} on {worker} has no column {column}")
    return row[0]


def _load_index_file(cursor: pymysql.cursors.Cursor, index: str, path: Path, key: str, expected: int) -> int:
    """LOAD DATA the dump into the index; a duplicate key (a warning under LOCAL) is an error."""
    local_infile.execute(
        cursor,
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {index} CHARACTER SET utf8mb4 ({quote_name(key)}, chunkId, subChunkId)",
        (str(path),),
    )
    loaded = cursor.rowcount
    cursor.execute("SHOW WARNINGS LIMIT 3")
    warnings = [message for _level, _code, message in cursor.fetchall()]
    if warnings or loaded != expected:
        raise DirectorIndexError(f"director index {index}: {loaded} of {expected} rows loaded; {'; '.join(warnings)}")
    return loaded


def concatenated(
    cursor: pymysql.cursors.Cursor, value: str, source: str, also: str = "0"
) -> list[tuple[bytes, int, int]]:
    """(blob, rows, `also`) of `GROUP_CONCAT` expression `value` over `source` (a director's chunk table), `also`
    an aggregate beside it: one blob — no grouping, a temporary table would cost more than the text — or one
    per sub-chunk when it does not fit in a packet. Parsing a chunk's rows one by one in pymysql would take
    seconds; a few blobs take none."""
    cursor.execute("SET SESSION group_concat_max_len = %s", (GROUP_CONCAT_BYTES,))
    sql = f"SELECT CAST({value} AS BINARY), COUNT(*), {also} FROM {source}"
    cursor.execute(sql)
    found = cursor.fetchall()
    if cursor.warning_count:  # a blob cut short (max_allowed_packet) is only a warning, counted in the reply
        cursor.execute(f"{sql} GROUP BY subChunkId")
        found = cursor.fetchall()
    return [(text, int(count), int(other or 0)) for text, count, other in found if count]


def _dump_director_rows(
    server: Server, db: str, director: str, key: str, chunks: list[int], out: IO[bytes]
) -> dict[int, tuple[int, int]]:
    """Write `key \\t chunkId \\t subChunkId` lines of the chunks (overlap excluded) to `out`; per chunk, the
    rows written and those of them whose chunkId is the chunk's (the others go to another chunk's index)."""
    dumped = {}
    lines = f"GROUP_CONCAT(CONCAT_WS('\\t', {quote_name(key)}, chunkId, subChunkId) SEPARATOR '\\n')"
    with server.connect() as conn, conn.cursor() as cursor:
        for chunk in chunks:
            table = quote_table(db, chunk_table_name(director, chunk))
            blobs = concatenated(cursor, lines, table, also=f"SUM(chunkId = {int(chunk)})")
            out.writelines(text + b"\n" for text, _rows, _own in blobs)
            dumped[chunk] = (sum(rows for _t, rows, _o in blobs), sum(own for _t, _r, own in blobs))
    return dumped
