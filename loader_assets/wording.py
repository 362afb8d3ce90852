"""What an operator reads: counts that agree with their number ("1 notice", "2 notices"), rows as a table."""

from collections.abc import Mapping, Sequence


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, in the plural (`plural`, else with an s) unless one."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def table(rows: Sequence[Mapping[str, object]]) -> str:
    """Rows (of the same keys) as aligned columns under their names, numbers to the right; without pandas, whose
    import would cost a quarter second of the command that prints them."""
    columns = list(rows[0])
    cells = [["" if row[name] is None else str(row[name]) for name in columns] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(columns)]
    numeric = [all(isinstance(row[name], int | float) for row in rows) for name in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(columns), *map(line, cells)])
