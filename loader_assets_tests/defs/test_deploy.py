"""deploy/k8s: the instance a Kubernetes deployment runs on is a valid Dagster instance with dagster-k8s's launcher."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher

from loader_assets_tests.conftest import REPOSITORY

K8S = REPOSITORY / "deploy" / "k8s"


def test_the_kubernetes_instance_is_valid_for_dagster_and_its_run_launcher(tmp_path: Path) -> None:
    shutil.copy(K8S / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # raises on any error, naming the field
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    checked = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert checked.success, checked.errors
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_the_helm_values_name_the_code_location_and_its_environment() -> None:
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == ["--module-name", "loader_assets.definitions"], "reloads without a restart"
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert {"name": "loader-assets-secrets"} in deployment["envSecrets"]
