"""Every query of docs/selection-queries.md returns the ids the page says, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.store import Store
from loader_assets.selection import select, select_batches
from loader_assets_tests.selection.example_catalog import EXAMPLE_NOW, build_example_catalog

DOC = Path(__file__).resolve().parents[2] / "docs" / "selection-queries.md"
# A ```query notices|batches block, then (after the prose) its `Returns:` line, before any other query block.
ENTRY = re.compile(r"^```query (notices|batches)\n(.*?)\n```\n((?:(?!```query).)*?)^Returns: ([^\n]*)$", re.S | re.M)


class DocumentedQuery(NamedTuple):
    target: str
    query: str
    ids: list[int]


def documented_queries(text: str) -> list[DocumentedQuery]:
    entries = [
        DocumentedQuery(target, query, [] if returns.strip() == "none" else [int(i) for i in returns.split(",")])
        for target, query, _prose, returns in ENTRY.findall(text)
    ]
    assert len(entries) == text.count("```query "), "every query block needs its own `Returns:` line"
    return entries


def test_the_page_documents_at_least_15_queries_of_both_targets() -> None:
    entries = documented_queries(DOC.read_text())
    assert len(entries) >= 15
    assert {entry.target for entry in entries} == {"notices", "batches"}
    assert all(entry.ids == sorted(entry.ids) for entry in entries), "ids are written in ascending order"


def test_every_documented_query_returns_the_documented_ids(catalog_db: CatalogDB) -> None:
    build_example_catalog(catalog_db, EXAMPLE_NOW)
    store = Store(catalog_db)
    chooser = {"notices": select, "batches": select_batches}
    wrong = {
        entry.query: (got, entry.ids)
        for entry in documented_queries(DOC.read_text())
        if (got := chooser[entry.target](entry.query, store=store, now=EXAMPLE_NOW).ids) != entry.ids
    }
    assert not wrong, "query: (returned, documented)\n" + "\n".join(f"{q!r}: {g} != {e}" for q, (g, e) in wrong.items())


@pytest.mark.parametrize(
    "text",
    [
        "```query notices\nid = 1\n```\n\nno returns line\n\n```query notices\nid = 2\n```\n\nReturns: 2\n",
        "```query notices\nid = 1\n```\n",
    ],
)
def test_a_query_block_without_its_returns_line_is_reported(text: str) -> None:
    with pytest.raises(AssertionError, match="needs its own"):
        documented_queries(text)
