"""Alerts reach the operator through a real SMTP server (`aiosmtpd`) and a webhook receiver, both started by the
test: a load run that failed and the stall that failed it, a failed gate with its checks, a parked notice — each
once, with case, level, worker, cause and the command that shows more, however often the sensor ticks."""

from __future__ import annotations

from collections import Counter

import pytest

from loader_assets.engine.runner import LevelFailed
from loader_assets.operations import loading
from loader_assets.operations.context import Context
from loader_assets.problems import WorkerDown
from loader_assets_tests.conftest import Platform
from loader_assets_tests.defs.test_pipeline import delete_one_director_row
from loader_assets_tests.recovery.helpers import level_notices, sensor_context, writes_blocked
from loader_assets_tests.servers import smtp_server, webhook_receiver

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def test_a_failed_run_a_stall_a_failed_gate_and_a_parked_notice_are_told_once_by_mail_and_webhook(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = platform.sample_case(chunks=2, rows_per_chunk=5).case
    gated = platform.sample_case(chunks=2, rows_per_chunk=5, seed=3).case
    broken = platform.sample_case(chunks=2, rows_per_chunk=5, seed=5).case
    with smtp_server() as (smtp_port, mails), webhook_receiver() as (hook, posts):
        for name, value in {"LOADER_ALERT_SMTP_HOST": "127.0.0.1", "LOADER_ALERT_SMTP_PORT": str(smtp_port),
                            "LOADER_ALERT_TO": "ops@example.org", "LOADER_ALERT_WEBHOOK": hook,
                            "LOADER_STALL_SECONDS": "2", "LOADER_MAX_ATTEMPTS": "1"}.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        ctx = Context.from_env()
        try:
            # A stall: worker1 takes no write; the watchdog gives its statement up and the run fails.
            with writes_blocked(platform, "worker1"), pytest.raises(WorkerDown, match=r"worker worker1 .* stalled"):
                loading.load(ctx, stalled, level=1)
            # A failed gate: one director row missing on its worker.
            loading.load(ctx, gated, level=1)
            delete_one_director_row(platform, gated)
            with pytest.raises(LevelFailed, match="check objectids_on_workers"):
                loading.load(ctx, gated, level=2)
            # A parked notice: a malformed file, failed on its only attempt (LOADER_MAX_ATTEMPTS=1).
            bad = next(n for n in level_notices(platform, broken, 1) if n.table == "Object" and not n.overlap)
            (platform.root / "cases" / broken / bad.path).write_text("not a row of Object\n")
            with pytest.raises(LevelFailed):
                loading.load(ctx, broken, level=1)
        finally:
            ctx.close()

        alerts = platform.definitions().resolve_sensor_def("alerts")
        first = alerts(sensor_context(platform))
        second = alerts(sensor_context(platform))
        posted = posts.wait(4, timeout=30)
        mailed = mails.wait(4, timeout=30)

    told = Counter((post["kind"], post["case"]) for post in posted)
    assert {("run", stalled), ("stall", stalled), ("gate", gated), ("parked", broken)} <= set(told), told
    assert len(posted) == len({post["key"] for post in posted}), "each alert once"
    assert len(mailed) == len(posted), "the same alerts by mail"
    assert second.skip_message == "0 alerts sent" and first.skip_message == f"{len(posted)} alerts sent"

    by_kind = {post["kind"]: post for post in posted if post["case"] in (stalled, gated, broken)}
    stall = by_kind["stall"]
    assert (stall["level"], stall["worker"]) == (1, "worker1") and "stalled" in stall["cause"]
    assert "objectids_on_workers" in by_kind["gate"]["cause"] and by_kind["gate"]["level"] == 2
    assert by_kind["parked"]["more"].startswith("loader-assets history ") and bad.path in by_kind["parked"]["cause"]
    assert "stalled" in by_kind["run"]["cause"] and by_kind["run"]["level"] == 1

    subjects = sorted(str(mail["Subject"]) for mail in mailed)
    assert f"[loader-assets] {gated}/Object: a gate failed" in subjects, subjects
    [gate_mail] = [mail for mail in mailed if str(mail["Subject"]).endswith("a gate failed")]
    assert gate_mail["To"] == "ops@example.org"
    text = gate_mail.get_payload(decode=True).decode()
    assert f"case: {gated}" in text and "level: 2" in text and f"more: loader-assets status --case {gated}" in text
