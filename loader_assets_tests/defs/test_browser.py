"""One real-browser check: Debian's chromium, headless, renders a case's overview page from a running
dagster-webserver (the JavaScript UI itself, not its API), with the counts `status` prints, and — once its
"[Show Markdown]" is clicked, as an operator clicks it — the case's sky map, decoded as an image."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import websocket

from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.defs.test_ui import refresh_overviews
from loader_assets_tests.servers import free_port, stop_group

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"]  # fmt: skip
SCREENSHOT_ENV = "LOADER_TEST_SCREENSHOT"  # a path: the overview with its sky map is saved there (README image)


class Page:
    """A Chromium tab driven through the DevTools protocol: evaluate JavaScript, take a screenshot."""

    def __init__(self, socket: websocket.WebSocket) -> None:
        self.socket, self.sent = socket, 0

    def call(self, method: str, **params: object) -> dict:
        self.sent += 1
        self.socket.send(json.dumps({"id": self.sent, "method": method, "params": params}))
        while True:
            answer = json.loads(self.socket.recv())
            if answer.get("id") == self.sent:
                assert "error" not in answer, answer
                return answer["result"]

    def evaluate(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def until(self, expression: str, what: str, timeout: float = 60) -> object:
        """The first truthy value of `expression` in the page (the UI renders asynchronously)."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {what}: {self.evaluate('document.body.innerText')}")
            time.sleep(0.25)
        return value


@contextmanager
def chromium_page(url: str) -> Iterator[Page]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: `make servers` (scripts/ensure-servers.sh) installs Debian's")
    port = free_port()
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [chromium, *CHROMIUM_ARGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(f"http://127.0.0.1:{port}/json/version")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                [tab] = [t for t in json.load(response) if t["type"] == "page"]
            socket = websocket.create_connection(tab["webSocketDebuggerUrl"], timeout=60)
            try:
                yield Page(socket)
            finally:
                socket.close()
        finally:  # the whole browser, helpers included, before its profile is removed
            stop_group(browser, timeout=60)


def test_chromium_renders_the_overview_of_a_case_with_its_sky_map(platform: Platform) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case  # nothing loaded: the children gate-blocked
    refresh_overviews(platform)
    port = free_port()
    webserver = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(port)], cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/server_info")
        with chromium_page(f"http://127.0.0.1:{port}/assets/{case}/overview") as page:
            text = str(page.until(f"document.body.innerText.includes('case {case}: active') && "
                                  "document.body.innerText", "the overview"))  # fmt: skip
            for shown in ("gate-blocked", "level 2 Object", "ForcedSource", "sky map"):
                assert shown in text
            page.evaluate("""[...document.querySelectorAll('button, a, span')]
                .filter(e => e.textContent.trim() === '[Show Markdown]').pop().click()""")
            alt = f"sky map of {case}"
            width = page.until(f"(document.querySelector('img[alt=\"{alt}\"]') || {{}}).naturalWidth",
                               "the sky map decoded")  # fmt: skip
            assert width == 720
            if shot := os.environ.get(SCREENSHOT_ENV):
                Path(shot).write_bytes(base64.b64decode(page.call("Page.captureScreenshot")["data"]))
    finally:
        webserver.terminate()
        webserver.wait(timeout=60)


def wait_for(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the server is still starting
