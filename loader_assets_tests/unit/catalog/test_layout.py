"""The layout of a registered case as loading and validating read it."""

from __future__ import annotations

import pytest

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.layout import case_layout, case_layouts
from loader_assets.catalog.register import Registration
from loader_assets.problems import Unknown
from loader_assets.qserv import sample as sample_case
from loader_assets_tests.unit.helpers import CASE


def test_case_layout_has_the_tables_by_kind_and_the_partitioning(db: CatalogDB, sample: Registration) -> None:
    layout = case_layout(db, CASE)
    assert (layout.database, layout.charset, layout.state) == (CASE, "latin1", "active")
    assert (layout.num_stripes, layout.num_sub_stripes) == (sample_case.NUM_STRIPES, sample_case.NUM_SUB_STRIPES)
    assert [t.name for t in layout.tables_of_kind("child")] == ["ForcedSource", "Source"]
    assert sorted(t.name for t in layout.validated_tables()) == ["ForcedSource", "Object", "Source"]
    source = layout.tables["Source"]
    assert (source.level, source.validation_level, layout.director_of(source).name) == (3, 4, "Object")
    assert layout.tables["Object"].column_names[:3] == ["objectId", "ra", "decl"]


def test_dialect_of_prefers_the_case_options_then_the_format_default(db: CatalogDB, sample: Registration) -> None:
    layout = case_layout(db, CASE)
    assert layout.dialect_of("txt").fields_terminated_by == ",", "metadata.json sets txt to comma separated"
    csv = layout.dialect_of("csv")
    assert (csv.fields_terminated_by, csv.fields_enclosed_by) == (",", '"')
    assert layout.dialect_of("tsv").fields_terminated_by == "\t"


def test_case_layout_of_an_unknown_case_names_it_and_the_fix(db: CatalogDB, sample: Registration) -> None:
    with pytest.raises(Unknown, match=r"no case nope; .* `loader-assets register CASE_DIR` adds one"):
        case_layout(db, "nope")
    assert list(case_layouts(db)) == [CASE]
    assert case_layouts(db, "nope") == {}
