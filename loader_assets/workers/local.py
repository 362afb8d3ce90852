"""A local development cluster: one czar and N worker `mariadbd` processes on loopback ports.

Everything lives under `<state_dir>/mariadb/<name>/` (data dir, socket, pid file, error log, `server.json`
with the port); the cluster config goes to `<state_dir>/workers.json`. The servers run detached, so they
outlive the Python process that started them; stop them with `stop_cluster`. Root keeps password
authentication (no --skip-grant-tables): it connects over TCP with an empty password.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

from loader_assets.problems import BadInput, CzarDown, ServerDown, WorkerDown
from loader_assets.workers.cluster import ClusterConfig

CZAR = "czar"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0

# Tuned for bulk loads into MyISAM chunk tables; recover crashed MyISAM tables (a killed load) on open.
_SERVER_OPTIONS = (
    "--local-infile=1",
    "--skip-name-resolve",
    "--max-allowed-packet=256M",
    "--key-buffer-size=64M",
    "--bulk-insert-buffer-size=64M",
    "--myisam-recover-options=BACKUP,FORCE",
    "--innodb-buffer-pool-size=128M",
    "--character-set-server=utf8mb4",
)


@dataclass(frozen=True)
class Binaries:
    """The MariaDB programs the local servers run (`LOADER_MARIADBD`, `LOADER_MARIADB_INSTALL_DB`)."""

    mariadbd: str = "/usr/sbin/mariadbd"
    install_db: str = "/usr/bin/mariadb-install-db"


@dataclass(frozen=True)
class LocalServer:
    """Files of one local server; its port is chosen once and kept in `server.json`."""

    state_dir: Path
    name: str

    @property
    def home(self) -> Path:
        return self.state_dir / "mariadb" / self.name

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def socket(self) -> Path:
        return self.home / "mariadbd.sock"

    @property
    def pid_file(self) -> Path:
        return self.home / "mariadbd.pid"

    @property
    def error_log(self) -> Path:
        return self.home / "error.log"

    @property
    def info_file(self) -> Path:
        return self.home / "server.json"

    @property
    def port(self) -> int:
        return int(json.loads(self.info_file.read_text())["port"])

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@{HOST}:{self.port}"

    def pid(self) -> int | None:
        """Pid of this server if it runs; a stale pid file (dead or reused pid) gives None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_process_of(pid, self.datadir) else None


def server_names(count: int) -> list[str]:
    return [CZAR, *(f"worker{i}" for i in range(1, count + 1))]


def start_cluster(state_dir: Path, count: int, binaries: Binaries = Binaries()) -> ClusterConfig:
    """Start (or keep running) the czar and `count` workers; idempotent; writes `workers.json`."""
    state_dir = Path(state_dir).resolve()
    existing = _existing_workers(state_dir)
    if len(existing) > count:
        raise BadInput(f"{state_dir} already holds {len(existing)} workers", f"ask for {len(existing)} or more")
    for name in server_names(count):
        start_server(state_dir, name, binaries)
    config = ClusterConfig(
        czar_url=LocalServer(state_dir, CZAR).url,
        workers={name: LocalServer(state_dir, name).url for name in server_names(count)[1:]},
    )
    config.save(state_dir)
    return config


def stop_cluster(state_dir: Path) -> None:
    """Stop every local server of the state dir (workers first, the czar last)."""
    state_dir = Path(state_dir).resolve()
    for name in [*_existing_workers(state_dir), CZAR]:
        stop_server(state_dir, name)


def cluster_status(state_dir: Path) -> dict[str, dict]:
    """Per server: running or not, pid, port, url and data dir."""
    state_dir = Path(state_dir).resolve()
    status = {}
    for name in [CZAR, *_existing_workers(state_dir)]:
        server = LocalServer(state_dir, name)
        if not server.info_file.exists():
            continue
        pid = server.pid()
        status[name] = {
            "running": pid is not None,
            "pid": pid,
            "port": server.port,
            "url": server.url,
            "datadir": str(server.datadir),
        }
    return status


def start_server(state_dir: Path, name: str, binaries: Binaries = Binaries()) -> LocalServer:
    """Initialise the data dir if new, then start the server unless it already runs; waits until it answers."""
    server = LocalServer(Path(state_dir).resolve(), name)
    if server.pid() is not None:
        _wait_until_ready(server, None)
        return server
    server.pid_file.unlink(missing_ok=True)  # stale: its process is gone
    fresh = not server.datadir.exists()
    if fresh:
        _initialise(server, binaries)
    process = subprocess.Popen(
        _server_command(server, binaries),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # detached: survives this process and its terminal signals
    )
    _wait_until_ready(server, process)
    if fresh:
        _ensure_root_over_tcp(server)
    return server


