"""Screenshots of the operator's view for the README: a case's overview asset and the sensors page.

    make demo                                          # a loaded sample case in .state
    .venv/bin/python scripts/screenshots.py [--case qcase01] [--out docs/images]

Over the demo's instance (LOADER_STATE_DIR, default .state): refreshes the overviews (one tick of the
case_overviews sensor), starts dagster-webserver on a free port and drives Debian's Chromium headless with
Playwright (the `ui` extra; executable /usr/bin/chromium, nothing downloaded).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# As root in a closed network: no sandbox, and none of Chromium's background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
PAGES = {"overview.png": "/assets/{case}/overview", "sensors.png": "/automation"}


def refresh_overviews() -> None:
    import dagster as dg

    from loader_assets import settings
    from loader_assets.definitions import build_definitions
    from loader_assets.defs.instance import prepare_instance
    from loader_assets.defs.resources import CatalogResource, ClusterResource

    instance = prepare_instance()
    sensor = build_definitions().resolve_sensor_def("case_overviews")
    resources = {"catalog": CatalogResource(url=settings.catalog_url()), "cluster": ClusterResource()}
    for event in sensor(dg.build_sensor_context(instance=instance, resources=resources)).asset_events:
        instance.report_runless_asset_event(event)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_webserver(port: int) -> subprocess.Popen:
    webserver = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
            return webserver
        except OSError:
            time.sleep(0.5)  # the webserver is loading the code location
    webserver.kill()
    raise RuntimeError("dagster-webserver did not answer within 120 s")


def shoot(base: str, case: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        for name, path in PAGES.items():
            page.goto(base + path.format(case=case), wait_until="networkidle")
            skip = page.get_by_role("button", name="Skip")  # Dagster's community dialog, shown once
            if skip.count():
                skip.click()
            page.wait_for_timeout(1500)  # the page's last queries and layout
            page.screenshot(path=str(out / name))
            print(f"{out / name}: {path.format(case=case)}")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default=os.environ.get("DEMO_CASE", "qcase01"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    os.environ.setdefault("LOADER_STATE_DIR", str(ROOT / ".state"))
    refresh_overviews()
    port = free_port()
    webserver = start_webserver(port)
    try:
        shoot(f"http://127.0.0.1:{port}", args.case, args.out)
    finally:
        webserver.terminate()
        webserver.wait(timeout=60)


if __name__ == "__main__":
    main()
