"""The fault matrix: each infrastructure fault an unattended load meets, reproduced for real on a fresh cluster
(a czar and two MariaDB workers of their own, a fresh catalog and Dagster instance), then recovered from.

    .venv/bin/python benchmarks/faults.py [--only NAME,NAME] [--rounds 2] [--list]

Per scenario it prints: whether the case ended exact (every file's rows on its worker, in partitions of done
attempts only, every gate passed), the exit code and first line of what the operator saw, the seconds from the
fault's end (the server back, the disk freed, the daemon restarted) to the case exact, and whether a person had
to act (and what the line told them). `make test` runs a short subset (loader_assets_tests/test_fault_matrix.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' helpers: census, big files, servers

from loader_assets import levels  # noqa: E402
from loader_assets.catalog.gates import gate  # noqa: E402
from loader_assets.catalog.layout import case_layouts  # noqa: E402
from loader_assets.catalog.notices import notice_ids  # noqa: E402
from loader_assets.defs.unreported import unreported  # noqa: E402
from loader_assets.engine.plan import plan_runs  # noqa: E402
from loader_assets.engine.recovery import take_back  # noqa: E402
from loader_assets.operations.context import Context  # noqa: E402
from loader_assets.settings import Settings  # noqa: E402
from loader_assets.workers import local  # noqa: E402
from loader_assets.workers.ddl import director_index_table  # noqa: E402
from loader_assets.workers.local import Binaries, LocalServer  # noqa: E402
from loader_assets_tests.conftest import Platform  # noqa: E402
from loader_assets_tests.recovery.helpers import (  # noqa: E402
    assert_exact,
    big_notice,
    fill,
    level_notices,
    loads_on_workers,
    rows_arriving,
    stopped,
    tmpfs,
)
from loader_assets_tests.servers import OwnPostgres, dagster_daemon, own_postgres  # noqa: E402

STALL_SECONDS = 5
TIMEOUT = 600.0


@dataclass
class Outcome:
    scenario: str
    exact: bool = False
    why: str = ""  # what was not exact
    code: int | None = None  # exit code of the command that met the fault
    said: str = ""  # its first line
    recovery: float | None = None  # seconds from the fault's end to the case exact
    person: str = "no"  # what a person had to do
    output: str = ""  # everything the command printed (--output)

    def row(self) -> str:
        recovered = "-" if self.recovery is None else f"{self.recovery:6.1f}"
        code = "-" if self.code is None else str(self.code)
        said = self.said if len(self.said) <= 150 else self.said[:147] + "..."
        exact = "exact" if self.exact else f"NOT EXACT ({self.why})"
        return f"{self.scenario:32} {exact:10} exit {code:>3}  {recovered:>6} s  person: {self.person}\n    {said}"


@dataclass
class World:
    """One scenario's servers and state: `cli` runs `loader-assets` as the operator does."""

    root: Path
    env: dict[str, str]
    ctx: Context
    platform: Platform = field(init=False)

    def __post_init__(self) -> None:
        self.platform = Platform(self.root, self.ctx)

    @property
    def state(self) -> Path:
        return self.root / "state"

    def cli(self, *args: str, timeout: float = TIMEOUT, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "loader_assets.cli", *args], cwd=ROOT, env={**self.env, **env},
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def start(self, *args: str, module: str = "loader_assets.cli", **env: str) -> subprocess.Popen:
        """`loader-assets ARGS` started (`module`: the CLI with a test's hooks)."""
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT,
                                env={**self.env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def case(self, name: str = "faults", chunks: int = 4, rows: int = 200) -> str:
        for args in (("sample", str(self.root / name), "--chunks", str(chunks), "--rows-per-chunk", str(rows)),
                     ("register", str(self.root / name))):  # fmt: skip
            done = self.cli(*args)
            if done.returncode != 0:
                raise RuntimeError(f"{args[0]}: {done.stderr}")
        return name

    def exact(self, case: str) -> tuple[bool, str]:
        """Every level's files on their workers exactly, once; every gate passed."""
        try:
            for level in (levels.LOAD_DIRECTOR, levels.LOAD_CHILDREN):
                assert_exact(self.platform, case, level)
            for table in case_layouts(self.ctx.store.db, case)[case].validated_tables():
                verdict = gate(self.ctx.store.db, case, table.validation_level or 0, table.name)
                assert verdict is not None and verdict.status == "passed", f"gate {table.name}: {verdict}"
        except AssertionError as error:
            return False, str(error).splitlines()[0][:120] if str(error) else "assertion"
        return True, ""

    def until_loaded(self, case: str, fault_ended: float, outcome: Outcome, *, person: str) -> Outcome:
        """`load CASE` again (what the line told the person) until it succeeds; the recovery time and verdict."""
        for _ in range(3):
            again = self.cli("load", case)
            if again.returncode == 0:
                break
        outcome.recovery = time.monotonic() - fault_ended
        outcome.exact, outcome.why = self.exact(case)
        if not outcome.exact:
            outcome.why += f"; the last `load` said: {first_line(again)}"
        outcome.person = person if outcome.code not in (0, None) else outcome.person
        return outcome


def first_line(done: subprocess.CompletedProcess | tuple[str, str]) -> str:
    stdout, stderr = (done.stdout, done.stderr) if isinstance(done, subprocess.CompletedProcess) else done
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    return lines[0] if lines else next((line for line in (stdout or "").splitlines() if line.strip()), "")


@contextmanager
def world(name: str, *, catalog: OwnPostgres | None = None, instance: OwnPostgres | None = None) -> Iterator[World]:
    """A fresh cluster (czar, two workers), catalog (SQLite, or a database on `catalog`) and instance (SQLite, or a
    database on `instance`)."""
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"faults-{name}-",
                                                                    ignore_cleanup_errors=True)))  # fmt: skip
        state = root / "state"
        config = local.start_cluster(state, 2)
        stack.callback(local.stop_cluster, state)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADER_", "DAGSTER_"))}
        env.update(LOADER_STATE_DIR=str(state), DAGSTER_HOME=str(root / "dagster"), LOADER_CZAR=config.czar_url,
                   LOADER_WORKERS=",".join(f"{n}={u}" for n, u in config.workers.items()),
                   LOADER_DAGSTER_WEBSERVER="127.0.0.1:1", LOADER_STALL_SECONDS=str(STALL_SECONDS),
                   LOADER_SENSOR_INTERVAL="2")  # fmt: skip
        if catalog is not None:
            env["LOADER_CATALOG_URL"] = catalog.create_database(f"catalog_{name}")
        if instance is not None:
            env["LOADER_DAGSTER_PG_URL"] = instance.create_database(f"instance_{name}")
        ctx = Context(Settings.from_env(env))
        stack.callback(ctx.close)
        here = World(root, env, ctx)
        if (done := here.cli("init")).returncode != 0:
            raise RuntimeError(done.stderr)
        yield here


