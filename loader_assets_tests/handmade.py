"""A hand-made qserv-ingest case in the shape of its itest datasets, shared by the parser and registration tests."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

PARTITION = [{"name": "chunkId", "type": "int(11) NOT NULL"}, {"name": "subChunkId", "type": "int(11) NOT NULL"}]
OBJECT_JSON = {
    "version": 12,
    "database": "qcase",
    "table": "Object",
    "is_partitioned": 1,
    "director_table": "",
    "director_key": "objectId",
    "latitude_key": "decl",
    "longitude_key": "ra",
    "schema": [
        {"name": "objectId", "type": "BIGINT NOT NULL"},
        {"name": "ra", "type": "DOUBLE NOT NULL"},
        {"name": "decl", "type": "DOUBLE NOT NULL"},
        *PARTITION,
    ],
}
SOURCE_JSON = {
    "version": 12,
    "database": "qcase",
    "table": "Source",
    "is_partitioned": 1,
    "director_table": "Object",
    "director_key": "objectId",
    "schema": [{"name": "sourceId", "type": "BIGINT NOT NULL"}, {"name": "objectId", "type": "BIGINT"}, *PARTITION],
}
FILTER_JSON = {
    "version": 12,
    "database": "qcase",
    "table": "Filter",
    "is_partitioned": 0,
    "schema": [{"name": "filterId", "type": "tinyint(4) NOT NULL"}, {"name": "filterName", "type": "char(3)"}],
}
INDEX_JSON = {
    "version": 12,
    "database": "qcase",
    "table": "Object",
    "index": "idx_objectId",
    "spec": "DEFAULT",
    "comment": "director key",
    "columns": [{"column": "objectId", "length": 0, "ascending": 1}],
}
DATABASE_JSON = {
    "version": 12,
    "database": "qcase",
    "auto_build_secondary_index": 0,
    "local_load_secondary_index": 1,
    "num_stripes": 85,
    "num_sub_stripes": 12,
    "overlap": 0.01667,
    "auth_key": "",
}
METADATA_JSON = {
    "version": 12,
    "charset_name": "latin1",
    "database": "database.json",
    "formats": {"txt": {"fields_terminated_by": ","}},
    "tables": [
        {
            "schema": "Object.json",
            "indexes": ["idx_object.json"],
            "data": [
                {"directory": "step1_1/Object", "chunks": [6630, 6631], "overlaps": [6631]},
                {"directory": "step1_2/Object", "chunks": [6800]},
                {"directory": "partition/case01/Object", "chunks": [7140]},
            ],
        },
        {"schema": "Source.json", "indexes": [], "data": [{"directory": "step3_1/Source", "chunks": [6630, 6631]}]},
        {"schema": "Filter.json", "indexes": [], "data": [{"directory": "", "files": ["Filter.tsv"]}]},
    ],
}
DATA_FILES = {
    "step1_1/Object/chunk_6630.txt": "1,10.0,-5.0,6630,1\n",
    "step1_1/Object/chunk_6631.txt": "2,11.0,-5.0,6631,1\n",
    "step1_1/Object/chunk_6631_overlap.txt": "9,12.0,-5.0,6631,1\n",
    "step1_2/Object/chunk_6800.csv": "3,10.0,-3.0,6800,1\n",  # the extension is found on disk
    "step1_2/Object/chunk_6800_overlap.csv": "",
    "partition/case01/Object/chunk_7140.parquet": "PAR1",
    "partition/case01/Object/chunk_7140_overlap.parquet": "PAR1",
    "step3_1/Source/chunk_6630.txt": "100,1,6630,1\n",
    "step3_1/Source/chunk_6631.txt": "101,2,6631,1\n200,2,6631,1\n",
    "Filter.tsv": "0\tu\n1\tg\n",
    # written by the partitioner, never loaded:
    "step1_1/Object/chunk_index.bin": "\0",
    "step1_1/Object/chunk_info.json": "{}",
    "step3_1/Source/chunk_object_index.txt": "1,6630,1\n",
    "step3_1/Source/chunk_6631_overlap.txt": "",  # children's overlaps are not loaded by qserv-ingest
    "step3_1/Source/README": "",
}


class HandMadeCase:
    """A qserv-ingest case in the shape of its itest datasets, to be spoiled one way per test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.metadata = copy.deepcopy(METADATA_JSON)
        documents = {
            "database.json": DATABASE_JSON,
            "Object.json": OBJECT_JSON,
            "Source.json": SOURCE_JSON,
            "Filter.json": FILTER_JSON,
            "idx_object.json": INDEX_JSON,
        }
        for name, document in documents.items():
            self.write_json(name, copy.deepcopy(document))
        for path, text in DATA_FILES.items():
            self.write(path, text)
        self.save_metadata()

    def write(self, path: str, text: str) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(text)

    def write_json(self, name: str, document: Any) -> None:
        self.write(name, json.dumps(document))

    def save_metadata(self) -> None:
        self.write_json("metadata.json", self.metadata)

    def edit_json(self, name: str, edit: Callable[[dict[str, Any]], Any]) -> None:
        document = json.loads((self.root / name).read_text())
        edit(document)
        self.write_json(name, document)

    def remove(self, path: str) -> None:
        (self.root / path).unlink()
