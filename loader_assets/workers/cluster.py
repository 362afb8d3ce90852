"""The Qserv cluster the loader writes to: where the czar and the workers are, and which chunk goes where.

Configuration comes from `LOADER_CZAR` + `LOADER_WORKERS` when set, else from `<state_dir>/workers.json`
(written by `workers.local.start_cluster`). Passwords never appear in either: see `connection.ServerOptions`.

Placement follows Qserv's family rule: databases partitioned alike (same stripes, sub-stripes, overlap) form
a family, and chunk N of every member lives on the same worker, so joins between them stay local. The
placement is decided once, stored at the czar in `qservMeta.chunk_placement`, and never moved.
"""

from __future__ import annotations

import heapq
import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
from pymysql.constants import ER

from loader_assets.problems import BadInput, CzarDown, ServerDown, WorkerDown
from loader_assets.settings import Settings
from loader_assets.workers.connection import CZAR, WORKER, Server, ServerOptions, parse_url, quote_name

CONFIG_FILE = "workers.json"
META_DB = "qservMeta"
# Named lock serialising placement decisions across loader processes (the table itself is InnoDB).
_PLACEMENT_LOCK = "qservMeta.chunk_placement"
PLACED_IN_LIST = 1000  # more chunks than this: the family's whole placement is read instead
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ClusterIdentityError(BadInput):
    """The configured workers are not the ones the czar knows by these names (renamed or reordered)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause, "name the workers as the czar knows them (LOADER_WORKERS=name=url,…)")


@dataclass(frozen=True)
class ClusterConfig:
    """Password-free URLs of the czar and of the workers, workers keyed by name in a stable order."""

    czar_url: str
    workers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"czar": self.czar_url, "workers": dict(self.workers)}

    @classmethod
    def from_json(cls, data: Mapping) -> ClusterConfig:
        config = cls(czar_url=data["czar"], workers=dict(data["workers"]))
        config.validate()
        return config

    def validate(self) -> None:
        for url in [self.czar_url, *self.workers.values()]:
            parse_url(url)  # refuses URLs carrying passwords
        if not self.workers:
            raise BadInput("the cluster has no worker", "name at least one in LOADER_WORKERS (name=url,…)")

    def save(self, state_dir: Path) -> Path:
        path = state_dir / CONFIG_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        temporary.replace(path)  # atomic: a reader never sees half a file
        return path

    @classmethod
    def load(cls, state_dir: Path) -> ClusterConfig:
        path = state_dir / CONFIG_FILE
        if not path.exists():
            raise BadInput(
                f"no cluster configured (no {path})",
                "set LOADER_CZAR and LOADER_WORKERS, or `loader-assets workers up`",
            )
        rewrite = (
            "`loader-assets workers up` writes it again for the local cluster, or set LOADER_CZAR and LOADER_WORKERS"
        )
        try:
            data = json.loads(path.read_text())
        except ValueError as error:  # not JSON (or not text)
            raise BadInput(
                f"{path} is not a cluster configuration ({type(error).__name__}: {error})", rewrite
            ) from error
        shaped = isinstance(data, dict) and isinstance(data.get("czar"), str) and isinstance(data.get("workers"), dict)
        if not shaped or not all(isinstance(url, str) for url in data["workers"].values()):
            raise BadInput(f"{path} is not a cluster configuration (czar, workers)", rewrite)
        return cls.from_json(data)

    @classmethod
    def of(cls, settings: Settings) -> ClusterConfig:
        """`LOADER_CZAR` + `LOADER_WORKERS` when set, else the local cluster's `<state_dir>/workers.json`."""
        if settings.czar and settings.workers:
            config = cls(czar_url=settings.czar, workers=parse_worker_list(settings.workers.split(",")))
            config.validate()
            return config
        if settings.czar or settings.workers:  # else the other would silently come from workers.json
            given, missing = ("LOADER_CZAR", "LOADER_WORKERS") if settings.czar else ("LOADER_WORKERS", "LOADER_CZAR")
            raise BadInput(f"{given} is set but {missing} is not",
                           f"set both (or neither, for the local cluster of {settings.state_dir / CONFIG_FILE})")  # fmt: skip
        return cls.load(settings.state_dir)


