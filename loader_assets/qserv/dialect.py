r"""MariaDB `LOAD DATA` options of a text format, as qserv-ingest spells them.

Qserv reads each option (metadata.json `formats`, a table JSON's `fields_terminated_by`...) as the contents of a
MySQL string literal: `\t` (backslash, t: the JSON string "\\t") is a tab, `\\` one backslash. `mysql_unescape`
turns such a value into the characters themselves, which is what `Dialect` holds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

# MySQL string-literal escapes (https://mariadb.com/kb/en/string-literals/); `\%` and `\_` keep their backslash.
_ESCAPES = {"0": "\0", "'": "'", '"': '"', "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def mysql_unescape(text: str) -> str:
    r"""The characters a MySQL string literal with contents `text` denotes: `\t` is a tab, `\\` a backslash,
    `\%` and `\_` stay as written, a backslash before any other character is dropped (as MySQL does), and a
    lone trailing backslash is kept (it can only mean itself)."""
    return _ESCAPE.sub(lambda match: _ESCAPES.get(match[1], match[0] if match[1] in "%_" else match[1]), text)


@dataclass(frozen=True)
class Dialect:
    """MariaDB `LOAD DATA` options of a text format; the defaults are Qserv's ingest defaults (tab separated)."""

    fields_terminated_by: str = "\t"
    fields_enclosed_by: str = ""
    fields_escaped_by: str = "\\"
    lines_terminated_by: str = "\n"

    @classmethod
    def of(cls, fmt: str, options: Mapping[str, str] | Dialect | None = None) -> Dialect:
        """The dialect of a format: the case's (a Dialect or its stored dict), else the format's default.
        Stored options are the characters themselves (already unescaped)."""
        if isinstance(options, Dialect):
            return options
        return dataclasses.replace(DEFAULT_DIALECTS.get(fmt, cls()), **(options or {}))


# .txt/.tsv as Qserv's ingest reads them (tab separated); .csv comma separated, fields optionally in quotes.
DEFAULT_DIALECTS = {
    "txt": Dialect(),
    "tsv": Dialect(),
    "csv": Dialect(fields_terminated_by=",", fields_enclosed_by='"'),
}
DIALECT_KEYS = tuple(f.name for f in dataclasses.fields(Dialect))
