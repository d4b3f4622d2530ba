"""`geotarget retention` and `geotarget rollup` from a shell: each waits for no consumer's housekeeping to run,
and rollup rolls only closed days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from api.cli import app as cli
from geotarget.store.event_store import events_to_table
from tests.fixtures import ping_event


def cli_env(settings):
    return {f"GEOTARGET_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}


@pytest.mark.parametrize(("command", "says"), [("retention", "raw pings older than"), ("rollup", "day(s) rolled up")])
def test_housekeeping_by_hand_waits_for_no_consumer_to_run(settings, runtime, command, says):
    assert runtime.consumer.lead()  # a consumer is at work
    busy = CliRunner().invoke(cli, [command], env=cli_env(settings))
    assert busy.exit_code == 1 and "consumer is running" in busy.output
    runtime.consumer.release()
    done = CliRunner().invoke(cli, [command], env=cli_env(settings))
    assert done.exit_code == 0, done.output
    assert says in done.output
    assert runtime.consumer.lead()  # the command gave the lock back


def test_rollup_by_hand_only_rolls_closed_days(settings, runtime):
    env = cli_env(settings)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    runtime.events.write(events_to_table([ping_event("dev1", yesterday)], [["fen_x"]]))
    done = CliRunner().invoke(cli, ["rollup"], env=env)
    assert done.exit_code == 0, done.output
    assert f"rolled up {yesterday.date().isoformat()}" in done.output and "1 day(s) rolled up" in done.output
    assert "0 day(s) rolled up" in CliRunner().invoke(cli, ["rollup"], env=env).output  # nothing stale
    again = CliRunner().invoke(cli, ["rollup", "--day", yesterday.date().isoformat()], env=env)
    assert "1 day(s) rolled up" in again.output  # asked for: rolled again
    today = CliRunner().invoke(cli, ["rollup", "--day", datetime.now(UTC).date().isoformat()], env=env)
    assert today.exit_code == 2 and "not closed yet" in today.output
    wrong = CliRunner().invoke(cli, ["rollup", "--day", "2026-13-01"], env=env)
    assert wrong.exit_code == 2 and "is not a day" in " ".join(wrong.output.split())
