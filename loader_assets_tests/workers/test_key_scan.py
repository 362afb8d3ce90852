"""A text file's key column read in C (`_scan_key`) is what Arrow reads (`_read_key`): or the C path declines the
file and Arrow reads it. Files of separators, escapes, NULLs, signs and long numbers, read in pieces of a few bytes so
that records and escapes straddle them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader_assets.qserv.metadata import Dialect
from loader_assets.qserv.sample import write_sample_case
from loader_assets.workers import fingerprint

COLUMNS = ["a", "b", "c"]
NUMBERS = ["0", "7", "-7", "-0", "007", "1000000000012345", str(2**63 - 1), str(-(2**63)), str(2**63), "9" * 20]
TEXT = ["x", "\\N", "a\\\tb", "a\\,b", "line\\\nbreak", "y" * 70]  # escapes as Qserv's files hold them
ODD = ["", "-", "+7", " 7", "7 ", "N", "x", "\\N", "\\", "\\\\", "\\\n", "\\\t", "\\,", "\t", ",", "\n", "\r"]


def arrow(path: Path, key: str, dialect: Dialect) -> tuple[list[int | None], int] | None:
    """What Arrow reads as int64 (None: it cannot)."""
    try:
        table = fingerprint._read_key(path, COLUMNS, key, dialect, pa.int64())
    except pa.ArrowInvalid:
        return None
    return table.column(key).combine_chunks().to_pylist(), table.num_rows


def scanned(path: Path, key: str, dialect: Dialect) -> tuple[list[int | None], int] | None:
    found = fingerprint._scan_key(path, COLUMNS.index(key), len(COLUMNS), dialect)
    return None if found is None else (found[0].to_pylist(), found[1])


# Mostly what Qserv's files hold, now and then anything: the odd field or record the C path must leave to Arrow.
odd = st.lists(st.sampled_from(NUMBERS + ODD), max_size=3).map("".join)


def mostly(usual: st.SearchStrategy, rare: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(st.integers(0, 9), usual, rare).map(lambda drawn: drawn[2] if drawn[0] == 0 else drawn[1])


key_field = mostly(st.sampled_from([*NUMBERS[:8], "\\N"]), odd)
other_fields = mostly(
    st.lists(mostly(st.sampled_from(NUMBERS + TEXT), odd), min_size=2, max_size=2),
    st.lists(st.sampled_from(TEXT), min_size=1, max_size=3),
)


@pytest.mark.parametrize("piece", [1, 5, 64, 1 << 20])
@pytest.mark.parametrize(
    "dialect",
    [Dialect(), Dialect.of("txt", {"fields_terminated_by": ","}), Dialect.of("tsv", {"fields_escaped_by": ""})],
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(st.tuples(key_field, other_fields), max_size=6),
    key=st.sampled_from(COLUMNS),
    end=st.sampled_from(["", "\n"]),
)
def test_the_c_path_reads_a_file_as_arrow_does_or_leaves_it_to_arrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int, dialect: Dialect,
    records: list[tuple[str, list[str]]], key: str, end: str,
) -> None:  # fmt: skip
    monkeypatch.setattr(fingerprint, "SCAN_PIECE_BYTES", piece)
    path = tmp_path / "chunk.txt"
    separator = dialect.fields_terminated_by
    lines = [
        separator.join([*others[: COLUMNS.index(key)], value, *others[COLUMNS.index(key) :]])
        for value, others in records
    ]
    path.write_bytes(("\n".join(lines) + end).encode())
    if path.stat().st_size == 0:
        return
    found = scanned(path, key, dialect)
    if found is not None:
        assert found == arrow(path, key, dialect), path.read_bytes()


def test_the_c_path_reads_what_qserv_files_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NULL keys, extreme keys, escapes (a literal backslash too) and NULLs in the other columns, a record over
    several pieces, no newline at the end: read in C, as Arrow reads them."""
    monkeypatch.setattr(fingerprint, "SCAN_PIECE_BYTES", 16)
    path = tmp_path / "chunk_7.txt"
    path.write_bytes(
        b"1\t\\N\tx\n"
        b"\\N\ta\\\tb\t\\N\n"
        + f"{2**63 - 1}\tline\\\nbreak\t2\n".encode()
        + f"{-(2**63)}\t{'y' * 40}\t3\n".encode()
        + b"-5\t\\\\\\N\t4"
    )
    found = scanned(path, "a", Dialect())
    assert found == ([1, None, 2**63 - 1, -(2**63), -5], 5)
    assert found == arrow(path, "a", Dialect())
    keys, records = fingerprint.key_column(path, "tsv", COLUMNS, "a", Dialect())
    assert (keys.to_pylist(), records) == found


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"1\ta\tb\r\n2\ta\tb\n", "a carriage return: Arrow ends a record there too"),
        (b"1\ta\n2\ta\tb\n", "a record of two fields"),
        (f"{2**63}\ta\tb\n".encode(), "beyond int64: Arrow reads the column as uint64"),
        (b" 1\ta\tb\n", "a space: MariaDB's reading of a number, through Arrow's text"),
    ],
)
def test_the_c_path_leaves_an_odd_file_to_arrow(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "chunk_7.txt"
    path.write_bytes(content)
    assert scanned(path, "a", Dialect()) is None, why


def test_every_file_of_a_sample_case_is_read_in_c_as_arrow_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fingerprint, "SCAN_PIECE_BYTES", 4096)  # records straddle the pieces
    root = write_sample_case(tmp_path / "case", chunks=3, rows_per_chunk=300)
    read = 0
    for table in ("Object", "Source", "ForcedSource"):
        schema = json.loads((root / f"{table}.json").read_text())
        columns = [column["name"] for column in schema["schema"]]
        key = schema.get("director_key") or "objectId"
        for path in sorted(root.glob(f"step*/{table}/chunk_*.txt")):
            found = fingerprint._scan_key(
                path, columns.index(key), len(columns), Dialect.of("txt", {"fields_terminated_by": ","})
            )
            table_read = fingerprint._read_key(
                path, columns, key, Dialect.of("txt", {"fields_terminated_by": ","}), pa.int64()
            )
            assert found is not None, path
            assert (found[0].to_pylist(), found[1]) == (table_read.column(key).to_pylist(), table_read.num_rows)
            read += 1
    assert read >= 9


@pytest.mark.parametrize(
    ("options", "content"),
    [({"fields_terminated_by": "0"}, b"1203\n"), ({"fields_terminated_by": "-"}, b"1--5\n"),
     ({"fields_terminated_by": ",", "fields_escaped_by": "-"}, b"-5,a\n"),
     ({"fields_terminated_by": ",", "fields_escaped_by": "7"}, b"71,a\n")],
)  # fmt: skip
def test_a_dialect_whose_separators_are_a_keys_bytes_is_left_to_arrow(
    tmp_path: Path, options: dict[str, str], content: bytes
) -> None:
    path = tmp_path / "chunk_7.txt"
    path.write_bytes(content)
    assert fingerprint._scan_key(path, 0, 2, Dialect.of("txt", options)) is None
