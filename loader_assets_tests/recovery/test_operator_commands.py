"""The operator's lock commands through `loader_assets.cli.main`: locks, release, history, pause, resume."""

from __future__ import annotations

import os
import socket

import pytest

from loader_assets.catalog.store import Owner, utcnow
from loader_assets.cli import main
from loader_assets_tests.conftest import Platform
from loader_assets_tests.recovery.helpers import ON_POSTGRESQL, assert_exact, attempt_rows, level_notices

pytestmark = ON_POSTGRESQL


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_locks_release_history_pause_and_resume(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5, seed=13).case
    other = platform.sample_case(chunks=1, rows_per_chunk=5, seed=13).case
    level_1 = [n.id for n in level_notices(platform, case, 1)]
    live, silent = Owner("run-live", socket.gethostname(), os.getpid()), Owner("run-silent", "elsewhere", 1)
    platform.store.claim(level_1[:2], live)
    platform.store.claim(level_1[2:3], silent, now=utcnow() - 2 * platform.store.lease)  # its lease ran out

    code, out, _ = run(capsys, "locks", "--case", case)
    lines = out.splitlines()
    assert code == 0 and "lease_left_s" in lines[0] and lines[0].split()[-1] == "stale"
    assert [line.split()[-1] for line in lines[1:] if "run-live" in line] == ["False", "False"]
    assert [line.split()[-1] for line in lines[1:] if "run-silent" in line] == ["True"]
    assert run(capsys, "locks", "--case", other)[1].strip() == "no locks held"

    assert run(capsys, "release", "--run", "run-silent")[1].strip() == "released 1 notice of run run-silent"
    [audit] = attempt_rows(platform, level_1[2:3])
    assert (audit.run_id, audit.outcome) == ("run-silent", "lost")
    assert audit.error.startswith("released by hand: operator (by ") and audit.finished_at is not None
    code, out, _ = run(capsys, "history", str(level_1[2]))
    assert code == 0 and "run-silent" in out and "lost" in out and "released by hand" in out
    code, _, err = run(capsys, "history", "999999999")
    assert code == 3 and "no notice 999999999" in err

    assert run(capsys, "pause", case)[1].strip() == f"case {case} paused"
    claimed_before = len(attempt_rows(platform, level_1))
    code, _, err = run(capsys, "load", case, "--level", "1")
    assert code == 7 and f"case {case} is paused: nothing is claimed; `loader-assets resume {case}`" in err
    assert len(attempt_rows(platform, level_1)) == claimed_before
    assert not platform.store.claim(level_1, Owner.current("sneaky"))

    assert run(capsys, "resume", case)[1].strip() == f"case {case} active"
    assert run(capsys, "release", "--run", "run-live", "--reason", "test over")[1].startswith("released 2 notices")
    code, out, _ = run(capsys, "load", case, "--level", "1")
    assert code == 0, out
    assert_exact(platform, case, 1)
    assert run(capsys, "locks")[1].strip() == "no locks held"
