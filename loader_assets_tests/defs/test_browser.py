"""One real-browser check: Debian's chromium, headless, renders a case's overview page from a running
dagster-webserver (the JavaScript UI itself, not its API), with the counts `status` prints."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.defs.test_ui import refresh_overviews
from loader_assets_tests.test_cli import dead_address

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    return int(dead_address().rsplit(":", 1)[1])


def test_chromium_renders_the_overview_of_a_case(platform: Platform) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: `make servers` (scripts/ensure-servers.sh) installs Debian's")
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case  # nothing loaded: the children gate-blocked
    refresh_overviews(platform)
    port = free_port()
    webserver = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(port)], cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info")
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run(
                [chromium, *CHROMIUM_ARGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                 "--dump-dom", f"http://127.0.0.1:{port}/assets/{case}/overview"],
                capture_output=True, text=True, timeout=120, check=True,
            ).stdout  # fmt: skip
    finally:
        webserver.terminate()
        webserver.wait(timeout=60)
    assert f"case {case}: active" in dom, dom[-2000:]
    for shown in ("gate-blocked", "level 2 Object", "ForcedSource"):
        assert shown in dom


def wait_for(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the webserver is still loading the code location
