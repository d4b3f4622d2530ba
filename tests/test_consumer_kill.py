"""Killing an event consumer at any moment loses nothing and counts nothing twice: two real `geotarget consume`
processes share the stream, one of them is SIGKILLed three times mid-stream and restarted (what it left pending
is claimed by the other), then `geotarget consume --processes 2` finishes; every event is stored, each counted
once. Both with events in a folder and on S3 (a real SeaweedFS)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from geotarget.runtime import Runtime
from tests.conftest import make_settings
from tests.fixtures import impressions

EVENTS = 20_000


def start_consumer(settings, *options: str) -> subprocess.Popen[bytes]:
    s3 = {
        "GEOTARGET_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "GEOTARGET_S3_ACCESS_KEY_ID": settings.s3_access_key_id or "",
        "GEOTARGET_S3_SECRET_ACCESS_KEY": settings.s3_secret_access_key or "",
        "GEOTARGET_S3_REGION": settings.s3_region or "",
    }
    env = {
        **os.environ,
        "GEOTARGET_REDIS_URL": settings.redis_url,
        "GEOTARGET_DATABASE_URL": settings.database_url,
        "GEOTARGET_DATA_DIR": str(settings.data_dir),
        "GEOTARGET_REDIS_PREFIX": settings.redis_prefix,
        "GEOTARGET_CONSUMER_BATCH_SIZE": "400",
        "GEOTARGET_DEVICE_SECRET": "kill-test",
        "GEOTARGET_CONSUMER_CLAIM_IDLE_S": "3",  # a dead consumer's entries move on soon
        "GEOTARGET_CONSUMER_LINGER_MS": "200",
        "GEOTARGET_EVENTS_URL": settings.events_location(),
        **(s3 if settings.events_url else {}),
    }
    command = [sys.executable, "-m", "api", "consume", *options]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["folder", "s3"])
def test_sigkill_mid_batch_loses_nothing_and_doubles_nothing(tmp_path, redis_url, where, request):
    on_s3: dict[str, object] = {}
    if where == "s3":
        s3_server = request.getfixturevalue("s3_server")
        on_s3 = {"events_url": s3_server.new_prefix(), "s3_endpoint_url": s3_server.options.endpoint_url}
        on_s3 |= {"s3_access_key_id": s3_server.options.access_key_id, "s3_region": "us-east-1"}
        on_s3 |= {"s3_secret_access_key": s3_server.options.secret_access_key}
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = make_settings(tmp_path, redis_url, database, device_secret="kill-test", **on_s3)
    runtime = Runtime.open(settings, follow=False, consume=False)
    try:
        start = datetime(2026, 11, 20, 8, tzinfo=UTC)
        events = impressions(EVENTS, start, devices=97)
        for chunk in range(0, EVENTS, 2_000):
            runtime.server.sink.append(events[chunk : chunk + 2_000])
        stream = f"{settings.redis_prefix}:events"
        steady = start_consumer(settings)
        for kill_after_files in (1, 6, 14):
            consumer = start_consumer(settings)
            deadline = time.monotonic() + 60
            while len(runtime.events.files()) < kill_after_files and time.monotonic() < deadline:
                time.sleep(0.005)
            consumer.send_signal(signal.SIGKILL)
            consumer.wait()
        steady.send_signal(signal.SIGKILL)
        steady.wait()
        consumers = start_consumer(settings, "--processes", "2")
        deadline = time.monotonic() + 120
        while runtime.consumer.client.xlen(stream) and time.monotonic() < deadline:
            time.sleep(0.1)
        consumers.terminate()
        assert consumers.wait(timeout=30) == 0
        assert runtime.consumer.client.xlen(stream) == 0
        with runtime.events.connect() as db:
            rows, distinct = db.execute(
                f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{runtime.events.glob}')"
            ).fetchone()
        assert distinct == EVENTS  # nothing lost
        assert rows >= EVENTS  # a batch written just before a kill may be written again...
        from geotarget.store.report_queries import Scope, reach_figures

        figures = reach_figures(
            runtime.events, Scope(offer_ids=("off_x",)), start, start + timedelta(days=1), "UTC", "day", k=1
        )
        counted = [f for f in figures if f.metric == "impressions"]
        assert [f.value for f in counted] == [EVENTS]  # ...and is never counted twice
    finally:
        runtime.close()
