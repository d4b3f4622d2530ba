"""Reports, audiences, lift and variant counts are one SQL definition each, run by DuckDB or by Apache Spark (a real
standalone master and worker on loopback) over the same files with the same results, raw and rolled up."""

from __future__ import annotations

import dataclasses
import functools
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlglot
from sqlglot import exp

from geotarget.runtime import Runtime
from geotarget.store.event_store import ParquetEventStore, events_to_table
from geotarget.store.report_queries import Scope, reach_figures
from geotarget.store.spark_engine import SparkEngine, to_spark
from tests.conftest import make_settings
from tests.event_history import END, START, figures_of, history
from tests.fixtures import offer_event
from tests.spark_cluster import spark_standalone

HOSTILE = "fen_'x' OR 1=1 --\\'"


def impression(event_id: str, device: str):
    return offer_event(kind="impression", event_id=event_id, at=START, device_key=device, offer_id="off_x")


def spark_store(folder, master: str) -> ParquetEventStore:
    return ParquetEventStore(folder, engine=functools.partial(SparkEngine, master=master))


@pytest.mark.slow
def test_every_report_query_gives_the_same_figures_on_spark_as_on_duckdb_raw_and_rolled_up(tmp_path, spark_master):
    events, fences = history()
    on_duckdb = ParquetEventStore(tmp_path / "events")
    on_duckdb.write(events_to_table(events[:900], fences[:900]))
    on_duckdb.write(events_to_table(events[900:], fences[900:]))
    on_spark = spark_store(tmp_path / "events", spark_master)

    expected = figures_of(on_duckdb)
    assert figures_of(on_spark) == expected
    assert len(on_duckdb.roll(END.date() + timedelta(days=1))) == 10
    assert on_spark.views().rolled_segments  # both now read the rollups of the ten closed days
    assert figures_of(on_spark) == expected
    assert any(f.metric == "visits_after_exposure" and f.value > 0 for f in expected["merchant by day"])  # type: ignore[attr-defined]
    assert expected["lift"] and all(expected["audiences"]) and expected["variants"] and expected["heatmap"]


@pytest.mark.slow
def test_hostile_values_stay_literals_on_spark(tmp_path, spark_master):
    shown = [
        offer_event(kind="impression", event_id=f"imp-{n}", at=START + timedelta(hours=n), device_key=f"dev{n}")
        for n in range(12)
    ]
    shown = [dataclasses.replace(event, offer_id="off_x", merchant_id="mer_x", fence_id=HOSTILE) for event in shown]
    on_duckdb = ParquetEventStore(tmp_path / "events")
    on_duckdb.write(events_to_table(shown))
    on_spark = spark_store(tmp_path / "events", spark_master)
    scope = Scope(fence_ids=(HOSTILE,), visit_fences=(HOSTILE,))
    expected = reach_figures(on_duckdb, scope, START, END, "Europe/Lisbon", "day", 3, whole=START.date())
    assert [(f.metric, f.value) for f in expected if f.metric == "impressions"] == [("impressions", 12.0)]
    assert reach_figures(on_spark, scope, START, END, "Europe/Lisbon", "day", 3, whole=START.date()) == expected


def test_parameters_become_typed_literals_in_the_syntax_tree_never_text():
    at = datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    sql = to_spark(
        "SELECT * FROM t WHERE a = $a AND ts >= $at AND list_contains($ids, b) AND array_length($none) = 0",
        {"a": HOSTILE, "at": at, "ids": ["x", HOSTILE], "none": []},
    )
    tree = sqlglot.parse_one(sql, read="spark")
    strings = [literal.this for literal in tree.find_all(exp.Literal) if literal.is_string]
    assert strings.count(HOSTILE) == 2 and "2026-11-02 06:30:00.000000" in strings
    assert len(list(tree.find_all(exp.Or))) == 0  # the quote inside the value opened nothing
    with pytest.raises(KeyError, match=r"\$missing"):
        to_spark("SELECT $missing", {})


@pytest.mark.slow
def test_report_engine_spark_is_what_a_runtime_reports_with(tmp_path, redis_url, spark_master):
    settings = make_settings(
        tmp_path, redis_url, f"sqlite:///{tmp_path / 'db.sqlite'}", report_engine="spark", spark_master=spark_master
    )
    runtime = Runtime.open(settings, follow=False, consume=False)
    try:
        assert isinstance(runtime.events.engine, SparkEngine)
        runtime.events.write(events_to_table([impression(f"i{n}", f"d{n}") for n in range(11)]))
        figures = reach_figures(runtime.events, Scope(), START, END, "UTC", "day", 10, whole=START.date())
        assert [(f.metric, f.value, f.devices) for f in figures if f.metric == "impressions"] == [
            ("impressions", 11.0, 11)
        ]
    finally:
        runtime.close()


@pytest.mark.slow
def test_a_query_no_executor_takes_is_cancelled_and_answers_unavailable(tmp_path):
    """A master with no worker accepts the query and never runs it: after the engine's timeout the jobs are
    cancelled and the caller gets ``report_engine_unavailable`` (503), never a hang. Its own process: one Spark
    context per process, and this test's is bound to another master."""
    script = (
        "import functools, sys\n"
        "from geotarget.store.event_store import ParquetEventStore\n"
        "from geotarget.store.spark_engine import ReportEngineUnavailable, SparkEngine\n"
        "engine = functools.partial(SparkEngine, master=sys.argv[2], timeout_s=5)\n"
        "try:\n"
        "    ParquetEventStore(sys.argv[1], engine=engine).query('SELECT count(*) FROM events', {})\n"
        "except ReportEngineUnavailable as exc:\n"
        "    print(exc.code, exc)\n"
    )
    (tmp_path / "idle").mkdir()
    with spark_standalone(tmp_path / "idle", workers=0) as idle_master:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "events"), idle_master],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.stdout.startswith("report_engine_unavailable Spark did not answer within 5 s"), done.stderr[-2_000:]
    assert time.monotonic() - started < 60
