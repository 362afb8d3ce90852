"""The fingerprint's definition, without a server: the file's side against a plain-Python reading of it, the
changes it must see, and the catalog's JSON of both kinds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from loader_assets.workers import fingerprint
from loader_assets.workers.fingerprint import Fingerprint, FingerprintError

HIGH = 1 << 32


def reference(keys: list[int | None]) -> Fingerprint:
    """Each key's 32-bit halves (two's complement), low times 1540483477 XOR low times 1911520717 XOR high times
    1264700843, summed."""
    words = [(k % (1 << 64)) for k in keys if k is not None]
    mixed = sum((w % HIGH) * 1540483477 ^ (w % HIGH) * 1911520717 ^ (w >> 32) * 1264700843 for w in words)
    return Fingerprint(len(keys), len(words), (mixed,))


@pytest.mark.parametrize(("kind", "keys"), [
    (pa.int64(), [0, 1, -1, 2**31, 2**32 + 5, -(2**63), 2**63 - 1, 7, 7, None]),
    (pa.uint64(), [0, 2**63, 2**64 - 1, 12345678901234567890, None]),
    (pa.int64(), []),
])  # fmt: skip
def test_the_files_side_is_the_definition(kind: pa.DataType, keys: list[int | None]) -> None:
    assert fingerprint.of_keys(pa.array(keys, kind), len(keys)) == reference(keys)


@pytest.mark.parametrize(("loaded", "on_worker"), [
    ([5, 5, 9], [5, 9, 9]),  # a key once too often, another once too few
    ([1, 2], [0, 3]),  # two keys moved by opposite amounts: same count, same sum of keys
    ([5 * HIGH + 100, 9 * HIGH + 7], [5 * HIGH + 7, 9 * HIGH + 100]),  # low halves exchanged
    ([5 * HIGH + 100, 9 * HIGH + 7], [9 * HIGH + 100, 5 * HIGH + 7]),  # high halves exchanged
    ([40, 40, 70, 70], [41, 41, 69, 69]),  # a child's repeated keys moved by opposite amounts (XOR would cancel)
    ([3], [3 + HIGH]),  # one key changed in its high half only
    ([HIGH + 3], [HIGH + 4]),  # in its low half only
    ([10**15 + 1, 10**15 + 2], [10**15, 10**15 + 3]),  # moved by opposite amounts within one high half
])  # fmt: skip
def test_what_a_worker_may_have_changed_changes_it(loaded: list[int], on_worker: list[int]) -> None:
    assert reference(loaded) != reference(on_worker)


@pytest.mark.parametrize("stored", [
    {"rows": "3", "keys": "2", "mixed_sum": "18446744073709551615"},
    {"rows": "3", "keys": "2", "key_sum": "-4", "hash_sum": "9"},  # taken before 2026-12-05
])  # fmt: skip
def test_a_stored_fingerprint_reads_back_as_it_was_kept(stored: dict[str, str]) -> None:
    assert Fingerprint.from_json(stored).to_json() == stored


def test_a_fingerprint_of_an_unknown_kind_cannot_prove_the_keys() -> None:
    with pytest.raises(FingerprintError, match=r"unknown kind.*crc_sum"):
        Fingerprint.from_json({"rows": "5", "keys": "5", "key_sum": "15", "crc_sum": "7"})


@pytest.mark.parametrize(("text", "dtype", "read", "in_c"), [
    (b"1\n-5\n99999999999", np.int64, [1, -5, 99999999999], True),
    (b"7\n3", np.uint64, [7, 3], True),
    (b"18446744073709551615\n3", np.uint64, [2**64 - 1, 3], False),  # beyond int64: numpy's parser
    (b"", np.int64, [], False),
])  # fmt: skip
def test_a_worker_s_key_lines_are_read_as_integers(
    text: bytes, dtype: type, read: list[int], in_c: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if in_c:  # the C path alone
        monkeypatch.setattr(np, "fromstring", lambda *a, **k: pytest.fail("numpy's parser used"))
    keys = fingerprint.integer_lines(text, np.dtype(dtype))
    assert keys.dtype == dtype and keys.tolist() == read


def test_a_negative_key_is_not_read_as_unsigned() -> None:
    with pytest.raises(ValueError):
        fingerprint.integer_lines(b"-5\n3", np.dtype(np.uint64))
