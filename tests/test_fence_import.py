"""Imports that scale (DESIGN §9.2): a GeoParquet streamed in batches, a re-run after a crash half-way stores
nothing twice, external ids make bulk pages idempotent, and the merchant's quota holds."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from typer.testing import CliRunner

from api.cli import app as cli
from geofences.batches import feature_batches
from geofences.formats import UploadLimits
from geotarget.catalog import accounts
from geotarget.catalog.importing import file_digest, import_batches
from geotarget.runtime import Runtime
from tests.conftest import make_settings
from tests.fixtures import ALFAMA_CAFE

LISBON = (-9.1394, 38.7139)


def stores(n: int, *, named: bool = False, crs: int = 4326) -> gpd.GeoDataFrame:
    """``n`` store points on a spiral around Lisbon, 30 m circles, optionally with the merchant's own ids."""
    points = [
        shapely.Point(LISBON[0] + 0.0004 * math.sqrt(i) * math.cos(i), LISBON[1] + 0.0003 * math.sqrt(i) * math.sin(i))
        for i in range(n)
    ]
    columns: dict[str, object] = {"name": [f"Store {i}" for i in range(n)], "radius_m": [30.0] * n}
    if named:
        columns["external_id"] = [f"store-{i}" for i in range(n)]
    frame = gpd.GeoDataFrame(columns, geometry=points, crs=4326)
    return frame if crs == 4326 else frame.to_crs(crs)


def write(frame: gpd.GeoDataFrame, path: Path) -> Path:
    frame.to_parquet(path, row_group_size=700)
    return path


