"""Counting records the way LOAD DATA splits them, checked against a straightforward reference."""

from __future__ import annotations

import random

import pytest

from loader_assets.qserv.metadata import Dialect
from loader_assets.workers import formats
from loader_assets.workers.formats import count_records, line_of_record


def reference(data: bytes) -> tuple[int, list[int]]:
    """Records, and the physical line each starts on, by reading byte by byte (escape: backslash)."""
    records, position, line, inside, starts = 0, 0, 1, False, []
    while position < len(data):
        if not inside:
            starts.append(line)
        byte = data[position : position + 1]
        if byte == b"\\":
            line += data[position + 1 : position + 2] == b"\n"
            position, inside = position + 2, True
        elif byte == b"\n":
            records, position, line, inside = records + 1, position + 1, line + 1, False
        else:
            position, inside = position + 1, True
    return records + inside, starts


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_count_and_locate_records_match_reference(block, tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "_READ_BLOCK", block)  # small blocks: escape runs and lines span blocks
    rng = random.Random(block)
    path = tmp_path / "fuzz.txt"
    for _ in range(500):
        data = bytes(rng.choice(b"ab\\\n") for _ in range(rng.randint(0, 40)))
        path.write_bytes(data)
        records, starts = reference(data)
        assert count_records(path, Dialect()) == records, data
        assert formats._count_terminators(path, b"\n", b"\\") == records, data  # the any-terminator path
        assert [line_of_record(path, r, Dialect()) for r in range(1, records + 1)] == starts, data


def test_crlf_terminated_records(tmp_path):
    path = tmp_path / "crlf.csv"
    path.write_bytes(b"1,a\r\n2,b\\\r\nc\r\n3,d")
    assert count_records(path, Dialect.of("csv", {"lines_terminated_by": "\r\n"})) == 3


def test_one_parse_counts_records_as_load_data_does_whenever_it_reads_the_keys(tmp_path):
    """The fingerprint's parse stands in for the record count: its rows are never fewer than the records (it
    also splits at a `\r`), so rows loaded equal to them are the records; any other count sends for a count."""
    from loader_assets.workers.load_data import _expected_records, _read_file

    rng = random.Random(5)
    path = tmp_path / "rows.tsv"
    pieces = [b"a", b"b", b"\\\n", b"\\\\", b"\\N", b"\t", b"\n", b"\r"]
    agreed = 0
    for _ in range(400):
        lines = [b"%d\t%s" % (rng.randint(-5, 5), b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 4))))
                 for _ in range(rng.randint(0, 6))]  # fmt: skip
        path.write_bytes(b"\n".join(lines) + rng.choice([b"", b"\n"]))
        records = count_records(path, Dialect())
        read = _read_file(path, path, "tsv", ["id", "name"], "id", Dialect())
        assert read.records >= records, path.read_bytes()
        for loaded in {0, records - 1, records, read.records}:  # what LOAD DATA may load: never beyond the records
            if 0 <= loaded <= records:
                assert _expected_records(read, loaded, path, Dialect()) == records, path.read_bytes()
        agreed += not read.counted
    assert agreed > 100, "most files parse: the single parse is the common path"


def test_a_carriage_return_splits_the_parse_not_the_records(tmp_path):
    """A one-column file parses at a `\\r` too: more rows than records, so the loaded rows send for a count."""
    from loader_assets.workers.load_data import _expected_records, _read_file

    path = tmp_path / "keys.tsv"
    path.write_bytes(b"1\r2\n3\n")
    read = _read_file(path, path, "tsv", ["id"], "id", Dialect())
    assert (read.records, read.counted, count_records(path, Dialect())) == (3, False, 2)
    assert _expected_records(read, 2, path, Dialect()) == 2  # what LOAD DATA loads: two records, as counted