class NotRegistered(LookupError):
    """The czar holds no partitioning family for the database: none of its chunks was ever placed."""


def parse_worker_list(items: Iterable[str]) -> dict[str, str]:
    """`name=url` items keep their name; bare URLs are named worker1..N by position."""
    workers: dict[str, str] = {}
    for position, item in enumerate((item.strip() for item in items if item.strip()), start=1):
        name, separator, url = item.partition("=")
        if not separator or "://" in name:
            name, url = f"worker{position}", item
        if name in workers:
            raise BadInput(f"worker name {name!r} appears twice in LOADER_WORKERS", "give each worker its own name")
        workers[name.strip()] = url.strip()
    return workers


def partitioning_family(num_stripes: int, num_sub_stripes: int, overlap: float) -> str:
    """Qserv's family key: databases with equal partitioning share chunk placement."""
    return f"{num_stripes}_{num_sub_stripes}_{overlap:g}"


def choose_workers(
    new_chunks: Mapping[int, int], workers: Iterable[str], assigned: Mapping[str, tuple[int, int]]
) -> dict[int, str]:
    """Greedy balance: biggest new chunk first onto the worker with the least (bytes, chunks) so far.

    `assigned` maps worker -> (bytes, chunks) already placed; ties go to the first worker by name.
    """
    least = [(*assigned.get(worker, (0, 0)), worker) for worker in set(workers)]
    heapq.heapify(least)  # (bytes, chunks, name): the least loaded on top, 10^5 chunks in a blink
    choice: dict[int, str] = {}
    for chunk in sorted(new_chunks, key=lambda c: (-new_chunks[c], c)):
        placed, count, worker = least[0]
        heapq.heapreplace(least, (placed + new_chunks[chunk], count + 1, worker))
        choice[chunk] = worker
    return choice


_META_DDL = (
    f"CREATE DATABASE IF NOT EXISTS {META_DB}",
    f"""CREATE TABLE IF NOT EXISTS {META_DB}.chunk_placement (
        family VARCHAR(64) NOT NULL, chunk INT NOT NULL, worker VARCHAR(255) NOT NULL,
        bytes BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (family, chunk), KEY by_worker (worker)
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS {META_DB}.workers (
        name VARCHAR(255) NOT NULL PRIMARY KEY, url VARCHAR(1024) NOT NULL
    ) ENGINE=InnoDB""",
    f"""CREATE TABLE IF NOT EXISTS {META_DB}.database_family (
        `database` VARCHAR(64) NOT NULL PRIMARY KEY, family VARCHAR(64) NOT NULL,
        num_stripes INT NOT NULL, num_sub_stripes INT NOT NULL, overlap DOUBLE NOT NULL
    ) ENGINE=InnoDB""",
)


