"""`geotarget ingest`: bulk ping files, validated column-wise, each ping stored with the fences it was inside."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from typer.testing import CliRunner

from api.cli import app as cli
from geotarget.measurement import ingest
from geotarget.measurement.devices import device_key
from geotarget.measurement.ingest import DeviceKeys, ingest_file
from geotarget.measurement.reporting import ReportRequest
from geotarget.store.repository import EVERYONE
from tests.conftest import make_settings
from tests.fixtures import ALFAMA_CAFE

ALFAMA = shapely.geometry.shape(ALFAMA_CAFE["geometry"])


def test_a_csv_with_good_and_bad_rows_is_stored_and_summarised(client, cafe, runtime, tmp_path):
    client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers)
    rows = [
        ("phone-a", 38.71125, -9.13015, "2026-11-20T10:00:00Z", 5),  # inside the café
        ("phone-a", 38.71125, -9.13015, "2026-11-20T10:00:00+00:00", 5),  # the same ping again
        ("phone-b", 38.7200, -9.1400, "1795000000", 12),  # epoch seconds, outside
        ("phone-c", 123.456, 678.9, "2026-11-20T10:00:00Z", 5),  # the impossible OpenRTB coordinates
        ("phone-d", 38.71125, -9.13015, "2026-11-20 10:00:00", 5),  # no offset: whose clock?
        ("phone-e", float("nan"), -9.13, "2026-11-20T10:00:00Z", 5),
        ("", 38.71125, -9.13015, "2026-11-20T10:00:00Z", 5),
        ("phone-f", 38.71125, -9.13015, "2026-11-20T10:05:00Z", -3),
    ]
    path = tmp_path / "pings.csv"
    pd.DataFrame(rows, columns=["device_id", "lat", "lon", "ts", "accuracy_m"]).to_csv(path, index=False)
    summary = ingest_file(path, runtime.events, "secret", runtime.catalog.index, set())
    assert (summary.rows, summary.accepted) == (8, 3)
    assert {reason: n for reason, n in summary.rejected.items() if n} == {
        "lat/lon outside ±90/±180": 1,
        "ts not ISO 8601 with an offset, nor epoch seconds": 1,
        "lat/lon not a finite number": 1,
        "device_id missing or longer than 200": 1,
        "accuracy_m outside 0–100,000": 1,
    }
    stored = pd.concat(pq.read_table(f).to_pandas() for f in runtime.events.files())
    assert stored.event_id.nunique() == 2  # the repeated ping has the same id
    for _, ping in stored.iterrows():
        assert (len(ping.fences) > 0) == ALFAMA.covers(shapely.Point(ping.lon, ping.lat))


def test_a_real_bus_track_makes_visits_at_a_stop(client, cafe, runtime, tmp_path, shared_data):
    bus = pd.read_csv(shared_data / "liverpool_bus_route14_outbound.csv")
    # The feed's clock is UK local time; in January that is UTC, so the offset can be stated.
    pings = pd.DataFrame(
        {
            "device_id": "bus-" + bus.vehicle_id.astype(str),
            "lat": bus.latitude,
            "lon": bus.longitude,
            "ts": bus.timestamp.str.replace(" ", "T") + "Z",
        }
    )
    path = tmp_path / "bus.parquet"
    pings.to_parquet(path)
    stop = {
        "type": "Feature",
        "properties": {"name": "Queen Square stop", "radius_m": 150},
        "geometry": {"type": "Point", "coordinates": [-2.925173, 53.44451]},
    }
    fence = client.post("/v1/geofences", json=stop, headers=cafe.headers).json()["id"]
    summary = ingest_file(path, runtime.events, "secret", runtime.catalog.index, set())
    assert summary.accepted == len(bus)
    runtime.reports.k = 1
    report = runtime.reports.reach(
        ReportRequest(
            geofence_id=fence, first=pd.Timestamp("2026-01-26").date(), last=pd.Timestamp("2026-01-26").date()
        ),
        EVERYONE,
        None,
    )
    row = report["rows"][0]
    assert row["visitors"] == bus.vehicle_id.nunique()
    assert row["visits"] >= row["visitors"]  # the buses pass the stop on several trips


def test_the_cli_reports_a_missing_column(tmp_path, redis_url):
    path = tmp_path / "bad.csv"
    path.write_text("device,lat,lon,ts\nx,1,2,3\n")
    settings = make_settings(tmp_path, redis_url, f"sqlite:///{tmp_path / 'db.sqlite'}")
    env = {f"GEOTARGET_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}
    result = CliRunner().invoke(cli, ["ingest", str(path)], env=env)
    assert result.exit_code == 2
    assert "missing column(s): device_id" in result.output


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ingesting_a_file_twice_stores_each_ping_once_for_reports(client, cafe, runtime, tmp_path, suffix):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    frame = pd.DataFrame(
        {
            "device_id": [f"d{i % 7}" for i in range(70)],
            "lat": 38.71125,
            "lon": -9.13015,
            "ts": [f"2026-11-20T{8 + i // 60:02d}:{i % 60:02d}:00Z" for i in range(70)],
        }
    )
    path = tmp_path / f"pings{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    for _ in range(2):
        ingest_file(path, runtime.events, "secret", runtime.catalog.index, set())
    runtime.reports.k = 1
    day = pd.Timestamp("2026-11-20").date()
    row = runtime.reports.reach(ReportRequest(geofence_id=fence, first=day, last=day), EVERYONE, None)["rows"][0]
    assert (row["visitors"], row["visits"]) == (7, 7)


def test_a_typed_parquet_with_missing_devices_keys_every_good_row_by_its_own_device(runtime, tmp_path):
    """Typed Parquet takes the columnar path (devices hashed once each, in Arrow): a missing device id or a bad
    time is refused in its row and every stored row carries its own device's key, across chunks."""
    at = 1_795_000_000
    table = pa.table(
        {
            "device_id": pa.array(["phone-a", None, "phone-b", "phone-a", "phone-c", "phone-b"], pa.large_string()),
            "lat": [38.7112, 38.7112, 38.72, 38.7112, 38.72, 38.72],
            "lon": [-9.1301, -9.1301, -9.14, -9.1301, -9.14, -9.14],
            "ts": pa.array([at, at, at + 60, at + 86_400, 5 * 10**10, at + 120], pa.int64()),
        }
    )
    path = tmp_path / "pings.parquet"
    pq.write_table(table, path)
    summary = ingest_file(path, runtime.events, "secret", runtime.catalog.index, set(), rows_per_chunk=4)
    assert (summary.rows, summary.accepted) == (6, 4)
    assert summary.rejected["device_id missing or longer than 200"] == 1
    assert summary.rejected["ts not ISO 8601 with an offset, nor epoch seconds"] == 1
    stored = pa.concat_tables(pq.read_table(f) for f in runtime.events.files()).to_pandas()
    expected = {("phone-a", at), ("phone-b", at + 60), ("phone-a", at + 86_400), ("phone-b", at + 120)}
    got = {(key, int(ts.timestamp())) for key, ts in zip(stored.device_key, stored.ts, strict=True)}
    assert got == {(device_key("secret", device), moment) for device, moment in expected}


