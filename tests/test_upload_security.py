"""A fence upload is a stranger's file: it may not read server files, reach the network, or fill the disk.

Each test here is an attack that worked before uploads were parsed by the server's own allow-listed readers:
an OGR VRT document named like GeoJSON (or as a .shp inside a zip) made GDAL read any file or URL, and a zip
bomb was extracted to /tmp without limits.
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from geofences import FenceError
from geofences.archives import ArchiveLimits, read_members
from geofences.formats import UploadLimits, read_features, write_features
from tests.fixtures import ALFAMA_CAFE

SECRET_LINE = "gt_admin_the-secret-nobody-may-read"


def vrt_reading(source: str) -> bytes:
    """An OGR VRT document that turns each line of ``source`` into a circle fence named after the line."""
    return f"""<OGRVRTDataSource>
  <OGRVRTLayer name="stolen">
    <SrcDataSource>CSV:{source}</SrcDataSource>
    <OpenOptions><OOI key="HEADERS">NO</OOI></OpenOptions>
    <SrcSQL>SELECT field_1 AS name, 30 AS radius_m, 24.94 AS lon, 60.17 AS lat FROM secret</SrcSQL>
    <GeometryField encoding="PointFromColumns" x="lon" y="lat"/>
  </OGRVRTLayer>
</OGRVRTDataSource>""".encode()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.csv"
    path.write_text(f"{SECRET_LINE}\nsecond line\n")
    return path


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request it gets."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"field_1\nfetched-from-the-network\n")

        def do_HEAD(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def upload(client, merchant, name: str, data: bytes):
    return client.post("/v1/geofences/bulk", files={"file": (name, data)}, headers=merchant.headers)


def nothing_stored(client, merchant) -> bool:
    return client.get("/v1/geofences", headers=merchant.headers).json()["features"] == []


@pytest.mark.parametrize(
    ("name", "wrap"),
    [
        ("fences.geojson", lambda doc: doc),
        ("fences.kml", lambda doc: doc),
        ("fences.zip", lambda doc: zipped({"f.shp": doc})),
    ],
    ids=["as-geojson", "as-kml", "as-shp-in-zip"],
)
def test_a_vrt_document_cannot_read_server_files(client, cafe, secret_file, name, wrap):
    response = upload(client, cafe, name, wrap(vrt_reading(str(secret_file))))
    assert response.status_code == 422, response.text
    assert SECRET_LINE not in response.text
    assert str(secret_file.parent) not in response.text
    assert nothing_stored(client, cafe)
    assert SECRET_LINE not in client.get("/v1/geofences", headers=cafe.headers).text


@pytest.mark.parametrize(
    ("name", "wrap"),
    [("fences.geojson", lambda doc: doc), ("fences.zip", lambda doc: zipped({"f.shp": doc}))],
    ids=["as-geojson", "as-shp-in-zip"],
)
def test_a_vsicurl_source_makes_no_request(client, cafe, listener, name, wrap):
    base, hits = listener
    response = upload(client, cafe, name, wrap(vrt_reading(f"/vsicurl/{base}/secret.csv")))
    assert response.status_code == 422, response.text
    time.sleep(0.2)
    assert hits == []
    assert nothing_stored(client, cafe)


def test_a_kml_file_with_an_external_entity_is_refused_unread(client, cafe, secret_file, listener):
    base, hits = listener
    kml = f"""<?xml version="1.0"?>
<!DOCTYPE kml [<!ENTITY local SYSTEM "file://{secret_file}"><!ENTITY remote SYSTEM "{base}/x">]>
<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>&local;&remote;</name>
<Point><coordinates>24.94,60.17</coordinates></Point></Placemark></kml>""".encode()
    response = upload(client, cafe, "entity.kml", kml)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "unsafe_file"
    assert SECRET_LINE not in response.text and hits == []


def zip_bomb(unpacked_bytes: int) -> bytes:
    """A valid zipped Shapefile plus one member of ``unpacked_bytes`` zeros, built without holding it in memory."""
    shapefile_zip = write_features([ALFAMA_CAFE], "shapefile")
    buffer = io.BytesIO(shapefile_zip)
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive, archive.open("padding.dbf", "w") as member:
        chunk = bytes(16 * 1024 * 1024)
        for _ in range(unpacked_bytes // len(chunk)):
            member.write(chunk)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def gigabyte_bomb() -> bytes:
    return zip_bomb(1024**3)


@pytest.mark.slow
def test_a_one_gigabyte_zip_bomb_is_refused_at_once_without_touching_the_disk(client, cafe, gigabyte_bomb):
    assert len(gigabyte_bomb) < 2 * 1024 * 1024
    me = psutil.Process()
    written_before = me.io_counters().write_bytes
    started = time.monotonic()
    response = upload(client, cafe, "shops.zip", gigabyte_bomb)
    took_s = time.monotonic() - started
    written = me.io_counters().write_bytes - written_before
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "archive_too_large"
    assert took_s < 1.0
    assert written < 10 * 1024 * 1024
    assert "/tmp" not in response.text
    assert nothing_stored(client, cafe)


def test_archive_members_are_counted_sized_and_never_used_as_paths():
    limits = ArchiveLimits(max_members=3, max_unpacked_bytes=1_000, max_ratio=50)
    with pytest.raises(FenceError, match="holds 4 files"):
        read_members(zipped({f"{i}.dbf": b"x" for i in range(4)}), frozenset({".dbf"}), limits)
    with pytest.raises(FenceError, match="unpacks to 2,000 bytes"):
        read_members(zipped({"a.dbf": b"y" * 2_000}), frozenset({".dbf"}), limits)
    with pytest.raises(FenceError, match="inflate"):
        read_members(zipped({"a.dbf": bytes(900)}), frozenset({".dbf"}), limits)
    members = read_members(zipped({"../../etc/passwd.shp": b"a", "/abs/b.dbf": b"b"}), frozenset({".shp"}), limits)
    assert members == {"passwd.shp": b"a"}


def test_a_zip_that_lies_about_its_sizes_is_stopped_at_the_limit():
    honest = zipped({"a.dbf": b"z" * 5_000})
    # rewrite the declared uncompressed size (central directory and local header) from 5,000 to 50
    lying = honest.replace((5_000).to_bytes(4, "little"), (50).to_bytes(4, "little"))
    with pytest.raises(FenceError):
        read_members(lying, frozenset({".dbf"}), ArchiveLimits(max_unpacked_bytes=1_000, max_ratio=1e9))


def test_geoparquet_is_sized_up_before_it_is_read():
    data = write_features([ALFAMA_CAFE] * 3, "geoparquet")
    with pytest.raises(FenceError, match="at most 2"):
        read_features(data, "x.parquet", UploadLimits(max_features=2))
    with pytest.raises(FenceError, match="unpacks to"):
        read_features(data, "x.parquet", UploadLimits(max_unpacked_bytes=10))


def test_an_upload_error_never_shows_a_server_path(client, cafe):
    broken = zipped({"shop.shp": b"\x00" * 200, "shop.dbf": b"\x03garbage"})
    response = upload(client, cafe, "shop.zip", broken)
    assert response.status_code == 422, response.text
    assert "/tmp" not in response.text and str(Path.cwd()) not in response.text
