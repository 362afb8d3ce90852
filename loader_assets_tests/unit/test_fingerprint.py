"""The fingerprint's definition, without a server: the file's side against a plain-Python reading of it, and the
catalog's JSON of both kinds of hash."""

from __future__ import annotations

import pyarrow as pa
import pytest

from loader_assets.workers import fingerprint
from loader_assets.workers.fingerprint import Fingerprint, FingerprintError


def reference(keys: list[int | None]) -> Fingerprint:
    """Each key's two 32-bit halves (two's complement) times 1540483477 and 1911520717, XOR-ed; keys summed."""
    words = [k % (1 << 64) for k in keys if k is not None]
    hashed = 0
    for word in words:
        hashed ^= (word & 0xFFFFFFFF) * 1540483477 ^ (word >> 32) * 1911520717
    return Fingerprint(len(keys), len(words), sum(k for k in keys if k is not None), hashed)


@pytest.mark.parametrize(("kind", "keys"), [
    (pa.int64(), [0, 1, -1, 2**31, 2**32 + 5, -(2**63), 2**63 - 1, 7, 7, None]),
    (pa.uint64(), [0, 2**63, 2**64 - 1, 12345678901234567890, None]),
    (pa.int64(), []),
])  # fmt: skip
def test_the_files_side_is_the_definition(kind: pa.DataType, keys: list[int | None]) -> None:
    assert fingerprint.of_keys(pa.array(keys, kind), len(keys)) == reference(keys)


def test_a_key_present_twice_where_another_is_missing_changes_it() -> None:
    assert reference([5, 5, 9]) != reference([5, 9, 9]) and reference([1, 2]) != reference([0, 3])


@pytest.mark.parametrize("stored", [
    {"rows": "3", "keys": "2", "key_sum": "18446744073709551615", "hash_xor": "12"},
    {"rows": "3", "keys": "2", "key_sum": "-4", "hash_sum": "9"},  # taken before 2026-12-05
])  # fmt: skip
def test_a_stored_fingerprint_reads_back_as_it_was_kept(stored: dict[str, str]) -> None:
    assert Fingerprint.from_json(stored).to_json() == stored


def test_a_fingerprint_of_an_unknown_kind_cannot_prove_the_keys() -> None:
    with pytest.raises(FingerprintError, match=r"unknown kind.*crc_sum"):
        Fingerprint.from_json({"rows": "5", "keys": "5", "key_sum": "15", "crc_sum": "7"})