@pytest.fixture
def importer(settings, runtime: Runtime) -> tuple[dict[str, str], str]:
    merchant = accounts.create_merchant(runtime.repository, "Chain", "Europe/Lisbon").id
    env = {f"GEOTARGET_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}
    return env, merchant


def run_import(env: dict[str, str], path: Path, merchant: str) -> str:
    done = CliRunner().invoke(cli, ["fences", "import", str(path), "--merchant", merchant], env=env)
    assert done.exit_code == 0, done.output
    return " ".join(done.output.split())


@pytest.mark.slow
def test_a_geoparquet_is_streamed_in_batches_and_every_store_is_served(importer, runtime, tmp_path):
    env, merchant = importer
    path = write(stores(4_500), tmp_path / "stores.parquet")
    assert [len(b) for b in feature_batches(path, 2_000, UploadLimits(max_features=1))] == [2_000, 2_000, 500]
    assert "4,500 fence(s) imported, 0 already stored, 0 rejected" in run_import(env, path, merchant)
    runtime.catalog.sync(runtime.repository)
    assert len(runtime.catalog.index) == 4_500
    inside = runtime.catalog.index.query(runtime.catalog.index.shape(next(iter(runtime.catalog.index))).seeds()[0])
    assert inside


@pytest.mark.slow
def test_a_rerun_after_a_crash_half_way_stores_the_rest_and_nothing_twice(importer, runtime, tmp_path):
    env, merchant = importer
    path = write(stores(5_000), tmp_path / "stores.parquet")

    def crashing() -> object:
        for n, batch in enumerate(feature_batches(path, 2_000, UploadLimits())):
            if n == 2:
                raise KeyboardInterrupt  # the operator's ^C, or the machine going down
            yield batch

    with pytest.raises(KeyboardInterrupt):
        import_batches(runtime.fences, merchant, crashing(), file_digest(path))
    stored = len(runtime.repository.fences(merchant))
    assert stored in (2_000, 4_000)  # whole batches; the ones in flight are lost
    assert f"{5_000 - stored:,} fence(s) imported, {stored:,} already stored, 0 rejected" in run_import(
        env, path, merchant
    )
    assert "0 fence(s) imported, 5,000 already stored" in run_import(env, path, merchant)
    assert len(runtime.repository.fences(merchant)) == 5_000


@pytest.mark.slow
def test_external_ids_keep_a_changed_file_from_storing_a_store_twice(importer, runtime, tmp_path):
    env, merchant = importer
    first = write(stores(300, named=True), tmp_path / "v1.parquet")
    assert "300 fence(s) imported" in run_import(env, first, merchant)
    grown = stores(350, named=True)
    grown["name"] = [f"Renamed {i}" for i in range(350)]  # another file: the rows' own ids still match
    assert "50 fence(s) imported, 300 already stored" in run_import(
        env, write(grown, tmp_path / "v2.parquet"), merchant
    )
    assert len(runtime.repository.fences(merchant)) == 350


def test_store_numbers_are_external_ids_too(importer, runtime, tmp_path):
    env, merchant = importer
    frame = stores(20)
    frame["external_id"] = range(1_000, 1_020)  # an integer column, as exports of store numbers have
    path = write(frame, tmp_path / "numbered.parquet")
    assert "20 fence(s) imported" in run_import(env, path, merchant)
    frame["name"] = "Renamed"
    assert "0 fence(s) imported, 20 already stored" in run_import(env, write(frame, tmp_path / "v2.parquet"), merchant)
    assert sorted(f.external_id for f in runtime.repository.fences(merchant))[:2] == ["1000", "1001"]


def test_a_projected_geoparquet_is_read_in_wgs84(importer, runtime, tmp_path):
    env, merchant = importer
    path = write(stores(10, crs=3763), tmp_path / "portugal-tm06.parquet")  # PT-TM06, metres
    run_import(env, path, merchant)
    lon, lat = next(f.geometry["coordinates"] for f in runtime.repository.fences(merchant) if f.name == "Store 0")
    assert (round(lon, 6), round(lat, 6)) == LISBON


@pytest.mark.slow
def test_the_quota_stops_an_import_at_a_batch_and_says_so(tmp_path, redis_url, database_url):
    settings = make_settings(tmp_path, redis_url, database_url, max_fences_per_merchant=2_500)
    runtime = Runtime.open(settings)
    try:
        merchant = accounts.create_merchant(runtime.repository, "Chain", "Europe/Lisbon").id
        env = {f"GEOTARGET_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}
        path = write(stores(3_000), tmp_path / "stores.parquet")
        done = CliRunner().invoke(cli, ["fences", "import", str(path), "--merchant", merchant], env=env)
        assert done.exit_code == 2 and "at most 2,500 geofences" in " ".join(done.output.split())
        assert len(runtime.repository.fences(merchant)) == 2_000  # the first batch, whole; not a fence more
    finally:
        runtime.close()


def test_a_bulk_page_sent_twice_creates_nothing_twice(client, cafe):
    page = {
        "type": "FeatureCollection",
        "features": [
            {**ALFAMA_CAFE, "properties": {**ALFAMA_CAFE["properties"], "external_id": "lisbon-001"}},
            {**ALFAMA_CAFE, "properties": {**ALFAMA_CAFE["properties"], "external_id": "lisbon-002"}},
        ],
    }
    first = client.post("/v1/geofences/bulk", json=page, headers=cafe.headers).json()
    again = client.post("/v1/geofences/bulk", json=page, headers=cafe.headers).json()
    assert (first["created"], first["existing"], again["created"], again["existing"]) == (2, 0, 0, 2)
    assert [r["id"] for r in again["results"]] == [r["id"] for r in first["results"]]
    assert [r["status"] for r in again["results"]] == ["existing", "existing"]
    listed = client.get("/v1/geofences", headers=cafe.headers).json()["features"]
    assert sorted(f["properties"]["external_id"] for f in listed) == ["lisbon-001", "lisbon-002"]


def test_an_external_id_names_one_fence_of_a_merchant(client, cafe, bakery):
    def feature(external_id: object) -> dict[str, object]:
        return {**ALFAMA_CAFE, "properties": {**ALFAMA_CAFE["properties"], "external_id": external_id}}

    kept = client.post("/v1/geofences", json=feature("store-7"), headers=cafe.headers)
    assert kept.status_code == 201
    taken = client.post("/v1/geofences", json=feature("store-7"), headers=cafe.headers)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "duplicate_external_id"
    assert kept.json()["id"] in taken.json()["error"]["message"]
    assert client.post("/v1/geofences", json=feature("store-7"), headers=bakery.headers).status_code == 201

    other = client.post("/v1/geofences", json=feature("store-8"), headers=cafe.headers).json()["id"]
    patched = client.patch(
        f"/v1/geofences/{other}", json={"properties": {"external_id": "store-7"}}, headers=cafe.headers
    )
    assert patched.status_code == 409 and patched.json()["error"]["field"] == "properties.external_id"

    twice = {"type": "FeatureCollection", "features": [feature("x-1"), feature("x-1")]}
    rows = client.post("/v1/geofences/bulk", json=twice, headers=cafe.headers).json()["results"]
    assert [r["status"] for r in rows] == ["created", "rejected"]
    assert rows[1]["error"]["field"] == "features[1].properties.external_id"

    for bad in ("", "x" * 129, 42, "tab\there"):
        response = client.post("/v1/geofences", json=feature(bad), headers=cafe.headers)
        assert response.status_code == 422 and response.json()["error"]["field"] == "properties.external_id"
