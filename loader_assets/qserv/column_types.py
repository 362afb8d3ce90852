"""The column types a table JSON may give: one MariaDB data type with its attributes, nothing more.

The type is pasted into `CREATE TABLE`, so anything beyond one column's type — a second column, a generated
column, a CHECK constraint, a key, a closing parenthesis — is refused by this grammar (a whitelist of types,
arguments and attributes) before anything reaches a worker.
"""

from __future__ import annotations

import re

_TYPES = (
    "TINYINT|SMALLINT|MEDIUMINT|INTEGER|INT|BIGINT|BIT|BOOLEAN|BOOL|FLOAT|DOUBLE(?:\\s+PRECISION)?|REAL|DECIMAL|DEC|"
    "NUMERIC|FIXED|NCHAR|CHAR|NVARCHAR|VARCHAR|VARBINARY|BINARY|TINYBLOB|MEDIUMBLOB|LONGBLOB|BLOB|TINYTEXT|"
    "MEDIUMTEXT|LONGTEXT|TEXT|DATETIME|DATE|TIMESTAMP|TIME|YEAR|JSON"
)
_STRING = r"'(?:[^'\\]|\\.|'')*'"
_ARGUMENTS = r"(?:\(\s*\d+\s*(?:,\s*\d+\s*)?\))?"
_LIST = rf"(?:ENUM|SET)\s*\(\s*{_STRING}(?:\s*,\s*{_STRING})*\s*\)"
_NOW = r"CURRENT_TIMESTAMP(?:\s*\(\s*\d*\s*\))?"
_LITERAL = rf"(?:NULL|TRUE|FALSE|[-+]?\d+(?:\.\d+)?(?:E[-+]?\d+)?|{_STRING}|b'[01]*'|{_NOW})"
_NAME = r"[A-Za-z0-9_]+"
_ATTRIBUTE = (
    rf"(?:UNSIGNED|SIGNED|ZEROFILL|NOT\s+NULL|NULL|BINARY|DEFAULT\s+{_LITERAL}|ON\s+UPDATE\s+{_NOW}|"
    rf"(?:CHARACTER\s+SET|CHARSET)\s+{_NAME}|COLLATE\s+{_NAME}|COMMENT\s+{_STRING})"
)
_COLUMN_TYPE = re.compile(rf"\s*(?:(?:{_TYPES})\s*{_ARGUMENTS}|{_LIST})(?:\s+{_ATTRIBUTE})*\s*", re.IGNORECASE)


def is_column_type(text: str) -> bool:
    """True when `text` is exactly one MariaDB column type with attributes (e.g. `bigint(20) NOT NULL`)."""
    return _COLUMN_TYPE.fullmatch(text) is not None
