"""The selection language against real catalogs: exact ids on SQLite and PostgreSQL, errors, injection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, select

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import batches, cases, notices
from loader_assets.problems import BadInput
from loader_assets.selection.language import (
    BATCH_FIELDS,
    NOTICE_FIELDS,
    QueryError,
    compile_batch_query,
    compile_notice_query,
    describe_fields,
)

NOW = datetime(2026, 11, 23, 12, 0, 0)
HOUR = timedelta(hours=1)
ALL_NOTICES = list(range(1, 13))
ALL_BATCHES = [1, 2, 3, 4, 5]

# -------------------------------------------------------------------------------------- the fixture

BATCH_ROWS = [
    # id, table, directory, step, task, level, priority, comment
    (1, "Object", "step1_1", 1, 1, 1, 5, "first"),
    (2, "Source", "step2_7", 2, 7, 2, 0, None),
    (3, "Source", "step2_8", 2, 8, 2, 1, "it's"),
    (4, "Filter", "step3_1", 3, 1, 3, 0, None),
    (5, "Misc", "misc", None, None, 4, 0, None),  # no notices: derived status done
]

NOTICE_DEFAULTS: dict[str, Any] = {
    "case": "dp1", "chunk": None, "overlap": False, "size": 1000, "changed": False, "priority": 0,
    "attempts": 0, "rows": None, "worker": None, "error": None, "comment": None, "attempt_id": None,
    "locked_by": None, "owner_host": None, "owner_pid": None, "locked_at": None, "heartbeat_at": None,
    "lease_until": None, "retry_after": None, "created_at": NOW - 2 * 24 * HOUR, "started_at": None,
    "finished_at": None, "updated_at": NOW - HOUR,
}  # fmt: skip

TRICKY_ERRORS = [
    "it's broken; DROP TABLE notices; --",
    "' OR 1=1 --",
    'Ünïcødé ✓ "quoted" \\ back',
    "",
]


def _notice(id: int, batch: int, table: str, level: int, path: str, status: str, **fields: Any) -> dict[str, Any]:
    """A full notice row: executemany needs the same keys in every row."""
    row = {**NOTICE_DEFAULTS, "id": id, "batch": batch, "table": table, "level": level, "path": path}
    row.update(status=status, format=path.rsplit(".", 1)[1], mtime=1.7e9 + id)
    return {**row, **fields}


NOTICE_ROWS = [
    _notice(1, 1, "Object", 1, "step1_1/chunk_57866.txt", "done", chunk=57866, attempts=1, rows=500,
            worker="w1", started_at=NOW - 5 * HOUR, finished_at=NOW - 4 * HOUR),
    _notice(2, 1, "Object", 1, "step1_1/chunk_57866_overlap.txt", "done", chunk=57866, overlap=True,
            attempts=1, rows=100, worker="w1", comment="recheck", started_at=NOW - 5 * HOUR,
            finished_at=NOW - 4.5 * HOUR),
    _notice(3, 1, "Object", 1, "step1_1/chunk_57867.txt", "failed", chunk=57867, priority=2, attempts=3,
            worker="w2", error=TRICKY_ERRORS[0], started_at=NOW - 3 * HOUR, finished_at=NOW - 2 * HOUR,
            retry_after=NOW + 0.5 * HOUR),
    _notice(4, 1, "Object", 1, "step1_1/chunk_57870.txt", "ready", chunk=57870, changed=True, size=10),
    _notice(5, 2, "Source", 2, "step2_7/chunk_57866.csv", "running", chunk=57866, priority=1, attempts=1,
            worker="w3", size=5_000_000_000, locked_by="run-a", owner_host="host1", owner_pid=4242,
            locked_at=NOW - timedelta(minutes=40), heartbeat_at=NOW - timedelta(minutes=1),
            lease_until=NOW + timedelta(minutes=10), started_at=NOW - timedelta(minutes=40)),
    _notice(6, 2, "Source", 2, "step2_7/chunk_57868_overlap.csv", "ready", chunk=57868, overlap=True,
            attempts=2, error=TRICKY_ERRORS[1], retry_after=NOW + HOUR),
    _notice(7, 2, "Source", 2, "step2_7/Chunk_57869.csv", "done", chunk=57869, attempts=1, rows=80,
            worker="w1", started_at=NOW - 2 * HOUR, finished_at=NOW - HOUR),
    _notice(8, 2, "Source", 2, "step2_7/chunk_57900%_x.csv", "ready", chunk=57900, error=TRICKY_ERRORS[2]),
    _notice(9, 3, "Source", 2, "step2_8/chunk_57871.csv", "done", chunk=57871, attempts=1, rows=7,
            worker="w2", started_at=NOW - 24 * HOUR, finished_at=NOW - 23 * HOUR),
    _notice(10, 3, "Source", 2, "step2_8/star*name.csv", "ready", chunk=57872, mtime=1.5),
    _notice(11, 4, "Filter", 3, "step3_1/filter.parquet", "done", attempts=1, rows=1_000_000, worker="w1",
            started_at=NOW - 72 * HOUR, finished_at=NOW - 71 * HOUR),
    _notice(12, 4, "Filter", 3, "step3_1/filter_b.parquet", "done", attempts=2, rows=0, worker="w2",
            error=TRICKY_ERRORS[3], started_at=NOW - 72 * HOUR, finished_at=NOW - 48 * HOUR),
]  # fmt: skip


def _fill_catalog(db: CatalogDB) -> None:
    with db.write() as connection:
        connection.execute(
            cases.insert(),
            {"case": "dp1", "database": "dp1", "dialect": {}, "root": "/data/dp1", "created_at": NOW},
        )
        keys = ("id", "table", "directory", "step", "task", "level", "priority", "comment")
        connection.execute(
            batches.insert(), [{"case": "dp1", **dict(zip(keys, row, strict=True))} for row in BATCH_ROWS]
        )
        connection.execute(notices.insert(), NOTICE_ROWS)


@pytest.fixture
def catalog(catalog_db: CatalogDB) -> Iterator[CatalogDB]:
    _fill_catalog(catalog_db)
    yield catalog_db


def notice_ids(db: CatalogDB, query: str) -> list[int]:
    with db.read() as connection:
        statement = select(notices.c.id).where(compile_notice_query(query, now=NOW)).order_by(notices.c.id)
        return list(connection.execute(statement).scalars())


def batch_ids(db: CatalogDB, query: str) -> list[int]:
    with db.read() as connection:
        statement = select(batches.c.id).where(compile_batch_query(query, now=NOW)).order_by(batches.c.id)
        return list(connection.execute(statement).scalars())


def snapshot(db: CatalogDB) -> list[list[tuple[Any, ...]]]:
    tables: list[Table] = [cases, batches, notices]
    with db.read() as connection:
        return [[tuple(row) for row in connection.execute(select(t).order_by(*t.primary_key))] for t in tables]


def assert_selects(db: CatalogDB, cases_: list[tuple[str, list[int]]], select_ids: Any = notice_ids) -> None:
    """Check every (query, ids) pair and report all mismatches at once."""
    wrong = {query: (select_ids(db, query), ids) for query, ids in cases_ if select_ids(db, query) != ids}
    assert not wrong, "query: (got, expected)\n" + "\n".join(f"{q!r}: {g} != {e}" for q, (g, e) in wrong.items())


# ------------------------------------------------------------------------------- selections by class


def test_comparison_operators_on_numbers(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("id = 3", [3]),
        ("id == 3", [3]),
        ("chunk != 57866", [3, 4, 6, 7, 8, 9, 10]),  # NULL chunks match neither = nor !=
        ("chunk <> 57866", [3, 4, 6, 7, 8, 9, 10]),
        ("chunk < 57868", [1, 2, 3, 5]),
        ("chunk <= 57868", [1, 2, 3, 5, 6]),
        ("chunk > 57870", [8, 9, 10]),
        ("chunk >= 57870", [4, 8, 9, 10]),
        ("chunk < 57866.5", [1, 2, 5]),  # a float against an int column is not truncated
        ("chunk = 9223372036854775807", []),
        ("chunk > -9223372036854775808", list(range(1, 11))),
        ("priority > -1", ALL_NOTICES),
        ("priority = -1", []),
        ("size > 4e9", [5]),
        ("size = 5000000000", [5]),
        ("size < 100", [4]),
        ("mtime < 100", [10]),
        ("mtime = 1.5", [10]),
        ("mtime = 15e-1", [10]),
        ("mtime > 1.5", [i for i in ALL_NOTICES if i != 10]),
        ("attempts >= 2 AND rows IS NULL", [3, 6]),
        ("owner_pid = 4242", [5]),
    ])  # fmt: skip


def test_boolean_structure_and_precedence(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("level = 2 AND status = 'ready'", [6, 8, 10]),
        ("level = 1 OR level = 3", [1, 2, 3, 4, 11, 12]),
        ("NOT level = 2", [1, 2, 3, 4, 11, 12]),
        ("NOT (level = 2 OR status = done)", [3, 4]),
        ("level = 3 OR level = 1 AND status = failed", [3, 11, 12]),  # AND binds tighter than OR
        ("(level = 3 OR level = 1) AND status = failed", [3]),
        ("level = 1 aNd status = done", [1, 2]),
        ("not not level = 3", [11, 12]),
        ("((((level = 3))))", [11, 12]),
    ])  # fmt: skip


def test_text_fields_and_quoting(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("table = 'Object'", [1, 2, 3, 4]),
        ('table = "Object"', [1, 2, 3, 4]),
        ("table = Object", [1, 2, 3, 4]),  # a bare word is text
        ("table = 'object'", []),  # case-sensitive on both backends
        ("table > 'Object'", [5, 6, 7, 8, 9, 10]),
        ("case = dp1", ALL_NOTICES),
        ("comment = 'recheck'", [2]),
        ("error = ''", [12]),
        ("error = \"it's broken; DROP TABLE notices; --\"", [3]),
        ("error = 'it\\'s broken; DROP TABLE notices; --'", [3]),
        ("error = '\\' OR 1=1 --'", [6]),
        ("error = 'Ünïcødé ✓ \"quoted\" \\\\ back'", [8]),
        ("path BETWEEN 'step2' AND 'step3'", [5, 6, 7, 8, 9, 10]),
    ])  # fmt: skip


def test_bool_fields(catalog: CatalogDB) -> None:
    not_overlap = [1, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    assert_selects(catalog, [
        ("overlap", [2, 6]),
        ("overlap = true", [2, 6]),
        ("overlap == TRUE", [2, 6]),
        ("overlap = false", not_overlap),
        ("overlap != true", not_overlap),
        ("NOT overlap", not_overlap),
        ("overlap IN (true)", [2, 6]),
        ("changed", [4]),
        ("changed AND level = 1 OR overlap AND level = 2", [4, 6]),
    ])  # fmt: skip


def test_status_values(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("status = failed", [3]),
        ("status = 'running'", [5]),
        ("status IN (ready, running)", [4, 5, 6, 8, 10]),
        ("status NOT IN ('done')", [3, 4, 5, 6, 8, 10]),
        ("status != done AND attempts > 0", [3, 5, 6]),
    ])  # fmt: skip


def test_in_lists_and_ranges(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("chunk IN (57866, 57870)", [1, 2, 4, 5]),
        ("chunk IN 57866..57868", [1, 2, 3, 5, 6]),
        ("chunk IN (57870, 57871..57872)", [4, 9, 10]),
        ("chunk NOT IN 57866..57869", [4, 8, 9, 10]),
        ("chunk NOT IN (57866)", [3, 4, 6, 7, 8, 9, 10]),
        ("id IN (1..3, 12)", [1, 2, 3, 12]),
        ("id IN (5..5)", [5]),
        ("chunk IN -5..5", []),
        ("worker IN ('w2', \"w3\")", [3, 5, 9, 12]),
        ("chunk in 0..9223372036854775807", list(range(1, 11))),
    ])  # fmt: skip


def test_between(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("chunk BETWEEN 57867 AND 57869", [3, 6, 7]),
        ("chunk NOT BETWEEN 57867 AND 57869", [1, 2, 4, 5, 8, 9, 10]),
        ("rows between 1 and 500", [1, 2, 7, 9]),
        ("chunk BETWEEN 57867 AND 57869 AND level = 2", [6, 7]),  # the AND of BETWEEN is not a conjunction
    ])  # fmt: skip


def test_glob_is_case_sensitive_and_escapes_like_wildcards(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("path GLOB 'step2_*'", [5, 6, 7, 8, 9, 10]),
        ("path GLOB 'step2_7/chunk_*'", [5, 6, 8]),  # not 7: Chunk
        ("path GLOB '*CHUNK*'", []),
        ("path GLOB '*chunk_5786?.csv'", [5]),
        ("path GLOB '*star\\*name*'", [10]),  # backslash: a literal star
        ("path GLOB '*star?name*'", [10]),
        ("path GLOB 'step2_7/chunk_57900%_x.csv'", [8]),  # % and _ are plain characters in a glob
        ("path GLOB '*%*'", [8]),
        ("path GLOB '*57866*'", [1, 2, 5]),
        ("path NOT GLOB 'step1_*'", list(range(5, 13))),
        ("path glob 'step[12]*'", []),  # no character classes: [ is literal
        ("directory GLOB 'step1_*'", [1, 2, 3, 4]),
    ])  # fmt: skip


def test_like_is_case_sensitive_on_both_backends(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("path LIKE 'step1\\_1/%overlap%'", [2]),
        ("path LIKE '%\\%%'", [8]),
        ("path LIKE '%chunk_5786_.csv'", [5]),
        ("path LIKE 'STEP%'", []),  # SQLite's own LIKE would say all
        ("worker NOT LIKE 'w1'", [3, 5, 9, 12]),
        ("path like '%*%'", [10]),
    ])  # fmt: skip


def test_null_tests(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("error IS NULL", [1, 2, 4, 5, 7, 9, 10, 11]),
        ("error IS NOT NULL", [3, 6, 8, 12]),
        ("chunk is null", [11, 12]),
        ("NOT chunk IS NULL AND level = 2", [5, 6, 7, 8, 9, 10]),
        ("started_at IS NULL", [4, 6, 8, 10]),
        ("age(finished_at) IS NULL", [4, 5, 6, 8, 10]),
    ])  # fmt: skip


def test_times_durations_and_age(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("started_at >= '2026-11-23'", [1, 2, 3, 5, 7]),
        ("started_at < '2026-11-21T00:00:00'", [11, 12]),
        ("started_at = '2026-11-23T07:00:00'", [1, 2]),
        ("started_at IN ('2026-11-23T07:00:00', '2026-11-23 09:00')", [1, 2, 3]),
        ("started_at > '2026-11-23T10:00:00+01:00'", [5, 7]),  # an offset is converted to naive UTC
        ("started_at > now() - 2h", [5]),
        ("started_at >= now() - 2h", [5, 7]),
        ("started_at > now() - 1.5h", [5]),
        ("started_at BETWEEN now() - 6h AND now() - 3h", [1, 2, 3]),
        ("finished_at > '2026-11-22' + 12h", [1, 2, 3, 7, 9]),
        ("age(started_at) > 1h", [1, 2, 3, 7, 9, 11, 12]),
        ("age(started_at) > 30min", [1, 2, 3, 5, 7, 9, 11, 12]),
        ("age(started_at) > 30m", [1, 2, 3, 5, 7, 9, 11, 12]),
        ("age(started_at) <= 2h", [5, 7]),
        ("age(started_at) BETWEEN 1h AND 4h", [3, 7]),
        ("age(finished_at) < 90min", [7]),
        ("age(started_at) > 2d", [11, 12]),
        ("age(started_at) > 1w", []),
        ("age(started_at) > 7200s", [1, 2, 3, 9, 11, 12]),
        ("lease_until > now()", [5]),
        ("heartbeat_at > now() - 2min", [5]),
        ("retry_after > now() + 45min", [6]),
        ("retry_after > now() + 15min", [3, 6]),
        ("locked_at < NOW() AND locked_by = 'run-a' AND owner_host = host1", [5]),
        ("created_at < now() AND updated_at = now() - 1h", ALL_NOTICES),
    ])  # fmt: skip


def test_batch_fields_seen_from_notices(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("step = 2", [5, 6, 7, 8, 9, 10]),
        ("task = 7", [5, 6, 7, 8]),
        ("directory = 'step3_1'", [11, 12]),
        ("batch = 2", [5, 6, 7, 8]),
        ("batch.id = 2", [5, 6, 7, 8]),
        ("batch.priority > 0", [1, 2, 3, 4, 9, 10]),
        ("batch.comment IS NULL", [5, 6, 7, 8, 11, 12]),
        ("NOT batch.comment = 'first'", [9, 10]),  # SQL semantics: a NULL comment matches neither
        ("batch.status = failed", [1, 2, 3, 4]),
        ("batch.status = running", [5, 6, 7, 8]),
        ("batch.status = ready", [9, 10]),
        ("batch.status = done", [11, 12]),
        ("batch.failed > 0", [1, 2, 3, 4]),
        ("batch.notices = 2", [9, 10, 11, 12]),
        ("batch.table = Source AND chunk IN 57866..57870", [5, 6, 7]),
        ("batch.directory GLOB 'step2_*' AND status = done", [7, 9]),
    ])  # fmt: skip


def test_batch_queries_with_derived_counts_and_status(catalog: CatalogDB) -> None:
    assert_selects(catalog, [
        ("status = failed", [1]),
        ("status = running", [2]),
        ("status = ready", [3]),
        ("status = done", [4, 5]),  # 5 has no notices: nothing left to load
        ("status IN (failed, ready)", [1, 3]),
        ("notices = 0", [5]),
        ("notices >= 4", [1, 2]),
        ("done > 0 AND ready > 0", [1, 2, 3]),
        ("failed = 0", [2, 3, 4, 5]),
        ("running = 1", [2]),
        ("step IS NULL", [5]),
        ("step = 2 AND task IN 7..8", [2, 3]),
        ("directory GLOB 'step2_*'", [2, 3]),
        ("table = Source", [2, 3]),
        ("level BETWEEN 2 AND 3", [2, 3, 4]),
        ("priority > 0", [1, 3]),
        ("comment = \"it's\"", [3]),
        ("comment = 'it\\'s'", [3]),
        ("case = dp1 AND id != 3", [1, 2, 4, 5]),
    ], select_ids=batch_ids)  # fmt: skip


@pytest.mark.parametrize("query", ["", "   ", "*", "all", " ALL "])
def test_an_empty_query_selects_everything(catalog: CatalogDB, query: str) -> None:
    assert notice_ids(catalog, query) == ALL_NOTICES
    assert batch_ids(catalog, query) == ALL_BATCHES


def test_the_same_compiled_shape_with_other_values_is_not_served_from_a_stale_cache(catalog: CatalogDB) -> None:
    # GlobMatch is a custom construct: its cache key must carry its parameters.
    assert notice_ids(catalog, "path GLOB 'step1_*'") == [1, 2, 3, 4]
    assert notice_ids(catalog, "path GLOB 'step3_*'") == [11, 12]
    assert notice_ids(catalog, "path LIKE 'step3%'") == [11, 12]


# ------------------------------------------------------------------------------------------- errors


def error_of(query: str, compile_query: Any = compile_notice_query) -> QueryError:
    with pytest.raises(QueryError) as caught:
        compile_query(query, now=NOW)
    return caught.value


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("stauts = failed", "unknown field 'stauts' at 0; did you mean: status, task?", 0),
        (
            "batch.stauts = done",
            "unknown field 'batch.stauts' at 0; did you mean: batch.status, batch.task, batch.step?",
            0,
        ),
        ("chunk = 'abc'", "field 'chunk' is numeric, got text 'abc' at 8", 8),
        ("level = 1 AND table = 5", "field 'table' is text, got number 5 at 22", 22),
        ("overlap = 1", "field 'overlap' is bool, got number 1 at 10", 10),
        ("started_at > 5", "field 'started_at' is time, got number 5 at 13", 13),
        (
            "started_at > 2h",
            "field 'started_at' is time, got duration 2h at 13; use now() - 2h or age(started_at)",
            13,
        ),
        ("age(started_at) > '2026-11-23'", "field 'age(started_at)' is duration, got text '2026-11-23' at 18", 18),
        ("age(chunk) > 1h", "age() needs a time field, 'chunk' is numeric at 4", 4),
        ("chunk", "field 'chunk' is numeric: only a bool field may stand alone (write a comparison) at 0", 0),
        ("overlap < true", "operator < does not apply to bool field 'overlap' at 8", 8),
        ("chunk GLOB '5*'", "GLOB needs a text field, 'chunk' is numeric at 6", 6),
        ("mtime IN 1..2", "ranges need an integer field, 'mtime' is numeric at 9", 9),
        ("chunk IN (1.5..3)", "bad range at 10: bounds must be integers", 10),
        ("chunk IN 9..5", "bad range 9..5 at 9: the lower bound exceeds the upper", 9),
        ("chunk = 99999999999999999999", "bad integer 99999999999999999999 at 8: outside the 64-bit range", 8),
        ("chunk > -9223372036854775809", "bad integer -9223372036854775809 at 8: outside the 64-bit range", 8),
        ("chunk = 1e999", "bad number 1e999 at 8: too large", 8),
        ("started_at > now() - 5y", "bad duration '5y' at 21: units are s, m or min, h, d, w", 21),
        ("age(started_at) > 30sec", "bad duration '30sec' at 18: units are s, m or min, h, d, w", 18),
        ("age(started_at) > 99999999999999999999w", "bad duration '99999999999999999999w' at 18: too large", 18),
        (
            "started_at > 'yesterday'",
            "bad time 'yesterday' at 13: expected ISO 8601 such as '2026-11-23' or '2026-11-23T10:00:00'",
            13,
        ),
        (
            "started_at > '0001-01-01T00:00+01:00'",
            "bad time '0001-01-01T00:00+01:00' at 13: expected ISO 8601 such as '2026-11-23' or '2026-11-23T10:00:00'",
            13,
        ),
        ("started_at > now() - 999999w", "bad time at 13: out of range after adding -6999993 days, 0:00:00", 13),
        ("chunk = 5 + 1h", "only times can be shifted by a duration, got number 5 at 8", 8),
        (
            "status = 'don'",
            "bad status 'don' at 9: expected one of ready, running, done, failed; did you mean: done?",
            9,
        ),
        (
            "status IN (ready, finished)",
            "bad status finished at 18: expected one of ready, running, done, failed; did you mean: failed?",
            18,
        ),
        ("error = 'a\x00b'", "bad string at 8: NUL characters are not allowed", 8),
        ("not " * 70 + "overlap", "query nested too deeply at 280 (limit 64)", 280),
    ],
)
def test_error_messages(query: str, message: str, position: int) -> None:
    error = error_of(query)
    assert (str(error), error.position) == (message, position)
    assert isinstance(error, BadInput) and error.exit_code == 2


def test_unknown_field_without_near_names_lists_the_fields() -> None:
    message = str(error_of("zzz = 1"))
    assert message.startswith("unknown field 'zzz' at 0; known fields: id, case, batch,")
    assert message.endswith("directory, batch.<field>")


@pytest.mark.parametrize(
    ("query", "position", "found"),
    [
        ("level = 1 AND (chunk = 2", 24, "unexpected end of query; expected"),
        ("chunk = = 1", 8, "unexpected comparison '='; expected"),
        ("chunk = 'abc", 8, 'unexpected character "\'" (unterminated string?)'),
        ("chunk = 1; DROP TABLE notices", 9, "unexpected character ';'"),
        ("chunk = 1 -- comment", 11, "unexpected '-'; expected duration"),
        ("' OR 1=1 --", 0, 'unexpected character "\'" (unterminated string?)'),
        ("chunk = 1 OR 1=1", 13, "unexpected number '1'; expected (, NOT, age(), name"),
        ("chunk IN ()", 10, "unexpected ')'"),
        ("path GLOB 5", 10, "unexpected number '5'; expected string"),
        ("chunk = 1 AND", 13, "unexpected end of query; expected (, NOT, age(), name"),
        ("= 1", 0, "unexpected comparison '='; expected (, NOT, age(), name"),
        ("chunk = 1 chunk = 2", 10, "unexpected name 'chunk'; expected +, -, AND, OR, end of query"),
    ],
)
def test_syntax_errors_carry_the_position(query: str, position: int, found: str) -> None:
    error = error_of(query)
    assert error.position == position
    assert str(error).startswith(f"syntax error at {position}: {found}")


def test_batch_queries_know_only_batch_fields() -> None:
    assert str(error_of("chunk = 1", compile_batch_query)).startswith("unknown field 'chunk' at 0")
    assert str(error_of("batch.status = done", compile_batch_query)).startswith("unknown field 'batch.status'")
    assert str(error_of("status = 'finished'", compile_batch_query)).startswith("bad status 'finished' at 9")


# ---------------------------------------------------------------------------------------- injection

INJECTION_AS_VALUES = [
    ('error = "it\'s broken; DROP TABLE notices; --"', [3]),
    ('error = "\' OR 1=1 --"', [6]),
    ('comment = \'x" OR "1"="1\'', []),
    ("path = 'step1_1/chunk_57866.txt\\' OR \\'1\\'=\\'1'", []),
    ("table = 'Object\\'; DELETE FROM notices; --'", []),
    ("worker = 'w1\\\\'", []),
    ("path GLOB '*\\'; DROP TABLE batches; --*'", []),
    ("error = 'Ünïcødé ✓ \"quoted\" \\\\ back'", [8]),
    ("comment = '\U0001d518\U0001d52b\U0001d526 \u202e override \u0301'", []),
]
INJECTION_REJECTED = [
    "chunk = 1; DROP TABLE notices",
    "chunk = 1 -- ' OR 1=1",
    "status = failed'); DELETE FROM notices; --",
    "error = '' OR 1=1 --'",
    "chunk = 1 /* comment */",
    "chunk = 0x10",
    "status = done UNION SELECT 1",
    "error = '\x00'",
    "chunk = 1\x00",
    "chunk = 123456789012345678901234567890",
]


def test_injection_attempts_are_plain_values_or_rejected(catalog: CatalogDB) -> None:
    before = snapshot(catalog)
    assert_selects(catalog, INJECTION_AS_VALUES)
    for query in INJECTION_REJECTED:
        with pytest.raises(QueryError):
            notice_ids(catalog, query)
    assert snapshot(catalog) == before


def quoted(text: str, quote: str = "'") -> str:
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@HYPOTHESIS
@given(value=st.one_of(st.sampled_from(TRICKY_ERRORS), st.text()), quote=st.sampled_from(["'", '"']))
def test_any_text_compared_as_a_literal_selects_exactly_the_equal_errors(
    catalog: CatalogDB, value: str, quote: str
) -> None:
    query = "error = " + quoted(value, quote)
    if "\x00" in value:
        with pytest.raises(QueryError):
            notice_ids(catalog, query)
        return
    assert notice_ids(catalog, query) == [row["id"] for row in NOTICE_ROWS if row["error"] == value]


VOCABULARY = [
    *NOTICE_FIELDS, "age(started_at)", "age(chunk)", "=", "!=", "<>", "<", ">=", "AND", "OR", "NOT", "IN",
    "BETWEEN", "GLOB", "LIKE", "IS", "NULL", "(", ")", ",", "..", "1", "-3", "1.5e3", "99999999999999999999",
    "'x'", '"step*"', "'2026-11-23'", "now()", "-", "+", "2h", "30min", "5y", "true", "false", "done", "'don'",
    ";", "--", "'", "\\", "\x00", "*", "all",
]  # fmt: skip


@HYPOTHESIS
@given(
    query=st.one_of(
        st.text(max_size=60),
        st.lists(st.sampled_from(VOCABULARY), max_size=12).map(" ".join),
    )
)
def test_arbitrary_text_either_runs_or_raises_query_error(catalog: CatalogDB, query: str) -> None:
    try:
        ids = notice_ids(catalog, query)
    except QueryError as error:
        assert 0 <= error.position <= len(query)
        return
    assert set(ids) <= set(ALL_NOTICES)


def test_fields_tables_and_help() -> None:
    assert {"status", "chunk", "batch.status", "step", "task", "directory"} <= set(NOTICE_FIELDS)
    assert "attempt_id" not in NOTICE_FIELDS
    assert set(BATCH_FIELDS) == {
        "id", "case", "table", "directory", "step", "task", "level", "priority", "comment",
        "status", "notices", "done", "failed", "ready", "running",
    }  # fmt: skip
    assert {f"batch.{name}" for name in BATCH_FIELDS} <= set(NOTICE_FIELDS)
    assert {kind for _, kind in NOTICE_FIELDS.values()} == {"int", "float", "text", "bool", "time"}
    assert NOTICE_FIELDS["started_at"].kind == "time" and NOTICE_FIELDS["overlap"].kind == "bool"
    help_text = describe_fields()
    assert "started_at" in help_text and "batch.<field>" in help_text and "notices" in help_text


def test_now_defaults_to_the_current_utc_time() -> None:
    # Without `now`, compilation uses the clock; a query with now() still compiles and binds a naive time.
    expression = compile_notice_query("started_at > now() - 1h")
    bound = next(iter(expression.compile().params.values()))
    utc_now = datetime.now(UTC).replace(tzinfo=None)
    assert bound.tzinfo is None and timedelta(minutes=59) < utc_now - bound < timedelta(minutes=61)


def test_an_aware_now_is_taken_as_naive_utc(catalog: CatalogDB) -> None:
    aware_now = NOW.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=-5)))
    with catalog.read() as connection:
        query = compile_notice_query("started_at > now() - 2h", now=aware_now)
        assert list(connection.execute(select(notices.c.id).where(query)).scalars()) == [5]
