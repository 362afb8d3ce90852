"""`loader-assets` as an operator meets its expected failures: one line naming the cause and the fix, an exit
code of its own, no traceback; unknown cases, notices, runs and schedules exit non-zero."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loader_assets import capacity, levels
from loader_assets.capacity import PhaseRate, Rates
from loader_assets.cli import main
from loader_assets.operations import scheduling
from loader_assets.problems import Exit
from loader_assets.qserv.sample import write_sample_case
from loader_assets.workers import local
from loader_assets_tests.conftest import Platform
from loader_assets_tests.recovery.helpers import assert_exact, fill, tmpfs

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str, command: str, *words: str) -> None:
    """The whole of stderr is one line naming the cause and the fix (after `;`), no traceback."""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"loader-assets {command}: ") and "; " in err and "Traceback" not in err
    for word in words:
        assert word in err, err


def printed_table(out: str, head: list[str]) -> list[dict[str, str]]:
    """The rows of the table printed under the header whose first column names are `head` (a cell without spaces
    but the last)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[: len(head)] == head)
    names = lines[start].split()
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(dict(zip(names, line.split(maxsplit=len(names) - 1), strict=False)))
    return rows


def dead_address() -> str:
    """A loopback port nothing listens on: a server that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"mysql+pymysql://root@127.0.0.1:{probe.getsockname()[1]}"


def test_servers_down_catalog_unreachable_paused_and_gated_each_say_why_and_what_to_do(
    platform: Platform, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    workers = dict(platform.cluster.workers)

    with monkeypatch.context() as down:
        down.setenv(
            "LOADER_WORKERS", ",".join(f"{n}={dead_address() if n == 'worker2' else s.url}" for n, s in workers.items())
        )
        code, _, err = run(capsys, "load", case)
    assert code == Exit.WORKER_DOWN
    one_line(err, "load", "worker2", "does not answer", "loader-assets workers up")

    with monkeypatch.context() as down:
        down.setenv("LOADER_CZAR", dead_address())
        code, _, err = run(capsys, "load", case)
    assert code == Exit.CZAR_DOWN
    one_line(err, "load", "czar", "LOADER_CZAR")

    with monkeypatch.context() as down:
        down.setenv("LOADER_CATALOG_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")
        code, _, err = run(capsys, "status")
    assert code == Exit.CATALOG_DOWN
    one_line(err, "status", "catalog", "LOADER_CATALOG_URL")

    code, _, err = run(capsys, "load", case, "--level", "3")
    assert code == Exit.GATE_CLOSED
    one_line(err, "load", f"level 2 of case {case} (Object) is pending", "level 1 is not loaded", "--level 2")

    assert run(capsys, "pause", case)[0] == 0
    code, _, err = run(capsys, "load", case)
    assert code == Exit.CASE_PAUSED
    one_line(err, "load", "paused", f"loader-assets resume {case}")
    assert run(capsys, "resume", case)[0] == 0

    code, _, err = run(capsys, "schedule", f"case = '{case}'")
    assert code == Exit.NO_DAEMON
    one_line(err, "schedule", "no dagster-daemon", "--no-daemon")
    assert run(capsys, "schedule", "list")[1].strip() == "no schedule", "nothing was queued"


def test_unknown_cases_notices_runs_and_schedules_exit_non_zero(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, words in [
        (("status", "--case", "qcase1"), ("no case qcase1",)),
        (("load", "qcase1"), ("no case qcase1",)),
        (("plan", "qcase1", "--workers", "2"), ("no case qcase1",)),
        (("pause", "qcase1"), ("no case qcase1",)),
        (("history", "999999"), ("no notice 999999",)),
        (("reset", "999999"), ("no notice 999999",)),
        (("release", "--run", "not-a-run"), ("no run not-a-run",)),
        (("schedule", "cancel", "42"), ("no schedule 42",)),
    ]:
        code, _, err = run(capsys, *argv)
        assert code == Exit.UNKNOWN, (argv, err)
        one_line(err, argv[0], *words)


def test_register_with_load_loads_the_new_case_level_by_level_in_one_command(
    platform: Platform, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    case = f"c{uuid.uuid4().hex[:8]}"
    root = write_sample_case(tmp_path / case, chunks=2, rows_per_chunk=5, database=case)
    code, out, err = run(capsys, "register", str(root), "--load")
    assert code == 0, err
    assert out.startswith(f"registered case {case} ") and "per worker:" in out
    for level in levels.LOAD_LEVELS:
        assert_exact(platform, case, level)
    # It ends with the status: every table's notices done, every gate passed.
    counts, gates = (printed_table(out, ["case", "level", "table", column]) for column in ("ready", "status"))
    assert {row["table"] for row in counts} == {"Object", "Filter", "Source", "ForcedSource"}
    assert all(row["done"] == row["total"] != "0" for row in counts), out
    assert [(row["level"], row["status"]) for row in gates] == [("2", "passed"), ("4", "passed"), ("4", "passed")], out
    assert run(capsys, "load", case)[0] == 0  # a load after it finds nothing left to do


def test_plan_predicts_each_phase_of_a_registered_case_for_each_worker_count(
    platform: Platform, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    code, out, _ = run(capsys, "plan", case, "--workers", "1", "10")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith(
        f"case {case}: 9 notices"
    )  # Object, overlap, Source, ForcedSource x2, Filter
    assert "1 workers" in lines[2] and "10 workers" in lines[2]
    assert [line.split()[0:2] for line in lines[3:9]] == [["register", "9"], ["start", "0"], *(
        ["level", str(level)] for level in levels.ALL)]  # fmt: skip
    assert lines[9].startswith("total") and lines[10].startswith("catalog ~")

    rates = Rates({phase: PhaseRate(2.0, 0.0, 0.0, 0.0) for phase in capacity.PHASES}, 1e6, 2e6, measured="by hand")
    rates.save(tmp_path / "rates.json")
    out = run(capsys, "plan", case, "--workers", "3", "--rates", str(tmp_path / "rates.json"))[1]
    assert "rates: by hand" in out and out.splitlines()[9].split() == ["total", "12.0", "s"]
    assert out.splitlines()[10] == "catalog ~9.0 MB, Dagster instance ~18 MB"

    shipped = json.loads(capacity.RATES_FILE.read_text())
    wrongs = {"missing.json": None, "not_json.json": "{", "a_string.json": '"rates"', "no_phase.json": {**shipped, "phases": {}},
              "a_word.json": {**shipped, "catalog_bytes_per_notice": "many"}}  # fmt: skip
    for name, content in wrongs.items():
        if content is not None:
            (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
        code, _, err = run(capsys, "plan", case, "--rates", str(tmp_path / name))
        assert code == Exit.USAGE, err
        one_line(err, "plan", str(tmp_path / name), "shaped like the shipped")


def test_schedule_of_a_big_selection_reads_a_preview_and_hands_over_every_notice(
    platform: Platform, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    monkeypatch.setitem(scheduling.select.__kwdefaults__, "limit", 2)  # the frame read holds 2 of the 9 notices
    code, out, _ = run(capsys, "schedule", f"case = '{case}'", "--no-daemon")
    assert code == 0 and out.startswith("schedule 1: 9 notices handed to the run queue")
    listed = run(capsys, "schedule", "list")[1].splitlines()[2].split()
    assert listed[:3] == ["1", "pending", "9"]


def test_a_done_notice_is_reset_only_with_force_and_schedules_are_listed_and_cancelled(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    case = platform.sample_case(chunks=1, rows_per_chunk=5).case
    assert run(capsys, "load", case, "--level", "1")[0] == 0
    code, _, err = run(capsys, "reset", "1")
    assert code == Exit.USAGE
    one_line(err, "reset", "notices 1 are done", "--force")
    assert run(capsys, "reset", "1", "--force")[1].strip() == "1 notice ready again"

    code, out, _ = run(capsys, "schedule", f"case = '{case}' AND level = 3", "--no-daemon")
    assert code == 0 and out.startswith("schedule 1: ")
    listed = run(capsys, "schedule", "list")[1]
    assert "pending" in listed.splitlines()[2]
    assert run(capsys, "schedule", "cancel", "1")[1].startswith("schedule 1 cancelled")
    assert "cancelled" in run(capsys, "schedule", "list")[1].splitlines()[2]


def test_drop_retires_a_case_everywhere_but_never_while_a_notice_is_held(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import select

    from loader_assets.catalog.schema import cases
    from loader_assets.catalog.store import Owner
    from loader_assets.defs.chunk_partitions import chunk_partitions
    from loader_assets.workers.cluster import META_DB

    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    other = platform.sample_case(chunks=1, rows_per_chunk=5).case
    assert run(capsys, "load", case, "--level", "1")[0] == 0

    code, _, err = run(capsys, "drop", case)
    assert code == Exit.USAGE
    one_line(err, "drop", "--force")

    [claim] = platform.store.claim([_a_director_notice(platform, case)], Owner.current("holder"), force=True)
    code, _, err = run(capsys, "drop", case, "--force")
    assert code == Exit.FAILED
    one_line(err, "drop", "held by run holder", "nothing retired")
    assert _databases(platform, case) == set(platform.cluster.workers), "nothing was dropped"
    platform.store.finish(claim.attempt_id, "failed", error="given up")

    config = platform.ctx.settings.dagster_home / "dagster.yaml"
    written = config.read_text()
    config.write_text("storage: [")  # an instance that does not open: nothing goes, or its partitions would stay
    code, _, err = run(capsys, "drop", case, "--force")
    config.write_text(written)
    assert code == Exit.INSTANCE_DOWN
    one_line(err, "drop", "dagster.yaml", "`loader-assets init`")
    assert _databases(platform, case) == set(platform.cluster.workers), "nothing was dropped"
    with platform.store.db.read() as connection:
        assert connection.execute(select(cases.c.state).where(cases.c.case == case)).scalar_one() == "active", "paused"

    code, out, _ = run(capsys, "drop", case, "--force")
    assert code == 0, out
    assert _databases(platform, case) == set()
    with platform.cluster.czar.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {META_DB}.database_family WHERE `database` = %s", (case,))
        assert cursor.fetchone()[0] == 0
    assert run(capsys, "status", "--case", case)[0] == Exit.UNKNOWN
    assert platform.instance.get_dynamic_partitions(chunk_partitions(case).name) == []
    assert run(capsys, "status", "--case", other)[0] == 0, "the case beside it is untouched"


@pytest.fixture
def czar_never_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A czar without a placement schema yet, as a fresh cluster's: the session's czar has one, so the name looked
    for is one it never had (only the czar's placement is read under that name; the census and the index keep
    theirs)."""
    from loader_assets.workers import cluster

    monkeypatch.setattr(cluster, "META_DB", f"qservMeta_{uuid.uuid4().hex[:8]}")