class Cluster:
    """The czar and the workers, resolved once: chunk placement at the czar and a disk-room check."""

    def __init__(self, config: ClusterConfig, options: ServerOptions | None = None) -> None:
        config.validate()
        self.config = config
        options = options or ServerOptions()
        self.czar = Server(CZAR, CZAR, config.czar_url, options)
        self.workers = {name: Server(WORKER, name, url, options) for name, url in config.workers.items()}

    @classmethod
    def of(cls, settings: Settings) -> Cluster:
        return cls(ClusterConfig.of(settings), server_options(settings))

    def worker(self, name: str) -> Server:
        return self.workers[name]

    def ensure_meta(self) -> None:
        """The czar's metadata tables, and the workers known there by the names this config gives them.

        Placement is stored by worker name: a config that renames or reorders workers (bare URLs are named by
        position) would silently move chunks, so it is refused."""
        with self.czar.connect() as conn, conn.cursor() as cursor:
            for statement in _META_DDL:
                cursor.execute(statement)
            cursor.executemany(
                f"INSERT IGNORE INTO {META_DB}.workers VALUES (%s, %s)", list(self.config.workers.items())
            )
            cursor.execute(f"SELECT name, url FROM {META_DB}.workers")
            known = dict(cursor.fetchall())
        for name, url in sorted(self.config.workers.items()):
            if known[name] != url:
                raise ClusterIdentityError(
                    f"worker {name} is {known[name]} at the czar, not {url}: the configuration renames or reorders "
                    "workers"
                )
        by_url = {url: name for name, url in known.items()}
        for name, url in sorted(self.config.workers.items()):
            if by_url.get(url, name) != name:
                raise ClusterIdentityError(f"worker {url} is named {by_url[url]} at the czar, not {name}")

    def register_database(self, database: str, num_stripes: int, num_sub_stripes: int, overlap: float) -> str:
        """Record the partitioning of a database (once; a different one later is an error); returns its family."""
        self.ensure_meta()
        family = partitioning_family(num_stripes, num_sub_stripes, overlap)
        with self.czar.connect() as conn, conn.cursor() as cursor:
            cursor.execute(
                f"INSERT IGNORE INTO {META_DB}.database_family VALUES (%s, %s, %s, %s, %s)",
                (database, family, num_stripes, num_sub_stripes, overlap),
            )
            cursor.execute(f"SELECT family FROM {META_DB}.database_family WHERE `database` = %s", (database,))
            (stored,) = cursor.fetchone()
        if stored != family:
            raise BadInput(
                f"database {database} is registered at the czar with partitioning {stored}, not {family}",
                "give the case another database name, or drop the case that owns it",
            )
        return family

    def family_of(self, database: str) -> str:
        """The database's partitioning family; `NotRegistered` when the czar has none for it (a czar that never
        placed a chunk has not even the table)."""
        with self.czar.connect() as conn, conn.cursor() as cursor:
            try:
                cursor.execute(f"SELECT family FROM {META_DB}.database_family WHERE `database` = %s", (database,))
                row = cursor.fetchone()
            except pymysql.err.MySQLError as error:
                if error.args[0] not in (ER.NO_SUCH_TABLE, ER.BAD_DB_ERROR):
                    raise
                row = None
        if row is None:
            raise NotRegistered(f"database {database} is not registered: call register_database first")
        return row[0]

    def placement_or_empty(self, database: str) -> dict[int, str]:
        """`placement`, empty for a database the czar never placed a chunk of."""
        try:
            return self.placement(database)
        except NotRegistered:
            return {}

    def place_chunks(
        self, database: str, chunk_ids: Iterable[int], bytes_per_chunk: Mapping[int, int] | int = 0
    ) -> dict[int, str]:
        """Worker name of every chunk; chunks new to the family are placed now, placed ones never move."""
        family = self.family_of(database)
        chunks = sorted(set(chunk_ids))
        sizes = {c: bytes_per_chunk if isinstance(bytes_per_chunk, int) else bytes_per_chunk.get(c, 0) for c in chunks}
        with self.czar.connect() as conn, conn.cursor() as cursor:
            _acquire_lock(cursor, _PLACEMENT_LOCK)
            try:
                existing = _placed(cursor, family, chunks)
                new = {c: sizes[c] for c in chunks if c not in existing}
                if new:
                    choice = choose_workers(new, self.workers, _worker_load(cursor))
                    _insert_placement(cursor, family, [(c, w, new[c]) for c, w in choice.items()])
                    existing.update(choice)
            finally:
                cursor.execute("SELECT RELEASE_LOCK(%s)", (_PLACEMENT_LOCK,))
        return {c: existing[c] for c in chunks}

    def unregister_database(self, database: str, index_tables: Iterable[str]) -> None:
        """Forget a retired database at the czar: its director index tables, its family record, and its
        family's placement once no other database shares it (placement is per family)."""
        with self.czar.connect() as conn, conn.cursor() as cursor:
            for table in index_tables:
                cursor.execute(f"DROP TABLE IF EXISTS {META_DB}.{quote_name(table)}")
        try:
            family = self.family_of(database)
        except NotRegistered:  # never placed (a case registered, never loaded)
            return
        # The family record goes last: cut short (the czar down), the same call run again finds it and finishes.
        with self.czar.connect() as conn, conn.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {META_DB}.database_family WHERE family = %s AND `database` <> %s",
                           (family, database))  # fmt: skip
            if cursor.fetchone()[0] == 0:
                cursor.execute(f"DELETE FROM {META_DB}.chunk_placement WHERE family = %s", (family,))
            cursor.execute(f"DELETE FROM {META_DB}.database_family WHERE `database` = %s", (database,))

    def placement(self, database: str) -> dict[int, str]:
        """Every placed chunk of the database's family."""
        with self.czar.connect() as conn, conn.cursor() as cursor:
            return _placed(cursor, self.family_of(database), None)

    def room(self, worker: str, database: str | None = None) -> Room | None:
        """Free space of the disk holding a worker's data (a database's own directory when named, which may be
        another mount): read from the filesystem for a server on this host, else from MariaDB's DISKS plugin when
        it is installed; None when it cannot be known."""
        server = self.worker(worker)
        with server.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT @@datadir")
            datadir = str(cursor.fetchone()[0]).rstrip("/")
            place = f"{datadir}/{database}" if database else datadir
            if server.address.host in _LOOPBACK_HOSTS:
                where = place if Path(place).is_dir() else datadir
                return Room(worker, where, shutil.disk_usage(where).free)
            cursor.execute(
                "SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'DISKS' AND PLUGIN_STATUS = 'ACTIVE'"
            )
            if cursor.fetchone() is None:
                return None
            cursor.execute("SELECT Path, Available FROM information_schema.DISKS")
            mounts = [(str(path), int(free) * 1024) for path, free in cursor.fetchall() if place.startswith(str(path))]
        if not mounts:
            return None
        path, free = max(mounts, key=lambda mount: len(mount[0]))  # the mount point holding the data
        return Room(worker, path, free)

    def check_room(
        self, placement: Mapping[int, str], bytes_per_chunk: Mapping[int, int] | int, database: str | None = None
    ) -> dict[str, Shortage | ServerDown]:
        """Per worker short of room for its chunks, the shortage (refused: less free than the bytes to load;
        warned: those bytes past 80 % of the free space); a worker that does not answer, its problem."""
        needed: dict[str, int] = {}
        for chunk, worker in placement.items():
            size = bytes_per_chunk if isinstance(bytes_per_chunk, int) else bytes_per_chunk.get(chunk, 0)
            needed[worker] = needed.get(worker, 0) + size
        found: dict[str, Shortage | ServerDown] = {}
        for worker, need in sorted(needed.items()):
            try:
                room = self.room(worker, database)
            except ServerDown as down:
                found[worker] = down
                continue
            if room is not None and need > WARNED_SHARE * room.free:
                found[worker] = Shortage(self.worker(worker), room, need)
        return found


