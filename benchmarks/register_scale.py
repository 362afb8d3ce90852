"""Register a generated case of about 150,000 notices and print notices/s (goal: under a minute on PostgreSQL).

    .venv/bin/python benchmarks/register_scale.py [--chunks 37500] [--catalog postgresql|sqlite]

The case is a sample case with one row per file: Object (+ overlap files), Source and ForcedSource, so the
cost measured is registration's own (listing, stat, inserts), not the rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.register import register_case
from loader_assets.catalog.store import Store
from loader_assets.qserv.sample import write_sample_case

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def catalog_url(kind: str, workdir: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'catalog.sqlite'}", None
    name = f"register_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return f"{POSTGRES}/{name}", name


def drop_database(name: str) -> None:
    with create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=37_500)
    parser.add_argument("--catalog", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        root = write_sample_case(workdir / "scale", chunks=args.chunks, rows_per_chunk=1, database="scale")
        print(f"generated case: {time.perf_counter() - started:.1f} s")
        url, database = catalog_url(args.catalog, workdir)
        try:
            store = Store(CatalogDB(url))
            started = time.perf_counter()
            result = register_case(store, root)
            first = time.perf_counter() - started
            started = time.perf_counter()
            again = register_case(store, root)
            second = time.perf_counter() - started
            store.db.dispose()
        finally:
            if database:
                drop_database(database)
    notices = result.new_notices
    print(f"catalog: {args.catalog}; {notices:,} notices in {result.batches} batches, {len(result.chunks):,} chunks")
    print(f"first registration: {first:.1f} s = {notices / first:,.0f} notices/s (goal: under 60 s)")
    print(f"registering again (idempotent, {again.unchanged_notices:,} unchanged): {second:.1f} s")


if __name__ == "__main__":
    main()