def test_an_erased_device_s_pings_are_refused_and_the_others_kept(runtime, tmp_path):
    table = pa.table(
        {
            "device_id": ["gone", "kept", "gone", "kept"],
            "lat": [38.7112] * 4,
            "lon": [-9.1301] * 4,
            "ts": pa.array([1_795_000_000 + 60 * i for i in range(4)], pa.int64()),
        }
    )
    pq.write_table(table, path := tmp_path / "pings.parquet")
    erased = {device_key("secret", "gone")}
    summary = ingest_file(path, runtime.events, "secret", runtime.catalog.index, erased, rows_per_chunk=3)
    assert (summary.accepted, summary.rejected["device erased"]) == (2, 2)
    stored = pa.concat_tables(pq.read_table(f) for f in runtime.events.files())
    assert set(stored["device_key"].to_pylist()) == {device_key("secret", "kept")}


def test_device_keys_are_each_id_s_hmac_across_chunks_and_after_the_memory_is_full(monkeypatch):
    monkeypatch.setattr(ingest, "KEYS_REMEMBERED", 3)
    keys = DeviceKeys("secret")
    for ids in (["a", "b"], ["b", "c", "a"], ["d", "e"], [], ["a", "e"]):
        assert keys.of(pa.array(ids, pa.string())).to_pylist() == [device_key("secret", d) for d in ids]
