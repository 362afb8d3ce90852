"""The catalog's clock: naive UTC, computed in Python so that SQLite and PostgreSQL agree."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
