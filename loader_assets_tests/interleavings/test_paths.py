"""Registration keeps every file under the case root, once: `../`, a `./` twin, a symlink leading out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from loader_assets.catalog import schema
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.register import register_case
from loader_assets.catalog.store import Store
from loader_assets.qserv.metadata import MetadataError
from loader_assets.qserv.sample import write_sample_case


def sample(tmp_path: Path) -> tuple[Path, dict]:
    root = write_sample_case(tmp_path / "case", chunks=2, rows_per_chunk=3, database="paths")
    return root, json.loads((root / "metadata.json").read_text())


def rewrite(root: Path, metadata: dict) -> None:
    (root / "metadata.json").write_text(json.dumps(metadata))


def director_data(metadata: dict) -> list[dict]:
    return next(t for t in metadata["tables"] if t["schema"] == "Object.json")["data"]


def nothing_registered(db: CatalogDB) -> bool:
    with db.read() as connection:
        return connection.execute(select(func.count()).select_from(schema.notices)).scalar() == 0


@pytest.fixture
def store(catalog_db: CatalogDB) -> Store:
    return Store(catalog_db)


def test_a_directory_leading_out_of_the_root_is_refused(store: Store, tmp_path: Path) -> None:
    root, metadata = sample(tmp_path)
    outside = tmp_path / "outside"
    shutil.copytree(root / "step1_1", outside / "step1_1")
    director_data(metadata)[0]["directory"] = "../outside/step1_1/Object"
    rewrite(root, metadata)
    with pytest.raises(
        MetadataError,
        match=r"metadata.json tables\[0\].data\[0\]: 'directory' '../outside/step1_1/Object' leads out of the case root",
    ):
        register_case(store, root, "paths")
    assert nothing_registered(store.db)


def test_a_dot_slash_twin_of_a_directory_is_refused_as_a_duplicate(store: Store, tmp_path: Path) -> None:
    root, metadata = sample(tmp_path)
    data = director_data(metadata)
    data.append({**data[0], "directory": "./" + data[0]["directory"]})
    rewrite(root, metadata)
    with pytest.raises(MetadataError, match=r"metadata.json: listed more than once: step1_1/Object/chunk_\d+\.txt"):
        register_case(store, root, "paths")
    assert nothing_registered(store.db)


def test_a_symlink_out_of_the_root_is_refused_unless_allowed(store: Store, tmp_path: Path) -> None:
    root, _ = sample(tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.move(root / "step1_1", outside)
    (root / "step1_1").symlink_to(outside, target_is_directory=True)
    with pytest.raises(
        MetadataError,
        match=r"metadata.json tables\[0\].data\[0\]: 'directory' 'step1_1/Object' leads out of the case root",
    ):
        register_case(store, root, "paths")
    assert nothing_registered(store.db)
    assert register_case(store, root, "paths", allow_links_out=True).new_notices > 0