WARNED_SHARE = 0.8  # bytes to load past this share of a disk's free space: warned; past all of it: refused


@dataclass(frozen=True)
class Room:
    worker: str
    where: str  # the directory (or mount point) whose free space this is
    free: int


@dataclass(frozen=True)
class Shortage:
    server: Server
    room: Room
    need: int

    @property
    def refused(self) -> bool:
        return self.need > self.room.free

    def line(self) -> str:
        return (f"{self.server}: {self.need / 1e6:,.1f} MB to load, {self.room.free / 1e6:,.1f} MB free on its disk "
                f"({self.room.where})")  # fmt: skip

    def problem(self) -> ServerDown:
        return WorkerDown(f"{self.line()}: not enough room", f"free space on {self.server.name}'s disk, then load again",
                          self.server.name)  # fmt: skip


def server_options(settings: Settings) -> ServerOptions:
    return ServerOptions(settings.worker_password, settings.worker_tls, settings.worker_write_timeout)


def _acquire_lock(cursor: pymysql.cursors.Cursor, name: str, timeout: int = 60) -> None:
    cursor.execute("SELECT GET_LOCK(%s, %s)", (name, timeout))
    if cursor.fetchone()[0] != 1:
        raise CzarDown(f"the czar did not grant the lock {name} within {timeout} s (another loader holds it)",
                       "wait for the other loader, or see the czar's process list")  # fmt: skip


