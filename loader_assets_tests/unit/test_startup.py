"""`loader-assets` signalled while it starts (its imports take about a second) says so in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loader_assets.problems import Exit

# The command line, signalled by itself the moment it starts importing its command line module: deterministic,
# where a signal sent from outside could land before Python runs or after the imports.
SIGNALLED_WHILE_STARTING = """
import importlib.abc, os, signal, sys

class SignalOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "loader_assets.cli":
            os.kill(os.getpid(), signal.{name})
        return None

sys.meta_path.insert(0, SignalOnImport())
sys.argv = ["loader-assets", "status"]
from loader_assets.startup import main
sys.exit(main())
"""


@pytest.mark.parametrize(("name", "code"), [("SIGINT", Exit.INTERRUPTED), ("SIGTERM", Exit.TERMINATED)])
def test_a_signal_while_starting_is_one_line_and_its_exit_code(name: str, code: Exit) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED_WHILE_STARTING.format(name=name)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == code, done.stderr
    assert (
        done.stderr == f"loader-assets: interrupted by {name} while starting: nothing was done; run the command again\n"
    )
