"""Settings from the environment: a malformed value is refused naming its variable, never ignored."""

from __future__ import annotations

import pytest

from loader_assets.settings import BadSetting, Settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOADER_STREAMS_PER_WORKER", "0"),
        ("LOADER_LEASE_SECONDS", "-5"),
        ("LOADER_EXECUTOR", "threads"),
        ("LOADER_WORKER_TLS", "maybe"),
    ],
)
def test_a_malformed_setting_names_its_variable(tmp_path, variable: str, value: str) -> None:
    with pytest.raises(BadSetting) as refused:
        Settings.from_env({"LOADER_STATE_DIR": str(tmp_path), variable: value})
    assert refused.value.cause.startswith(f"{variable}={value!r} is not ")
    assert refused.value.fix == f"correct {variable} in the environment"


@pytest.mark.parametrize(
    "url",
    ["bogus://loader:S3cret@db/c", "postgresql+psycopg://loader:S3cret@db/c", "postgres+psycopg2://loader:S3cret@db/c",
     "loader:S3cret@db/c"],
)  # fmt: skip
def test_a_catalog_url_of_a_driver_not_shipped_is_refused_without_its_password(tmp_path, url: str) -> None:
    with pytest.raises(BadSetting) as refused:
        Settings.from_env({"LOADER_STATE_DIR": str(tmp_path), "LOADER_CATALOG_URL": url})
    assert refused.value.cause.startswith("LOADER_CATALOG_URL=") and "S3cret" not in str(refused.value)
    assert refused.value.fix == "correct LOADER_CATALOG_URL in the environment"


@pytest.mark.parametrize(
    "url",
    ["sqlite:////srv/catalog.sqlite", "sqlite+pysqlite:///c.sqlite", "postgresql://loader@db/catalog",
     "postgresql+psycopg2://db/c", "postgres://db/c"],
)  # fmt: skip
def test_the_catalog_urls_of_both_databases_are_taken(tmp_path, url: str) -> None:
    assert Settings.from_env({"LOADER_STATE_DIR": str(tmp_path), "LOADER_CATALOG_URL": url}).catalog_url == url
