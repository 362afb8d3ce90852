"""A short subset of the fault matrix (`benchmarks/faults.py`, each scenario on a fresh cluster of its own): the
scenarios a person ends by acting as the line says — a wrong password, a file replaced by a directory — and a case
dropped and registered again. Each ends exact; the whole matrix runs outside `make test`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loader_assets_tests.conftest import REPOSITORY

pytestmark = pytest.mark.servers
SUBSET = ("wrong-password", "file-replaced-by-directory", "drop-register-again", "load-sigterm")


def test_a_subset_of_the_fault_matrix_ends_exact() -> None:
    matrix = subprocess.run([sys.executable, "benchmarks/faults.py", "--only", ",".join(SUBSET)], cwd=REPOSITORY,
                            capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert matrix.returncode == 0 and "every scenario ended exact" in matrix.stdout, matrix.stdout + matrix.stderr
    rows = [line for line in matrix.stdout.splitlines() if line and not line.startswith((" ", "--", "every"))]
    assert len(rows) == len(SUBSET), matrix.stdout
    said = matrix.stdout
    assert "exit   5" in said and "refused the login" in said, said  # the czar refuses the wrong password first
    assert "exit 143" in said and "interrupted by SIGTERM" in said, said
