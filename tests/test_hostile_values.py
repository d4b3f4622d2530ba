"""Values that once made the server fail with a 500 (or worse) are answered with a 4xx that says what is wrong,
on SQLite and on PostgreSQL, and nothing already stored is lost."""

from __future__ import annotations

import copy
import io
import stat
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from api.main import create_app
from geotarget.runtime import Runtime
from geotarget.store import database
from geotarget.store.embedded_redis import EmbeddedRedis
from tests.conftest import ADMIN, make_settings, new_merchant
from tests.fixtures import ALFAMA_CAFE, CHIADO_KIOSK


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"x": value}
    return value


def with_properties(**extra: object) -> dict:
    fence = copy.deepcopy(ALFAMA_CAFE)
    fence["properties"].update(extra)
    return fence


def test_a_401_digit_coordinate_is_a_422(client, cafe):
    fence = copy.deepcopy(CHIADO_KIOSK)
    fence["geometry"]["coordinates"] = [10**400, 38.7]
    body = (
        '{"type": "Feature", "properties": {"radius_m": 25}, "geometry": {"type": "Point", "coordinates": [%s, 38.7]}}'
    )
    answer = client.post(
        "/v1/geofences", content=body % ("9" * 401), headers={**cafe.headers, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "out_of_range"
    bulk = {"type": "FeatureCollection", "features": [fence]}
    answer = client.post("/v1/geofences/bulk", json=bulk, headers=cafe.headers)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "body"


@pytest.mark.parametrize("depth", [9, 260, 600])
def test_deeply_nested_properties_are_a_422_on_create_bulk_and_patch(client, cafe, depth):
    deep = with_properties(extra=nested(depth))
    created = client.post("/v1/geofences", json=deep, headers=cafe.headers)
    assert created.status_code == 422, created.text
    assert created.json()["error"]["code"] == "properties_too_deep"
    bulk = client.post(
        "/v1/geofences/bulk", json={"type": "FeatureCollection", "features": [deep]}, headers=cafe.headers
    )
    assert bulk.status_code == 200 and bulk.json()["results"][0]["error"]["code"] == "properties_too_deep"
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()
    patched = client.patch(
        f"/v1/geofences/{fence['id']}", json={"properties": {"extra": nested(depth)}}, headers=cafe.headers
    )
    assert patched.status_code == 422, patched.text
    assert client.get(f"/v1/geofences/{fence['id']}", headers=cafe.headers).json()["properties"]["version"] == 1


def test_properties_and_tags_have_a_size_limit(client, cafe):
    huge = client.post("/v1/geofences", json=with_properties(notes="x" * 20_000), headers=cafe.headers)
    assert huge.status_code == 422 and huge.json()["error"]["code"] == "properties_too_large"
    long_tag = client.post("/v1/geofences", json=with_properties(tags=["t" * 101]), headers=cafe.headers)
    assert long_tag.status_code == 422 and long_tag.json()["error"]["field"] == "properties.tags"
    fine = client.post("/v1/geofences", json=with_properties(notes="x" * 1_000, tags=["t" * 100]), headers=cafe.headers)
    assert fine.status_code == 201, fine.text


@pytest.mark.parametrize("budget", [2**31, 2**63])
def test_a_daily_budget_beyond_any_column_is_a_422(client, cafe, budget):
    fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    offer = {"title": "latte", "geofence_ids": [fence], "daily_budget": budget}
    answer = client.post("/v1/offers", json=offer, headers=cafe.headers)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "daily_budget"


@pytest.mark.parametrize(
    "params",
    [
        {"to": "9999-12-31"},
        {"from": "0001-01-01", "to": "0001-01-02", "tz": "Asia/Tokyo"},
        {"from": "0001-01-01", "tz": "Asia/Tokyo"},
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_a_422(client, cafe, params):
    for route in ("/v1/reports/reach", "/v1/reports/heatmap"):
        fence = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
        answer = client.get(route, params={"geofence_id": fence, **params}, headers=cafe.headers)
        assert answer.status_code == 422, (route, answer.text)


def test_an_upload_without_geometries_is_refused_not_a_500(client, cafe):
    table = pa.table({"name": ["no shape here"]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    parquet = client.post(
        "/v1/geofences/bulk", files={"file": ("plain.parquet", buffer.getvalue())}, headers=cafe.headers
    )
    assert parquet.status_code == 422, parquet.text
    geojson = b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "x"}}]}'
    answer = client.post("/v1/geofences/bulk", files={"file": ("x.geojson", geojson)}, headers=cafe.headers)
    assert answer.status_code == 200 and answer.json()["results"][0]["error"]["code"] == "missing_geometry"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/geofences", with_properties(name="Café\u0000Tejo")),
        ("GET", "/v1/geofences/fen_%00", None),
        ("PATCH", "/v1/geofences/fen_%00", {"properties": {"name": "x"}}),
        ("GET", "/v1/reports/reach?offer_id=off_%00", None),
        ("POST", "/v1/offers", {"title": "la\u0000tte", "geofence_ids": ["fen_x"]}),
    ],
)
def test_a_nul_character_anywhere_is_a_4xx_and_breaks_nothing(client, cafe, method, path, body):
    kept = client.post("/v1/geofences", json=ALFAMA_CAFE, headers=cafe.headers).json()["id"]
    answer = client.request(method, path, json=body, headers=cafe.headers)
    assert 400 <= answer.status_code < 500, answer.text
    assert client.get(f"/v1/geofences/{kept}", headers=cafe.headers).status_code == 200


