"""The four levels of a case, the only place their numbers live.

    1 loads the director (and the regular tables)   2 validates the director
    3 loads the children                            4 validates the children

A level starts only once the one before it passed: a child notice (level 3) is claimable only while its
director's level-2 gate is passed.
"""

from __future__ import annotations

DIRECTOR, CHILD, REGULAR = "director", "child", "regular"
KINDS = (DIRECTOR, CHILD, REGULAR)
VALIDATED_KINDS = (DIRECTOR, CHILD)  # regular tables have no validation level

LOAD_DIRECTOR, VALIDATE_DIRECTOR, LOAD_CHILDREN, VALIDATE_CHILDREN = 1, 2, 3, 4
ALL = (LOAD_DIRECTOR, VALIDATE_DIRECTOR, LOAD_CHILDREN, VALIDATE_CHILDREN)
LOAD_LEVELS = (LOAD_DIRECTOR, LOAD_CHILDREN)
VALIDATION_LEVELS = (VALIDATE_DIRECTOR, VALIDATE_CHILDREN)

_LOAD_LEVEL = {DIRECTOR: LOAD_DIRECTOR, REGULAR: LOAD_DIRECTOR, CHILD: LOAD_CHILDREN}
_VALIDATION_LEVEL = {DIRECTOR: VALIDATE_DIRECTOR, CHILD: VALIDATE_CHILDREN}
_VALIDATED_KIND = {level: kind for kind, level in _VALIDATION_LEVEL.items()}


def load_level(kind: str) -> int:
    """The level that loads a table of this kind."""
    return _LOAD_LEVEL[kind]


def validation_level(kind: str) -> int | None:
    """The level that validates a table of this kind (None for regular tables)."""
    return _VALIDATION_LEVEL.get(kind)


def validated_kind(level: int) -> str:
    """The kind of table a validation level validates."""
    return _VALIDATED_KIND[level]


def is_load_level(level: int) -> bool:
    return level in LOAD_LEVELS


def waits_for_director_gate(level: int) -> bool:
    """Notices of this load level are claimable only once their director's gate passed."""
    return level == LOAD_CHILDREN


def step_directory(kind: str, task: int) -> str:
    """`step<N>_<task>`: the directory the partitioner writes a table's series of files to."""
    return f"step{load_level(kind)}_{task}"


_NAMES = {
    LOAD_DIRECTOR: "load_director",
    VALIDATE_DIRECTOR: "gate_director",
    LOAD_CHILDREN: "load_children",
    VALIDATE_CHILDREN: "gate_children",
}


def name(level: int) -> str:
    """`load_director`, `gate_director`, `load_children`, `gate_children`: what a level does, in UI names."""
    return _NAMES[level]
