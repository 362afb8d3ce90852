"""A short subset of the fault matrix (`benchmarks/faults.py`, each scenario on a fresh cluster of its own): the
scenarios a person ends by acting as the line says — a wrong password, a file replaced by a directory, a load
frozen beyond its lease and resumed with the catalog stopped (which must load nothing) — and the instance's
PostgreSQL restarted under a load, which no person needs to end. Each ends exact; the whole matrix
runs outside `make test` (a dropped case registered again and the signals to `load` have tests of their own:
recovery/test_unattended.py, test_operator_faults.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loader_assets_tests.conftest import REPOSITORY

pytestmark = pytest.mark.servers
SUBSET = ("wrong-password", "file-replaced-by-directory", "frozen-then-catalog-stopped", "instance-restarted")


def test_a_subset_of_the_fault_matrix_ends_exact() -> None:
    matrix = subprocess.run([sys.executable, "benchmarks/faults.py", "--only", ",".join(SUBSET)], cwd=REPOSITORY,
                            capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert matrix.returncode == 0 and "every scenario ended exact" in matrix.stdout, matrix.stdout + matrix.stderr
    rows = [line for line in matrix.stdout.splitlines() if line and not line.startswith((" ", "--", "every"))]
    assert len(rows) == len(SUBSET), matrix.stdout
    said = matrix.stdout
    assert "exit   5" in said and "refused the login" in said, said  # the czar refuses the wrong password first
    assert "exit   1" in said and "put the file back, `reset` its notice" in said, said
    [restarted] = [row for row in rows if row.startswith("instance PostgreSQL restarted")]
    assert "exit   0" in restarted and restarted.endswith("person: no"), said  # a load rides through a restart
    [frozen] = [row for row in rows if row.startswith("frozen past its lease")]
    assert "exact" in frozen and "exit   6" in frozen, said  # loaded nothing, named the catalog
