"""Column types from table JSON reach the DDL: anything beyond one column's type is refused at registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from loader_assets.catalog import schema
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.register import register_case
from loader_assets.catalog.store import Store
from loader_assets.qserv.column_types import is_column_type
from loader_assets.qserv.metadata import MetadataError
from loader_assets.qserv.sample import write_sample_case

INJECTED = [
    "BIGINT NOT NULL, extra INT",  # a second column
    "INT AS (objectId * 2) VIRTUAL",  # a generated column
    "DOUBLE CHECK (ra > 0)",  # a constraint
    "INT NOT NULL PRIMARY KEY",  # a key the loader's partitioning forbids
    "INT) ENGINE=InnoDB; DROP TABLE x; -- ",  # closing the column list
]


@pytest.mark.parametrize("injected", INJECTED)
def test_an_injected_column_type_is_refused_naming_the_file_and_the_column(
    catalog_db: CatalogDB, tmp_path: Path, injected: str
) -> None:
    root = write_sample_case(tmp_path / "case", chunks=1, rows_per_chunk=2, database="types")
    document = json.loads((root / "Object.json").read_text())
    document["schema"][3]["type"] = injected
    (root / "Object.json").write_text(json.dumps(document))
    column = document["schema"][3]["name"]
    with pytest.raises(MetadataError, match=rf"Object.json: column '{column}': type .* is not a MariaDB column type"):
        register_case(Store(catalog_db), root, "types")
    with catalog_db.read() as connection:
        assert connection.execute(select(func.count()).select_from(schema.cases)).scalar() == 0


@pytest.mark.parametrize(
    "accepted",
    ["bigint(20) DEFAULT NULL", " double NOT NULL", "timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP", "BOOLEAN",
     "int(11) NOT NULL DEFAULT '0'", "varchar(255) CHARACTER SET latin1 COLLATE latin1_bin NOT NULL",
     "DECIMAL(10, 3) UNSIGNED ZEROFILL", "ENUM('a', 'b''c') DEFAULT 'a'", "bit(1) NOT NULL", "binary(120) NOT NULL",
     "timestamp NOT NULL DEFAULT '0000-00-00 00:00:00'", "text COMMENT 'free, text (kept)'", "DOUBLE PRECISION"],
)  # fmt: skip
def test_the_types_of_qservs_own_schemas_are_accepted(accepted: str) -> None:
    assert is_column_type(accepted)


@pytest.mark.parametrize("injected", INJECTED)
def test_the_grammar_refuses_what_goes_beyond_one_type(injected: str) -> None:
    assert not is_column_type(injected)
