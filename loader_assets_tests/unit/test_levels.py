"""The four levels of a case and the run tag keys."""

from __future__ import annotations

import pytest

from loader_assets import levels, tags


def test_level_numbers_are_load_validate_load_validate() -> None:
    assert levels.ALL == (1, 2, 3, 4)
    assert levels.LOAD_LEVELS == (1, 3)
    assert levels.VALIDATION_LEVELS == (2, 4)
    assert [levels.is_load_level(level) for level in levels.ALL] == [True, False, True, False]


@pytest.mark.parametrize(
    ("kind", "load", "validation"),
    [(levels.DIRECTOR, 1, 2), (levels.REGULAR, 1, None), (levels.CHILD, 3, 4)],
)
def test_each_kind_has_its_load_level_and_validation_level(kind: str, load: int, validation: int | None) -> None:
    assert levels.load_level(kind) == load
    assert levels.validation_level(kind) == validation


def test_a_validation_level_names_the_kind_it_validates() -> None:
    assert levels.validated_kind(2) == levels.DIRECTOR
    assert levels.validated_kind(4) == levels.CHILD
    with pytest.raises(KeyError):
        levels.validated_kind(1)


def test_only_loading_children_waits_for_the_director_gate() -> None:
    assert [level for level in levels.ALL if levels.waits_for_director_gate(level)] == [levels.LOAD_CHILDREN]


def test_step_directory_is_named_after_the_load_level_and_task() -> None:
    assert levels.step_directory(levels.DIRECTOR, 1) == "step1_1"
    assert levels.step_directory(levels.REGULAR, 3) == "step1_3"
    assert levels.step_directory(levels.CHILD, 2) == "step3_2"


def test_run_tag_keys_are_distinct_and_namespaced() -> None:
    keys = [tags.CASE, tags.LEVEL, tags.WORKER, tags.SCHEDULE, tags.SELECTION, tags.PRIORITY]
    assert len(set(keys)) == len(keys)
    assert all(key.startswith("loader/") for key in keys if key != tags.PRIORITY)
    assert tags.PRIORITY == "dagster/priority"