def test_a_case_never_loaded_verifies_and_drops_on_a_czar_that_never_placed_a_chunk(
    platform: Platform, capsys: pytest.CaptureFixture[str], czar_never_placed: None
) -> None:
    """A newcomer's path: a fresh cluster, a case registered by mistake, counted and dropped before any load."""
    from loader_assets.operations import loading

    case = platform.sample_case(chunks=1, rows_per_chunk=5).case

    counted = loading.verify(platform.ctx, case).frame
    assert (counted["file"] > 0).all() and (counted["catalog"] == 0).all() and (counted["workers"] == 0).all()
    assert not counted["exact"].any()

    code, out, err = run(capsys, "drop", case, "--force")
    assert code == 0, err
    assert f"catalog: case {case} deleted" in out
    assert run(capsys, "status", "--case", case)[0] == Exit.UNKNOWN


def test_doctor_checks_every_part_before_anything_was_placed(
    platform: Platform, capsys: pytest.CaptureFixture[str], czar_never_placed: None
) -> None:
    """On a czar that never placed a chunk, a registered case's disk needs are spread over the workers (doctor
    crashed reading the placement table the czar did not have)."""
    platform.sample_case(chunks=1, rows_per_chunk=5)

    code, out, err = run(capsys, "doctor")
    assert "Traceback" not in err
    for part in ["catalog", "czar", *(f"disk of {worker}" for worker in platform.cluster.workers), "daemon"]:
        assert part in out, out
    assert code == Exit.NO_DAEMON, out  # every server answers; no dagster-daemon beats for this instance