def test_unknown_keys_are_refused_without_asking_the_database_each_time(client, runtime):
    statements: list[str] = []
    sqlalchemy.event.listen(runtime.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(5):
        assert client.get("/v1/geofences", headers={"Authorization": "Bearer not-a-key"}).status_code == 401
    well_formed = "Bearer gt_merchant_" + "A" * 32
    for _ in range(5):
        assert client.get("/v1/geofences", headers={"Authorization": well_formed}).status_code == 401
    assert len([s for s in statements if "api_keys" in s]) == 1


def test_the_sqlite_file_is_readable_by_its_owner_only(tmp_path):
    engine = database.make_engine(f"sqlite:///{tmp_path / 'data' / 'geotarget.db'}")
    database.migrate(engine)
    engine.dispose()
    assert stat.S_IMODE((tmp_path / "data" / "geotarget.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_erasing_with_redis_away_is_a_quick_503_that_changes_nothing(tmp_path):
    redis_server = EmbeddedRedis(tmp_path / "redis")
    redis_server.start()
    settings = make_settings(tmp_path, redis_server.url, f"sqlite:///{tmp_path / 'db.sqlite'}")
    runtime = Runtime.open(settings)
    try:
        with TestClient(create_app(settings, runtime)) as client:
            new_merchant(client)
            redis_server.stop()
            started = time.monotonic()
            answer = client.delete("/v1/devices/phone-1", headers=ADMIN)
            assert answer.status_code == 503 and time.monotonic() - started < 1.0
            with runtime.engine.connect() as connection:
                assert connection.execute(sqlalchemy.text("SELECT count(*) FROM erasures")).scalar() == 0
            redis_server.start()
            assert client.delete("/v1/devices/phone-1", headers=ADMIN).status_code == 200
            assert client.delete("/v1/devices/phone-1", headers=ADMIN).status_code == 200  # repeatable
    finally:
        runtime.close()
        redis_server.stop()


def strip(length_deg: float, width_deg: float = 1e-9) -> dict:
    """A long, hair-thin rectangle near Lisbon: almost no area, a long outline."""
    west, south = -9.5, 38.7
    ring = [
        [west, south],
        [west + length_deg, south],
        [west + length_deg, south + width_deg],
        [west, south + width_deg],
    ]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}}


def test_a_hair_thin_strip_is_priced_by_its_outline_not_its_area(client, cafe):
    refused = client.post("/v1/geofences", json=strip(20.0), headers=cafe.headers)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "too_many_cells"
    accepted = client.post("/v1/geofences", json=strip(0.5), headers=cafe.headers)
    assert accepted.status_code == 201, accepted.text
    cells = client.get(f"/v1/geofences/{accepted.json()['id']}/cells", params={"res": 15}, headers=cafe.headers)
    assert cells.status_code == 422 and cells.json()["error"]["field"] == "res"  # before any H3 work
