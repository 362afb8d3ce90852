"""Counts in what an operator reads: "1 notice", "2 notices"."""


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, in the plural (`plural`, else with an s) unless one."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
