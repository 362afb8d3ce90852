"""Qserv's integration inputs (`LOADER_QSERV_ITEST`, see `builders.itest_root`) and the cases built from them,
once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from loader_assets_tests.qserv_itest.builders import build_case01_shipped, build_case01_steps, itest_root


@pytest.fixture(scope="session")
def qserv_itest() -> Path:
    """The qserv-itest directory: skips when `LOADER_QSERV_ITEST` is unset, fails when it names no such directory."""
    return itest_root()


@pytest.fixture(scope="session")
def case01_shipped(qserv_itest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_case01_shipped(qserv_itest, tmp_path_factory.mktemp("case01_shipped"))


@pytest.fixture(scope="session")
def case01_steps(qserv_itest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_case01_steps(qserv_itest, tmp_path_factory.mktemp("case01_steps"))
