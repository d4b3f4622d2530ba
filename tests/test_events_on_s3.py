"""Events kept on S3 (a real SeaweedFS on loopback) behave as events kept in a folder: the same history written to
both gives the same reach, heatmap, lift, audience and variant figures; erasure, retention and compaction rewrite
objects as they rewrite files; the serving path's events reach the bucket and its reports; a store out of reach
answers 503 and loses nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from geotarget.measurement.privacy import apply_retention
from geotarget.runtime import Runtime
from geotarget.store.event_store import EventStoreUnavailable, ParquetEventStore, events_to_table
from geotarget.store.file_area import S3Options
from geotarget.store.report_queries import Scope, reach_figures
from tests.conftest import make_settings, new_merchant
from tests.event_history import END, START, figures_of, history
from tests.fixtures import impressions, offer_event


@pytest.fixture
def on_s3(s3_server) -> ParquetEventStore:
    return ParquetEventStore(s3_server.new_prefix(), s3_server.options)


def test_the_same_history_gives_the_same_figures_from_a_bucket_as_from_a_folder(tmp_path, on_s3):
    events, fences = history()
    in_folder = ParquetEventStore(tmp_path / "events")
    for store in (in_folder, on_s3):
        store.write(events_to_table(events[:900], fences[:900]))
        store.write(events_to_table(events[900:], fences[900:]))

    expected = figures_of(in_folder)
    assert figures_of(on_s3) == expected
    assert len(on_s3.roll(END.date() + timedelta(days=1))) == 10  # rollups in the bucket: the same figures again
    assert figures_of(on_s3) == expected
    assert any(f.metric == "visitors" and f.value > 0 for f in expected["merchant by day"])  # type: ignore[attr-defined]
    assert expected["lift"] and all(expected["audiences"]) and expected["variants"]
    names = [path.removeprefix(on_s3.area.base + "/") for path in on_s3.files()]
    assert names and all(n.startswith("day=2026-11-") and n.endswith(".parquet") for n in names)
    assert len(names) == len(in_folder.files())


def test_erasure_retention_and_compaction_rewrite_objects_in_the_bucket(on_s3):
    events, fences = history()
    for part in range(0, len(events), 100):  # many small batches, as consumers write them
        on_s3.write(events_to_table(events[part : part + 100], fences[part : part + 100]))
    count = "SELECT count(*) FROM read_parquet($glob) WHERE device_key = $device"

    def rows_of(device: str) -> int:
        with on_s3.reading() as db:
            return int(db.execute(count, {"glob": on_s3.glob, "device": device}).fetchone()[0])

    assert rows_of("dev07") > 0
    assert on_s3.erase_devices(["dev07"]) == sum(e.device_key == "dev07" for e in events)
    assert rows_of("dev07") == 0 and rows_of("dev08") > 0

    files_before = len(on_s3.files())
    assert on_s3.compact(min_files=2) > 0
    assert len(on_s3.files()) < files_before
    assert len({n.split("/")[-2] for n in on_s3.files()}) == len(on_s3.files())  # one object per day

    apply_retention(on_s3, retention_days=5, today=date(2026, 11, 12))
    with on_s3.reading() as db:
        old_pings = db.execute(
            "SELECT count(*) FROM read_parquet($glob) WHERE kind = 'ping' AND ts < '2026-11-07'", {"glob": on_s3.glob}
        ).fetchone()[0]
        kept_visits = db.execute("SELECT count(*) FROM read_parquet($glob) WHERE kind = 'visit'", {"glob": on_s3.glob})
        assert old_pings == 0 and kept_visits.fetchone()[0] > 0


def test_served_events_land_in_the_bucket_and_reach_the_reports(tmp_path, redis_url, s3_server):
    url = s3_server.new_prefix()
    settings = make_settings(
        tmp_path, redis_url, f"sqlite:///{tmp_path / 'db.sqlite'}", events_url=url,
        s3_endpoint_url=s3_server.options.endpoint_url, s3_access_key_id=s3_server.options.access_key_id,
        s3_secret_access_key=s3_server.options.secret_access_key, s3_region="us-east-1",
    )  # fmt: skip
    runtime = Runtime.open(settings, follow=False, consume=False)
    try:
        day = START + timedelta(hours=3)
        runtime.server.sink.append(impressions(120, day, devices=12))
        assert runtime.consumer.drain() == 120
        assert runtime.events.files() and all(f.startswith(s3_server.bucket + "/") for f in runtime.events.files())
        assert not (settings.data_dir / "events").exists()  # nothing fell back to the local disk
        figures = reach_figures(runtime.events, Scope(offer_ids=("off_x",)), START, END, "UTC", "day", k=10)
        assert [(f.metric, f.value, f.devices) for f in figures if f.metric == "impressions"] == [
            ("impressions", 120.0, 12)
        ]
    finally:
        runtime.close()


def test_a_store_out_of_reach_is_unavailable_and_the_events_wait_in_the_stream(tmp_path, redis_url, s3_server):
    """Reports answer 503 (a Busy error, never a stack); the consumer keeps its entries pending until the store is
    back, then stores every one."""
    from tests.servers import free_port

    closed = S3Options(f"http://127.0.0.1:{free_port()}", "nobody", "nothing", "us-east-1")
    url = s3_server.new_prefix()
    settings = make_settings(
        tmp_path, redis_url, f"sqlite:///{tmp_path / 'db.sqlite'}", events_url=url,
        s3_endpoint_url=closed.endpoint_url, s3_access_key_id="nobody", s3_secret_access_key="nothing",
        s3_region="us-east-1",
    )  # fmt: skip
    runtime = Runtime.open(settings, follow=False, consume=False)
    try:
        with TestClient(create_app(settings, runtime)) as client:
            merchant = new_merchant(client)
            answer = client.get(f"/v1/reports/reach?merchant_id={merchant.id}", headers=merchant.headers)
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        assert answer.json()["error"]["code"] == "event_store_unavailable"
        assert "nothing" not in answer.text  # the secret never shows
        runtime.server.sink.append(
            [
                offer_event(kind="impression", event_id=f"imp-{i}", at=START, device_key=f"dev{i}", offer_id="off_x")
                for i in range(30)
            ]
        )
        with pytest.raises(EventStoreUnavailable):
            runtime.consumer.poll(block_ms=100)
        pending = runtime.consumer.client.xpending(f"{settings.redis_prefix}:events", "event-store")
        assert pending["pending"] == 30  # read, not acknowledged: nothing lost

        runtime.consumer.store = ParquetEventStore(url, s3_server.options)  # the store is back
        assert runtime.consumer.drain() == 30
        reachable = ParquetEventStore(url, s3_server.options)
        with reachable.reading() as db:
            stored = db.execute("SELECT count(DISTINCT event_id) FROM read_parquet($g)", {"g": reachable.glob})
            assert stored.fetchone()[0] == 30
    finally:
        runtime.close()


def test_an_s3_url_must_name_a_bucket():
    from geotarget.errors import InvalidInput

    with pytest.raises(InvalidInput, match="s3://bucket/prefix"):
        ParquetEventStore("s3:///no-bucket")
