"""What one chunk materialization costs the Dagster instance on PostgreSQL: connected per call (dagster-postgres's
default) against the connections a command keeps (`defs/instance.py keep_connections`).

    .venv/bin/python benchmarks/instance_events.py [--events 300] [--rounds 2]

A fresh database of the machine's PostgreSQL holds the instance; each round reports --events runless
materializations and prints milliseconds per event: wall, this process's CPU and PostgreSQL's (every backend of
the server, nothing else using it meanwhile).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import dagster as dg  # noqa: E402
from end_to_end import postgres_cpu  # noqa: E402

from loader_assets.defs.instance import init_instance, open_instance  # noqa: E402
from loader_assets.settings import Settings  # noqa: E402
from loader_assets_tests.servers import postgres_database  # noqa: E402


def rounds(instance: dg.DagsterInstance, label: str, events: int, count: int) -> None:
    for number in range(count):
        cpu, server, wall = time.process_time(), postgres_cpu(), time.perf_counter()
        for chunk in range(events):
            instance.report_runless_asset_event(
                dg.AssetMaterialization("Object", partition=f"{label}{number}|{chunk}", metadata={"rows": chunk})
            )
        print(f"{label:8} {1000 * (time.perf_counter() - wall) / events:5.2f} ms wall, "
              f"{1000 * (time.process_time() - cpu) / events:5.2f} ms of this process's CPU, "
              f"{1000 * (postgres_cpu() - server) / events:5.2f} ms of PostgreSQL's, per materialization")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with postgres_database("instance_events") as url:
        home = tempfile.mkdtemp(prefix="instance-events-")
        settings = Settings.from_env({"DAGSTER_HOME": home, "LOADER_DAGSTER_PG_URL": url, "LOADER_STATE_DIR": home})
        init_instance(settings)
        for label, instance in (("per call", dg.DagsterInstance.local_temp(tempdir=home)),
                                ("kept", open_instance(settings))):  # fmt: skip
            try:
                rounds(instance, label, args.events, args.rounds)
            finally:
                instance.dispose()


if __name__ == "__main__":
    main()