def test_sample_and_metrics_refuse_a_place_they_cannot_use_in_one_line(
    platform: Platform, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a_file").write_text("")
    for out_dir in [tmp_path / "a_file", tmp_path / "a_file" / "below"]:
        code, _, err = run(capsys, "sample", str(out_dir))
        assert code == Exit.USAGE
        one_line(err, "sample", f"cannot write a sample case to {out_dir}", "can write to")
    with pytest.raises(SystemExit) as refused:  # argparse's own usage error
        main(["metrics", "--port", "99999"])
    assert refused.value.code == Exit.USAGE
    assert "'99999' is not a TCP port, 0 to 65535" in capsys.readouterr().err


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs of its own, unmounted afterwards."""
    (tmp_path / "disk").mkdir()
    with tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def test_init_and_workers_up_on_a_full_or_read_only_disk_name_the_directory_and_its_setting(
    platform: Platform, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, small_disk: Path
) -> None:
    monkeypatch.setenv("LOADER_STATE_DIR", str(small_disk / "state"))
    monkeypatch.setenv("DAGSTER_HOME", str(small_disk / "state" / "dagster"))
    fill(small_disk)  # returns once a write found no space left
    for full in ["No space left on device", "Read-only file system"]:
        code, _, err = run(capsys, "init")
        assert code == Exit.USAGE
        one_line(err, "init", f"cannot write {small_disk / 'state'}", full, "DAGSTER_HOME")
        code, _, err = run(capsys, "workers", "up")
        assert code == Exit.USAGE
        one_line(err, "workers", f"cannot write {small_disk / 'state'}", full, "LOADER_STATE_DIR")
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)


def test_verbose_before_or_after_the_command_adds_the_traceback_to_the_line(platform: Platform) -> None:
    from loader_assets_tests.test_operator_faults import loader_assets

    assert "Traceback" not in loader_assets("status", "--case", "nope").stderr
    for argv in [
        ("-v", "status", "--case", "nope"),
        ("status", "--case", "nope", "-v"),
        ("selections", "delete", "nope", "-v"),
    ]:
        done = loader_assets(*argv)
        assert done.returncode == Exit.UNKNOWN and "Traceback" in done.stderr, argv
        command = argv[1] if argv[0] == "-v" else argv[0]
        assert done.stderr.splitlines()[-1].startswith(f"loader-assets {command}: no "), done.stderr


def test_workers_up_with_a_server_binary_that_cannot_run_names_its_setting(
    platform: Platform, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "mariadbd").write_text("")  # not executable
    monkeypatch.setenv("LOADER_STATE_DIR", str(tmp_path / "state"))
    try:
        for setting, value in [
            ("LOADER_MARIADBD", tmp_path / "mariadbd"),
            ("LOADER_MARIADB_INSTALL_DB", tmp_path / "none"),
        ]:
            with monkeypatch.context() as wrong:
                wrong.setenv(setting, str(value))
                code, _, err = run(capsys, "workers", "up", "--count", "1")
            assert code == Exit.USAGE
            one_line(err, "workers", f"cannot run {value}", setting)
    finally:  # the czar, made by the first try, starts in the second (its worker cannot be made): not left running
        local.stop_cluster(tmp_path / "state")


def _a_director_notice(platform: Platform, case: str) -> int:
    from loader_assets.catalog.notices import notice_ids

    return notice_ids(platform.store.db, case, level=1)[0]


def _databases(platform: Platform, case: str) -> set[str]:
    """The workers holding the case's database."""
    found = set()
    for name, server in platform.cluster.workers.items():
        with server.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (case,))
            if cursor.fetchone():
                found.add(name)
    return found
