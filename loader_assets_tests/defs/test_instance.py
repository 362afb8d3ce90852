"""The persistent instance on PostgreSQL, whatever form of URL the operator gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loader_assets import settings
from loader_assets.defs.instance import PG_URL_ENV, prepare_instance
from loader_assets.defs.partitions import add_chunk_partitions
from loader_assets_tests.conftest import fresh_postgres_database


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_every_form_of_a_postgresql_url_opens_the_instance(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_postgres_database() as url:
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        monkeypatch.setenv(PG_URL_ENV, scheme + "://" + url.split("://", 1)[1])
        instance = prepare_instance()
        try:
            assert add_chunk_partitions(instance, "case1", [3, 1, 2]) == 3
            assert instance.get_dynamic_partitions("case1__chunks") == ["1", "2", "3"]
        finally:
            instance.dispose()
        written = yaml.safe_load((tmp_path / "dagster.yaml").read_text())["storage"]["postgres"]
        assert written["postgres_db"]["scheme"] == "postgresql+psycopg2"  # a daemon started by hand reads it too


def test_a_url_with_a_password_stays_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loader_assets.defs.instance import instance_config

    monkeypatch.setenv(PG_URL_ENV, "postgresql://loader:secret@db.example:5432/dagster")
    config = instance_config()
    assert config["storage"] == {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    assert "secret" not in yaml.safe_dump(config)


def test_psycopg2_url_normalises_only_postgresql_urls() -> None:
    assert settings.psycopg2_url("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert settings.psycopg2_url("postgresql://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert settings.psycopg2_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert settings.psycopg2_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