def _placed(cursor: pymysql.cursors.Cursor, family: str, chunks: list[int] | None) -> dict[int, str]:
    """Worker of each placed chunk of the family (of `chunks`, or all)."""
    if chunks is not None and len(chunks) <= PLACED_IN_LIST:
        if not chunks:
            return {}
        cursor.execute(f"SELECT chunk, worker FROM {META_DB}.chunk_placement WHERE family = %s AND chunk IN "
                       f"({','.join(['%s'] * len(chunks))})", [family, *chunks])  # fmt: skip
        return {chunk: worker for chunk, worker in cursor.fetchall()}
    # The whole family as one string of `chunk:worker` lines: 10^5 rows parsed by pymysql take seconds, and a
    # GROUP BY worker sorts them (0.4 s for 146k), where this is one scan of the primary key (0.05 s).
    cursor.execute("SET SESSION group_concat_max_len = 1073741824")
    # `,` between pairs: a worker's name has none (LOADER_WORKERS is `name=url,…`); a chunk id has no `:`.
    cursor.execute(f"SELECT GROUP_CONCAT(chunk, ':', worker SEPARATOR ',') FROM {META_DB}.chunk_placement "
                   "WHERE family = %s", (family,))  # fmt: skip
    (lines,) = cursor.fetchone()
    pairs = (line.partition(":") for line in lines.split(",")) if lines else ()
    placed = {int(chunk): worker for chunk, _, worker in pairs}
    return placed if chunks is None else {chunk: placed[chunk] for chunk in chunks if chunk in placed}


PLACEMENT_ROWS_PER_INSERT = 20_000  # ~1 MB of JSON a statement, well under max_allowed_packet


def _insert_placement(cursor: pymysql.cursors.Cursor, family: str, rows: list[tuple[int, str, int]]) -> None:
    """(chunk, worker, bytes) rows as JSON parameters (MariaDB >= 10.6): the 146k chunks of a sky in 1.0 s,
    where pymysql's executemany escapes every value (1.7 s)."""
    for start in range(0, len(rows), PLACEMENT_ROWS_PER_INSERT):
        part = [(int(c), w, int(b)) for c, w, b in rows[start : start + PLACEMENT_ROWS_PER_INSERT]]
        cursor.execute(
            f"INSERT INTO {META_DB}.chunk_placement (family, chunk, worker, bytes) SELECT %s, j.chunk, j.worker, "
            "j.bytes FROM JSON_TABLE(%s, '$[*]' COLUMNS (chunk INT PATH '$[0]', worker VARCHAR(255) PATH '$[1]', "
            "bytes BIGINT PATH '$[2]')) AS j",
            (family, json.dumps(part)),
        )


def _worker_load(cursor: pymysql.cursors.Cursor) -> dict[str, tuple[int, int]]:
    """(bytes, chunks) already placed per worker, over all families: the disks are shared by all of them."""
    cursor.execute(f"SELECT worker, SUM(bytes), COUNT(*) FROM {META_DB}.chunk_placement GROUP BY worker")
    return {worker: (int(total), int(count)) for worker, total, count in cursor.fetchall()}
