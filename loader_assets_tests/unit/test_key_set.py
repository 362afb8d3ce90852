"""Key sets without a server: what a child file's census takes for its keys absent from the director chunk."""

from __future__ import annotations

import numpy as np
import pytest

from loader_assets.workers.key_set import KeySet


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_absent_keys_are_those_outside_the_set_in_order_and_as_often_as_probed(dtype: type) -> None:
    top = int(np.array([-1], np.int64).view(dtype)[0])  # all ones: the C table's mark of a free slot, a key too
    members = np.array([0, 1, 5, 2**40 + 3, top, 7, 7], dtype)
    probes = np.array([5, 6, top, 6, 0, 2**40 + 4, 2**40 + 3, 8], dtype)
    assert KeySet(members).absent(probes).tolist() == [6, 6, 2**40 + 4, 8]
    assert KeySet(members[:4]).absent(np.array([top, 7, 1], dtype)).tolist() == [top, 7]


def test_negative_keys_and_an_empty_set() -> None:
    assert KeySet(np.array([-1, -(2**63)], np.int64)).absent(np.array([-1, -2, -(2**63)], np.int64)).tolist() == [-2]
    assert KeySet(np.empty(0, np.int64)).absent(np.array([3, 3], np.int64)).tolist() == [3, 3]
    assert KeySet(np.array([4], np.int64)).absent(np.empty(0, np.int64)).tolist() == []


def test_a_set_agrees_with_numpy_on_many_colliding_keys() -> None:
    rng = np.random.default_rng(7)
    members = rng.integers(0, 1 << 20, 50_000, dtype=np.int64) << 12  # same low bits: a weak hash would clash
    probes = rng.integers(0, 1 << 20, 200_000, dtype=np.int64) << 12
    assert np.array_equal(KeySet(members).absent(probes), probes[~np.isin(probes, members)])


def test_keys_of_another_type_are_refused_and_any_layout_is_read() -> None:
    with pytest.raises(TypeError, match="uint64"):
        KeySet(np.array([1], np.int64)).absent(np.array([1], np.uint64))
    with pytest.raises(TypeError, match="int32"):
        KeySet(np.array([1, 2, 3], np.int32))
    probes = np.arange(12, dtype=np.int64)[::3]  # not contiguous: 0, 3, 6, 9
    assert KeySet(np.array([3, 9], np.int64)).absent(probes).tolist() == [0, 6]