def big_on(w: World, case: str, worker: str | None = None, rows: int = 400_000) -> int:
    """A level-1 notice made big (a LOAD DATA of seconds), on `worker` when given."""
    among = None
    if worker is not None:
        plans, _ = plan_runs(w.ctx.store, w.ctx.cluster, notice_ids(w.ctx.store.db, case, level=1))
        among = next(plan.notice_ids for plan in plans if plan.worker == worker)
    return big_notice(w.platform, case, rows=rows, among=among)


def half_way(w: World, case: str, notice_id: int, process: subprocess.Popen) -> str:
    """The worker once the notice's rows are arriving there (the load caught half-way)."""
    deadline = time.monotonic() + TIMEOUT
    while (found := rows_arriving(w.platform, w.state, case, notice_id)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the load ended before its rows arrived: {process.communicate()}")
        time.sleep(0.05)
    return found[0]


def ended(process: subprocess.Popen, outcome: Outcome) -> Outcome:
    out, err = process.communicate(timeout=TIMEOUT)
    outcome.code, outcome.said = process.returncode, first_line((out, err)) or "(nothing: the process was killed)"
    outcome.output = err + out
    return outcome


# -- the scenarios ---------------------------------------------------------------------------------------------


def worker_killed(recover: bool) -> Callable[[], Outcome]:
    def scenario() -> Outcome:
        name = f"worker SIGKILL mid LOAD DATA ({'with' if recover else 'without'} MyISAM recovery)"
        with world("kill" + ("r" if recover else "n")) as w:
            case = w.case()
            notice = big_on(w, case)
            load = w.start("load", case)
            worker = half_way(w, case, notice, load)
            os.kill(LocalServer(w.state, worker).pid() or 0, signal.SIGKILL)
            local.stop_server(w.state, worker)  # reaps it, forgets its pid file
            local.start_server(w.state, worker, Binaries() if recover else without_recovery(w.root))
            restarted = time.monotonic()
            outcome = ended(load, Outcome(name))
            return w.until_loaded(case, restarted, outcome, person="ran `load` again, as the line said")

    return scenario


def without_recovery(root: Path) -> Binaries:
    """mariadbd without `--myisam-recover-options` (a crashed table stays marked crashed)."""
    wrapper = root / "mariadbd-no-recovery"
    wrapper.write_text('#!/bin/sh\nfor a; do shift; case "$a" in --myisam-recover-options*) ;; *) set -- "$@" "$a";; '
                       f'esac; done\nexec {Binaries().mariadbd} "$@"\n')  # fmt: skip
    wrapper.chmod(0o755)
    return Binaries(mariadbd=str(wrapper))


def worker_stopped() -> Outcome:
    with world("stopped") as w:
        case = w.case()
        local.stop_server(w.state, "worker2")
        outcome = Outcome("worker stopped", person="started the worker, ran `load` again")
        done = w.cli("load", case)
        outcome.code, outcome.said = done.returncode, first_line(done)
        local.start_server(w.state, "worker2")
        return w.until_loaded(case, time.monotonic(), outcome, person=outcome.person)


def czar_killed(level: int) -> Callable[[], Outcome]:
    def scenario() -> Outcome:
        with world(f"czar{level}") as w:
            case = w.case()
            if level == levels.VALIDATE_DIRECTOR:
                assert w.cli("load", case, "--level", "1").returncode == 0
                database = case_layouts(w.ctx.store.db, case)[case].database
                holder = w.ctx.cluster.czar.open()  # the validation reads the index: it waits behind this lock
                holder.cursor().execute(f"LOCK TABLES qservMeta.`{director_index_table(database, 'Object')}` WRITE")
                load = w.start("load", case, "--level", "2")
                wait_until(lambda: validating(w, case), "the level 2 validation running", load)
            else:
                notice = big_on(w, case)
                load = w.start("load", case)
                half_way(w, case, notice, load)
            os.kill(LocalServer(w.state, local.CZAR).pid() or 0, signal.SIGKILL)
            local.stop_server(w.state, local.CZAR)
            local.start_server(w.state, local.CZAR)
            restarted = time.monotonic()
            outcome = ended(load, Outcome(f"czar SIGKILL in level {level}"))
            return w.until_loaded(case, restarted, outcome, person="ran `load` again, as the line said")

    return scenario


def validating(w: World, case: str) -> bool:
    verdict = gate(w.ctx.store.db, case, levels.VALIDATE_DIRECTOR, "Object")
    return verdict is not None and verdict.validating_run is not None


def wait_until(condition: Callable[[], object], what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"never saw {what}")
        time.sleep(0.05)


def own_server_stopped(which: str) -> Callable[[], Outcome]:
    """The catalog's (or the instance's) PostgreSQL cluster stopped mid level, started again."""

    def scenario() -> Outcome:
        with own_postgres() as pg:
            kwargs = {"catalog": pg} if which == "catalog" else {"instance": pg}
            with world(which, **kwargs) as w:  # type: ignore[arg-type]
                case = w.case()
                notice = big_on(w, case)
                load = w.start("load", case)
                half_way(w, case, notice, load)
                pg.stop()
                outcome = ended(load, Outcome(f"{which} PostgreSQL stopped mid level"))
                pg.start()
                return w.until_loaded(case, time.monotonic(), outcome, person="ran `load` again, as the line said")

    return scenario


def frozen_then_catalog_stopped() -> Outcome:
    """A `load` frozen beyond its lease (it stops itself between statements), swept and loaded by another, resumed
    while the catalog's PostgreSQL is stopped: its beats fail, so it cannot tell whether its notices are still its
    own. It must load nothing and end naming the catalog."""
    with own_postgres() as pg, world("frozen", catalog=pg) as w:
        lease = {"LOADER_LEASE_SECONDS": "4"}
        case = w.case(chunks=8)
        frozen = w.start("load", case, "--level", "1", module="loader_assets_tests.recovery.frozen_load", **lease)
        wait_until(lambda: stopped(frozen), "the load stop itself", frozen)
        held = {n.id for n in level_notices(w.platform, case, 1) if n.status == "running"}
        wait_until(lambda: take_back(w.ctx.store, w.ctx.cluster, case=case), "its lapsed leases taken back")
        if (again := w.cli("load", case, "--level", "1", **lease)).returncode != 0:
            raise RuntimeError(f"the reload failed: {first_line(again)}")
        before = loads_on_workers(w.ctx.cluster)
        pg.stop()
        frozen.send_signal(signal.SIGCONT)
        outcome = ended(frozen, Outcome("frozen past its lease, resumed with the catalog stopped"))
        written = loads_on_workers(w.ctx.cluster) != before
        pg.start()
        outcome = w.until_loaded(case, time.monotonic(), outcome, person="ran `load` again, as the line said")
        if outcome.exact and written:
            outcome.exact, outcome.why = False, f"the resumed run loaded files of the {len(held)} notices taken over"
        return outcome


def instance_restarted() -> Outcome:
    """The instance's PostgreSQL restarted mid level: the connections `load` keeps are dropped under it. It rides
    through (no person), and Dagster shows every chunk it loaded (none left for the catalog to report again)."""
    with own_postgres() as pg, world("restart", instance=pg) as w:
        case = w.case()
        notice = big_on(w, case)
        load = w.start("load", case)
        half_way(w, case, notice, load)
        pg.stop()
        pg.start()
        outcome = ended(load, Outcome("instance PostgreSQL restarted mid level"))
        if outcome.code != 0:
            return w.until_loaded(case, time.monotonic(), outcome, person="ran `load` again, as the line said")
        outcome.recovery = 0.0
        outcome.exact, outcome.why = w.exact(case)
        if outcome.exact and (missing := unreported(w.platform.instance, w.ctx.store, case, 1000).events):
            outcome.exact, outcome.why = False, f"{len(missing)} loaded chunks not shown in Dagster"
        return outcome


def disk_full() -> Outcome:
    with world("disk") as w:
        case = w.case()
        mount = LocalServer(w.state, "worker2").datadir / case
        mount.mkdir()
        with tmpfs(mount, "64m"):
            try:
                notice = big_on(w, case, "worker2", rows=300_000)
                load = w.start("load", case)
                half_way(w, case, notice, load)
                filler = fill(mount)
                filled = time.monotonic()
                outcome = ended(load, Outcome("worker disk full"))
                outcome.said += f"  [ended {time.monotonic() - filled:.0f} s after the disk filled]"
                filler.unlink()
                return w.until_loaded(case, time.monotonic(), outcome, person="freed the disk, ran `load` again")
            finally:
                local.stop_server(w.state, "worker2")


def daemon_killed(moment: str) -> Callable[[], Outcome]:
    """`schedule` with the daemon SIGKILLed before its tick, between its sensor's submit and the runs' creation, or
    while the runs start; a daemon started again (as its supervisor does) finishes the schedule."""

    def scenario() -> Outcome:
        with world("daemon-" + moment.replace(" ", "-")) as w:
            case = w.case()
            log = w.root / "daemon.log"
            outcome = Outcome(f"daemon SIGKILL {moment}")
            with ExitStack() as stack:
                daemon = stack.enter_context(dagster_daemon(w.platform.instance, log, w.env))
                if moment == "before a tick":
                    os.kill(daemon.pid, signal.SIGKILL)
                done = w.cli("schedule", f"case = '{case}'")
                outcome.code, outcome.said = done.returncode, first_line(done)
                if moment == "between submit and runs":
                    wait_until(lambda: "notices in" in log.read_text(), "the sensor submitting", daemon)
                    os.kill(daemon.pid, signal.SIGKILL)
                elif moment == "while runs start":
                    wait_until(lambda: w.platform.instance.get_runs_count() > 0, "a run", daemon)
                    os.kill(daemon.pid, signal.SIGKILL)
                daemon.wait()
                stack.callback(os.killpg, daemon.pid, signal.SIGKILL)  # its children, orphaned, at the end
            restarted = time.monotonic()
            with dagster_daemon(w.platform.instance, w.root / "daemon-2.log", w.env):
                deadline = time.monotonic() + TIMEOUT
                while not w.exact(case)[0] and time.monotonic() < deadline:
                    time.sleep(1)
                outcome.recovery = time.monotonic() - restarted
            outcome.exact, outcome.why = w.exact(case)
            outcome.person = "no (the daemon's supervisor restarts it)"
            kill_leftovers(w)
            return outcome

    return scenario


def kill_leftovers(w: World) -> None:
    """What a killed daemon left running of this world (its code server, run processes): they would outlive it."""
    home = w.env["DAGSTER_HOME"]
    for process in psutil.process_iter():
        with suppress(psutil.Error):
            if process.pid != os.getpid() and process.environ().get("DAGSTER_HOME") == home:
                process.kill()


def load_signalled(signum: int) -> Callable[[], Outcome]:
    def scenario() -> Outcome:
        with world(f"load-{signum}") as w:
            case = w.case()
            notice = big_on(w, case)
            load = w.start("load", case)
            half_way(w, case, notice, load)
            load.send_signal(signum)
            outcome = ended(load, Outcome(f"load {signal.Signals(signum).name}"))
            person = "ran `load` again" + (", as the line said" if signum != signal.SIGKILL else "")
            return w.until_loaded(case, time.monotonic(), outcome, person=person)

    return scenario


def drop_and_register_again() -> Outcome:
    with world("again") as w:
        case = w.case("again")
        outcome = Outcome("drop + register again")
        for args in (("load", case), ("drop", case, "--force"), ("register", str(w.root / case)), ("load", case)):
            done = w.cli(*args)
            outcome.code, outcome.said = done.returncode, first_line(done)
            if done.returncode != 0:
                break
        outcome.recovery = 0.0
        outcome.exact, outcome.why = w.exact(case)
        return outcome


def wrong_password() -> Outcome:
    with world("password") as w:
        case = w.case()
        done = w.cli("load", case, LOADER_WORKER_PASSWORD="not-the-password")
        outcome = Outcome("wrong password", code=done.returncode, said=first_line(done))
        return w.until_loaded(case, time.monotonic(), outcome, person="corrected LOADER_WORKER_PASSWORD")


def file_replaced_by_directory() -> Outcome:
    with world("directory") as w:
        case = w.case()
        [victim] = [n for n in level_notices(w.platform, case, 1) if n.table == "Object" and not n.overlap][:1]
        path = w.root / case / victim.path
        kept = path.with_name(path.name + ".kept")
        path.rename(kept)
        path.mkdir()
        done = w.cli("load", case)
        outcome = Outcome("a file replaced by a directory", code=done.returncode, said=first_line(done))
        path.rmdir()
        kept.rename(path)
        w.cli("reset", str(victim.id))
        return w.until_loaded(case, time.monotonic(), outcome, person="put the file back, `reset` its notice")


SCENARIOS: dict[str, Callable[[], Outcome]] = {
    "worker-kill-recover": worker_killed(True),
    "worker-kill-no-recover": worker_killed(False),
    "worker-stopped": worker_stopped,
    "czar-kill-level1": czar_killed(1),
    "czar-kill-level2": czar_killed(2),
    "catalog-stopped": own_server_stopped("catalog"),
    "instance-stopped": own_server_stopped("instance"),
    "instance-restarted": instance_restarted,
    "frozen-then-catalog-stopped": frozen_then_catalog_stopped,
    "disk-full": disk_full,
    "daemon-before-tick": daemon_killed("before a tick"),
    "daemon-between-submit-and-runs": daemon_killed("between submit and runs"),
    "daemon-while-runs-start": daemon_killed("while runs start"),
    "load-sigkill": load_signalled(signal.SIGKILL),
    "load-sigterm": load_signalled(signal.SIGTERM),
    "drop-register-again": drop_and_register_again,
    "wrong-password": wrong_password,
    "file-replaced-by-directory": file_replaced_by_directory,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated scenario names (default: all)")
    parser.add_argument("--rounds", type=int, default=1, help="run the matrix this many times")
    parser.add_argument("--list", action="store_true", help="the scenario names")
    parser.add_argument("--output", action="store_true", help="show all the faulted command printed")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; --list shows them")
    if os.geteuid() != 0 and "disk-full" in chosen:
        print("disk-full mounts a tmpfs: run as root (skipped)")
        chosen.remove("disk-full")
    failures = 0
    for round_ in range(1, args.rounds + 1):
        print(f"-- round {round_}", flush=True)
        for name in chosen:
            started = time.monotonic()
            try:
                outcome = SCENARIOS[name]()
            except Exception as error:  # a scenario that could not be staged says why and the matrix goes on
                outcome = Outcome(name, why=f"{type(error).__name__}: {str(error)[:200]}")
            failures += not outcome.exact
            print(f"{outcome.row()}\n    ({time.monotonic() - started:.0f} s)", flush=True)
            if args.output and outcome.output:
                print("    | " + outcome.output.rstrip().replace("\n", "\n    | "))
    print(f"{failures} scenario runs not exact" if failures else "every scenario ended exact")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
