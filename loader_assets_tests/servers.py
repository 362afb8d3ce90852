"""What the tests and the benchmarks start or borrow from the real servers, written once: a throwaway PostgreSQL
database, a `dagster-daemon` on an instance (its sensors ticking, its run queue launching), a Prometheus server
scraping a target, an SMTP server and a webhook receiver keeping what they are sent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import psutil
from sqlalchemy import create_engine, text

REPOSITORY = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "LOADER_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
DAEMON_START_SECONDS = 90


def admin_sql(statement: str, params: dict[str, object] | None = None) -> None:
    """One statement as the machine's PostgreSQL superuser, committed (ALTER DATABASE, pg_terminate_backend)."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement), params or {})
    finally:
        admin.dispose()


@contextmanager
def postgres_database(prefix: str = "loader_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database (its URL), dropped afterwards whoever still holds it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def dagster_daemon(
    instance: dg.DagsterInstance, log_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the repository's workspace, once its sensor and run-queue daemons beat for
    `instance`; stopped (its whole process group) afterwards."""
    log = log_path.open("wb")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPOSITORY / "workspace.yaml")],
        cwd=REPOSITORY, env=dict(env if env is not None else os.environ), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + DAEMON_START_SECONDS
        while {"SENSOR", "QUEUED_RUN_COORDINATOR"} - set(instance.get_daemon_heartbeats()):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dagster-daemon did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield daemon
    finally:
        stop_group(daemon)
        log.close()


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM a process group, SIGKILL it if it lingers; then SIGKILL what outlived its leader (a browser's or a
    daemon's helpers still writing into a directory the test is about to remove) and wait until it is gone."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    left = [p for p in psutil.process_iter() if _group_of(p) == process.pid]
    for member in left:
        with suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(left, timeout=timeout)


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, psutil.NoSuchProcess):
        return None


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Prometheus:
    """A Debian `prometheus` scraping one target every second, asked through its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict]:  # type: ignore[type-arg]
        """The instant vector of `promql` (empty until a scrape brought it)."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(address, timeout=10) as response:
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]


@contextmanager
def prometheus(target: str, directory: Path) -> Iterator[Prometheus]:
    """`prometheus` on a free loopback port, scraping `target` (host:port) each second, until the block ends."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is missing: `make servers` (scripts/ensure-servers.sh) installs Debian's")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: loader, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    port = free_port()
    log = (directory / "prometheus.log").open("wb")
    server = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _until_ready(server, f"http://127.0.0.1:{port}/-/ready", directory / "prometheus.log")
        yield Prometheus(f"http://127.0.0.1:{port}")
    finally:
        stop_group(server)
        log.close()


def _until_ready(server: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    """Once `url` answers 200 (the server's own readiness), or its log in the error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not become ready: {log.read_text()[-2000:]}")
        time.sleep(0.2)


class Inbox:
    """What an SMTP server or a webhook receiver was sent; `wait` returns once `count` items arrived."""

    def __init__(self) -> None:
        self.items: list = []  # type: ignore[type-arg]
        self._arrived = threading.Condition()

    def add(self, item: object) -> None:
        with self._arrived:
            self.items.append(item)
            self._arrived.notify_all()

    def wait(self, count: int, timeout: float = 60) -> list:  # type: ignore[type-arg]
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.items) >= count, timeout=timeout)
            return list(self.items)


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    """An `aiosmtpd` SMTP server on a free loopback port; its inbox holds the messages it received."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()

    class Handler:
        async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
            inbox.add(message_from_bytes(envelope.original_content or envelope.content))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, Inbox]]:
    """An HTTP server on a free loopback port keeping the JSON bodies POSTed to it."""
    inbox = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            inbox.add(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", inbox
    finally:
        server.shutdown()
        thread.join()


class OwnPostgres:
    """A PostgreSQL cluster of its own (initdb in `directory`, trust, a free loopback port), so it can be stopped
    and started again as an outage is: `stop()`, `start()`. Run as `postgres` when we are root: `directory` must be
    one that user reaches."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port = directory, free_port()
        self.data, self.log = directory / "data", directory / "postgres.log"
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not binaries:
            raise RuntimeError("PostgreSQL's server programs are missing: `make servers` installs them")
        self.bin = binaries[-1]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def _as_owner(self, *command: str) -> None:
        """Run a server program as `postgres` (it refuses root), or as ourselves when we are not root."""
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True)

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._as_owner(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                       "start")  # fmt: skip

    def stop(self) -> None:
        self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A PostgreSQL cluster of its own, running; stopped (if it runs) and removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="loader-pg-"))
    directory.chmod(0o755)
    server = OwnPostgres(directory / "cluster")
    try:
        server.init()
        server.start()
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
