"""The demonstrator notebook runs end to end: a real failure, selected, repaired, scheduled and finished.

Executed with nbclient in a kernel of this interpreter (the venv's), on the platform's PostgreSQL catalog,
the session's MariaDB workers and a running dagster-daemon; the notebook's environment is the test's.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from loader_assets_tests.conftest import REPOSITORY, Platform

NOTEBOOK = REPOSITORY / "notebooks" / "demonstrator.ipynb"
KERNEL = "loader_assets_venv"
CELL_TIMEOUT = 300


def kernel_manager(kernels_dir: Path) -> KernelManager:
    """A kernel of this very interpreter, whatever kernelspecs the user or the system have installed."""
    spec_dir = kernels_dir / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "loader_assets (venv)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))


def errors_of(notebook: nbformat.NotebookNode) -> list[str]:
    return [
        f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def test_the_notebook_imports_nothing_but_the_facade_and_pandas() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    imported = set()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Import):
                    imported |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom):
                    imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    assert "loader_assets.notebook" in imported and imported <= {"pandas", "loader_assets.notebook"}


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    dirty = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"clear the outputs of cells {dirty} before committing {NOTEBOOK.name}"


@pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)
def test_the_demonstrator_runs_end_to_end(platform: Platform, dagster_daemon: subprocess.Popen, tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    work_dir = tmp_path / "notebook"
    work_dir.mkdir()
    client = NotebookClient(
        notebook,
        km=kernel_manager(tmp_path / "kernels"),
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(work_dir)}},
    )
    started = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as error:
        daemon_log = (platform.root / "daemon.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"a cell of {NOTEBOOK.name} failed:\n{error}\n\nlast lines of the daemon log:\n{daemon_log}")
    finally:
        nbformat.write(notebook, tmp_path / NOTEBOOK.name)  # executed copy, for a look after a failure
    assert not errors_of(notebook)
    print(f"{NOTEBOOK.name} ran in {time.monotonic() - started:.0f} s")
