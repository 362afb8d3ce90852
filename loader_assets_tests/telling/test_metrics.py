"""`loader-assets metrics`, scraped by a real Prometheus: the number of done notices of a case read back through
Prometheus' HTTP API is the catalog's; the exporter ends on SIGTERM with its one line and exit 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from loader_assets.problems import Exit
from loader_assets_tests.conftest import REPOSITORY, Platform
from loader_assets_tests.recovery.helpers import level_notices, wait_for
from loader_assets_tests.servers import prometheus

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def test_prometheus_scrapes_the_done_notices_of_a_case(platform: Platform) -> None:
    case = platform.sample_case(chunks=3, rows_per_chunk=20).case
    platform.load(case, (1, 2))
    done = sum(1 for n in level_notices(platform, case, 1) if n.status == "done")
    exporter = subprocess.Popen([sys.executable, "-m", "loader_assets.cli", "metrics", "--port", "0",
                                 "--address", "127.0.0.1"], cwd=REPOSITORY, env=dict(os.environ),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = exporter.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("serving metrics on http://127.0.0.1:"), line + exporter.stderr.read()  # type: ignore[union-attr]
        target = line.split("//", 1)[1].split("/", 1)[0]
        with prometheus(target, platform.root / "prometheus") as server:
            query = f'sum(loader_notices{{case="{case}",status="done"}})'
            found = wait_for(lambda: server.query(query), f"Prometheus scraping {query}", timeout=60, poll=0.5)
            assert done and float(found[0]["value"][1]) == done  # type: ignore[index]
            assert server.query(f'loader_gate{{case="{case}",level="2",status="passed"}}')
            assert server.query("loader_catalog_up")[0]["value"][1] == "1"
    finally:
        exporter.send_signal(signal.SIGTERM)
        _out, err = exporter.communicate(timeout=30)
    assert exporter.returncode == Exit.TERMINATED, err
    assert (
        err.strip()
        == "loader-assets metrics: interrupted by SIGTERM: the exporter stopped; run the command again to go on"
    )