def stop_server(state_dir: Path, name: str) -> None:
    """SIGTERM the server by its own pid, wait for a clean shutdown, SIGKILL if it does not come."""
    server = LocalServer(Path(state_dir).resolve(), name)
    pid = server.pid()
    if pid is None:
        server.pid_file.unlink(missing_ok=True)
        return
    _signal(pid, signal.SIGTERM)
    if not _wait_for_exit(pid, server.datadir, STOP_TIMEOUT):
        _signal(pid, signal.SIGKILL)
        _wait_for_exit(pid, server.datadir, 10)
    server.pid_file.unlink(missing_ok=True)


def _existing_workers(state_dir: Path) -> list[str]:
    root = state_dir / "mariadb"
    if not root.exists():
        return []
    names = [p.name for p in root.iterdir() if p.name.startswith("worker") and p.name[6:].isdigit()]
    return sorted(names, key=lambda n: int(n[6:]))


def _initialise(server: LocalServer, binaries: Binaries) -> None:
    server.home.mkdir(parents=True, exist_ok=True)
    server.info_file.write_text(json.dumps({"name": server.name, "port": _free_port()}) + "\n")
    partial = server.datadir.with_name("data.partial")  # renamed when complete: a crash leaves no half dir
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        binaries.install_db,
        "--no-defaults",
        "--auth-root-authentication-method=normal",
        f"--datadir={partial}",
        f"--user={getpass.getuser()}",
        f"--tmpdir={_tmpdir(server)}",  # its own: servers bootstrapping at once never share temp files
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        output = " | ".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise _down(server, f"could not be initialised: mariadb-install-db exited with {done.returncode}: {output}")
    partial.rename(server.datadir)


def _server_command(server: LocalServer, binaries: Binaries) -> list[str]:
    command = [
        binaries.mariadbd,
        "--no-defaults",
        f"--datadir={server.datadir}",
        f"--socket={server.socket}",
        f"--port={server.port}",
        f"--bind-address={HOST}",
        f"--pid-file={server.pid_file}",
        f"--log-error={server.error_log}",
        f"--tmpdir={_tmpdir(server)}",
        *_SERVER_OPTIONS,
    ]
    if os.geteuid() == 0:
        command.append("--user=root")  # mariadbd refuses to run as root unless told so
    return command


def _tmpdir(server: LocalServer) -> Path:
    path = server.home / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_until_ready(server: LocalServer, process: subprocess.Popen | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            pymysql.connect(unix_socket=str(server.socket), user="root", connect_timeout=2).close()
            return
        except pymysql.err.MySQLError:
            pass
        if process is not None and process.poll() is not None:
            raise _down(server, f"exited with {process.returncode}: {_log_tail(server)}")
        if time.monotonic() > deadline:
            raise _down(server, f"did not accept connections in {START_TIMEOUT} s: {_log_tail(server)}")
        time.sleep(0.1)


def _down(server: LocalServer, what: str) -> ServerDown:
    kind = CzarDown if server.name == CZAR else WorkerDown
    return kind(f"local server {server.name} {what}", f"see {server.error_log}")


def _ensure_root_over_tcp(server: LocalServer) -> None:
    """install-db creates root@127.0.0.1 with an empty password; make sure, since the loader uses TCP."""
    try:
        pymysql.connect(host=HOST, port=server.port, user="root", password="", connect_timeout=5).close()
        return
    except pymysql.err.OperationalError:
        pass
    with pymysql.connect(unix_socket=str(server.socket), user="root", autocommit=True) as conn, conn.cursor() as c:
        c.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''")
        c.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")


def _log_tail(server: LocalServer, lines: int = 5) -> str:
    try:
        return " | ".join(server.error_log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no error log)"


def _is_process_of(pid: int, datadir: Path) -> bool:
    """Whether `pid` is a live mariadbd serving `datadir` (guards against pid reuse and zombies)."""
    _reap(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return b"mariadbd" in cmdline and f"--datadir={datadir}".encode() in cmdline


def _reap(pid: int) -> None:
    """Collect the exit status if the server is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_for_exit(pid: int, datadir: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_process_of(pid, datadir):
            return True
        time.sleep(0.05)
    return False
