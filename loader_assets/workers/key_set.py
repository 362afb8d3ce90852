"""A set of integer keys, hashed once in C, against which other key columns are told apart.

A child file's census asks which of its keys its director chunk lacks. Arrow's `is_in` built a hash set of the
director chunk's keys on every call (the chunk's Source, then its ForcedSource) and probed at ~30 ns a key: a
tenth of a level 3 load's CPU. Here the set is built once per director chunk and a key costs a few ns.
"""

from __future__ import annotations

import numpy as np

from loader_assets.workers import _key_scan


class KeySet:
    """The distinct values of an int64 or uint64 key column; probed with columns of the same type."""

    def __init__(self, keys: np.ndarray) -> None:
        if keys.dtype not in (np.dtype(np.int64), np.dtype(np.uint64)):  # C reads 8-byte words
            raise TypeError(f"a key set holds int64 or uint64 keys, not {keys.dtype}")
        self.dtype = keys.dtype
        slots = 1 << max(2, (2 * len(keys) - 1).bit_length())  # at most half full
        self._table = np.empty(slots + 1, np.uint64)
        _key_scan.fill_key_set(np.ascontiguousarray(keys), self._table)

    @property
    def nbytes(self) -> int:
        return self._table.nbytes

    def absent(self, keys: np.ndarray) -> np.ndarray:
        """Those of `keys` not in the set, in their order (repeated as often as they are)."""
        if keys.dtype != self.dtype:
            raise TypeError(f"a set of {self.dtype} keys probed with {keys.dtype} keys")
        found = np.empty(len(keys), keys.dtype)
        return found[: _key_scan.absent_keys(self._table, np.ascontiguousarray(keys), found)]
