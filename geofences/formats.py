"""Read and write fence files: GeoJSON, KML, zipped Shapefile and GeoParquet.

Uploads come from strangers, so no reader is ever asked what a file is. The server picks one of four parsers
from the file's name (or, without a name, from its first bytes) and that parser accepts only its own format:
GeoJSON through orjson, KML through ``defusedxml`` (``kml``), a Shapefile through pyshp from members read in
memory out of a checked zip (``archives``), GeoParquet through pyarrow after its metadata has been sized up.
GDAL never opens an upload, so its virtual file systems (``/vsicurl/``, ``/vsizip/``), VRT documents and
driver guessing cannot be reached from one. GDAL only writes exports, from data the server made itself.

Everything is reprojected to WGS84 on the way in. Circles leave as 64-vertex polygons in formats that have no
circles, with ``radius_m`` kept as a property. Reading returns plain GeoJSON Feature dicts, so imported files go
through exactly the same validation as fences posted to the API.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import itertools
import math
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import geopandas as gpd
import orjson
import pyarrow.parquet as pq
import shapefile
from pyproj import CRS

from geofences.archives import ArchiveLimits, read_members
from geofences.errors import FenceError
from geofences.kml import kml_to_features

__all__ = ["FORMATS", "UploadLimits", "detect_format", "read_features", "write_features"]

FORMATS = ("geojson", "kml", "shapefile", "geoparquet")
_KML_NOISE = {
    "id",
    "tessellate",
    "extrude",
    "visibility",
    "altitudeMode",
    "drawOrder",
    "icon",
    "begin",
    "end",
    "timestamp",
}
_SUFFIXES = {
    ".geojson": "geojson",
    ".json": "geojson",
    ".kml": "kml",
    ".zip": "shapefile",
    ".shp": "shapefile",
    ".parquet": "geoparquet",
    ".geoparquet": "geoparquet",
}
_SHAPEFILE_PARTS = frozenset({".shp", ".shx", ".dbf", ".prj", ".cpg"})


@dataclass(frozen=True)
class UploadLimits:
    max_features: int = 5_000
    max_unpacked_bytes: int = 64 * 1024 * 1024
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)


def detect_format(filename: str | None, data: bytes) -> str:
    """The format the server will read the file as: by the file name, else by the first bytes."""
    suffix = PurePosixPath(filename or "").suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    head = data[:512].lstrip()
    if head.startswith(b"PK"):
        return "shapefile"
    if head.startswith(b"PAR1"):
        return "geoparquet"
    if head.startswith(b"<"):
        return "kml"
    if head.startswith(b"{"):
        return "geojson"
    raise FenceError(
        "unknown_format",
        "cannot tell the file format; use .geojson, .kml, .zip (Shapefile) or .parquet",
        "file",
    )


def read_features(data: bytes, filename: str | None = None, limits: UploadLimits | None = None) -> list[dict[str, Any]]:
    """Parse a fence file into GeoJSON Feature dicts in WGS84 (properties without NaN)."""
    limits = limits or UploadLimits()
    fmt = detect_format(filename, data)
    features = _READERS[fmt](data, limits)
    if len(features) > limits.max_features:
        raise FenceError(
            "too_many_features", f"the file holds {len(features):,} features; at most {limits.max_features:,}", "file"
        )
    return [clean_feature(f) for f in features]


def _geojson(data: bytes, _: UploadLimits) -> list[dict[str, Any]]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FenceError("unreadable_file", f"the GeoJSON file is not valid JSON ({exc})", "file") from None
    if not isinstance(document, dict):
        raise FenceError("unreadable_file", "a GeoJSON file holds a FeatureCollection or a Feature", "file")
    crs = document.get("crs")
    if crs is not None and _crs_name(crs) not in (
        "urn:ogc:def:crs:OGC:1.3:CRS84",
        "EPSG:4326",
        "urn:ogc:def:crs:EPSG::4326",
    ):
        raise FenceError("unsupported_crs", "GeoJSON must be in WGS84 longitude/latitude (RFC 7946)", "file.crs")
    if document.get("type") == "Feature":
        return [document]
    features = document.get("features")
    if document.get("type") != "FeatureCollection" or not isinstance(features, list):
        raise FenceError("unreadable_file", "a GeoJSON file holds a FeatureCollection or a Feature", "file")
    return [f if isinstance(f, dict) else {"type": None} for f in features]


def _crs_name(crs: Any) -> str:
    properties = crs.get("properties") if isinstance(crs, dict) else None
    return str(properties.get("name", "")) if isinstance(properties, dict) else ""


def _kml(data: bytes, _: UploadLimits) -> list[dict[str, Any]]:
    return kml_to_features(data)


def _shapefile(data: bytes, limits: UploadLimits) -> list[dict[str, Any]]:
    members = read_members(data, _SHAPEFILE_PARTS, limits.archive)
    shp = [name for name in members if name.endswith(".shp")]
    if len(shp) != 1:
        raise FenceError("bad_shapefile", f"the zip must hold exactly one .shp file, it holds {len(shp)}", "file")
    stem = shp[0].removesuffix(".shp")
    part = {suffix: members.get(stem + suffix) for suffix in _SHAPEFILE_PARTS}
    encoding = (part[".cpg"] or b"utf-8").decode("ascii", "replace").strip() or "utf-8"
    try:
        reader = shapefile.Reader(
            shp=io.BytesIO(part[".shp"] or b""),
            shx=io.BytesIO(part[".shx"]) if part[".shx"] else None,
            dbf=io.BytesIO(part[".dbf"]) if part[".dbf"] else None,
            encoding=encoding if _known_encoding(encoding) else "utf-8",
            encodingErrors="replace",
        )
        with reader:
            records = reader.iterRecords() if part[".dbf"] else itertools.repeat(None)
            features = [
                {
                    "type": "Feature",
                    "properties": record.as_dict() if record is not None else {},
                    "geometry": _as_lists(shape.__geo_interface__) if shape.shapeType else None,
                }
                for shape, record in _limited(zip(reader.iterShapes(), records, strict=False), limits.max_features)
            ]
    except FenceError:
        raise
    except Exception as exc:  # pyshp raises many kinds of errors for broken files
        raise FenceError("unreadable_file", f"could not read the shapefile ({exc})", "file") from None
    prj = part[".prj"]
    return _to_wgs84(features, prj.decode("utf-8", "replace") if prj else None)


def _known_encoding(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _limited(items: Iterable[Any], most: int) -> Iterable[Any]:
    for n, item in enumerate(items):
        if n >= most:
            raise FenceError("too_many_features", f"the file holds more than {most:,} features", "file")
        yield item


def _geoparquet(data: bytes, limits: UploadLimits) -> list[dict[str, Any]]:
    try:
        metadata = pq.ParquetFile(io.BytesIO(data)).metadata
        unpacked = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        if metadata.num_rows > limits.max_features:
            raise FenceError(
                "too_many_features",
                f"the file holds {metadata.num_rows:,} features; at most {limits.max_features:,}",
                "file",
            )
        if unpacked > limits.max_unpacked_bytes:
            raise FenceError(
                "file_too_large",
                f"the file unpacks to {unpacked:,} bytes; at most {limits.max_unpacked_bytes:,} are read",
                "file",
            )
        frame = gpd.read_parquet(io.BytesIO(data))
    except FenceError:
        raise
    except Exception as exc:  # pyarrow and geopandas raise many kinds of errors for broken files
        raise FenceError("unreadable_file", f"could not read the GeoParquet file ({exc})", "file") from None
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    return frame_features(frame)


def frame_features(frame: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    return [{**f, "geometry": _as_lists(f["geometry"])} for f in frame.iterfeatures(na="null", drop_id=True)]


def _as_lists(geometry: Any) -> Any:
    """GeoJSON with tuples and numpy numbers (as geopandas and pyshp give it) as plain lists and floats."""
    return None if geometry is None else orjson.loads(orjson.dumps(geometry, option=orjson.OPT_SERIALIZE_NUMPY))


def _to_wgs84(features: list[dict[str, Any]], wkt: str | None) -> list[dict[str, Any]]:
    """Reproject features whose ``.prj`` names another CRS (the geometry travels through shapely)."""
    if wkt is None:
        return features
    try:
        crs = CRS.from_wkt(wkt)
    except Exception as exc:  # pyproj.exceptions.CRSError and friends
        raise FenceError(
            "unsupported_crs", f"the .prj file is not a coordinate system pyproj knows ({exc})", "file"
        ) from None
    if crs.to_epsg() == 4326 or crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
        return features
    try:
        frame = gpd.GeoDataFrame.from_features(features, crs=crs).to_crs(4326)
    except Exception as exc:
        raise FenceError("unreadable_file", f"could not reproject the shapefile to WGS84 ({exc})", "file") from None
    return frame_features(frame)


_READERS: dict[str, Callable[[bytes, UploadLimits], list[dict[str, Any]]]] = {
    "geojson": _geojson,
    "kml": _kml,
    "shapefile": _shapefile,
    "geoparquet": _geoparquet,
}


def _plain(value: Any) -> Any:
    """numpy values (list columns in GeoParquet, numpy scalars) as plain JSON-able Python; NaN as None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def clean_feature(feature: dict[str, Any]) -> dict[str, Any]:
    raw = feature.get("properties")
    if not isinstance(raw, dict):
        return feature  # the fence rules say what is wrong with it
    props = {k: _plain(v) for k, v in raw.items()}
    if "name" not in props and isinstance(props.get("Name"), str):
        props["name"] = props.pop("Name")
    if isinstance(props.get("tags"), str):
        props["tags"] = [t.strip() for t in props["tags"].split(",") if t.strip()]
    props = {k: v for k, v in props.items() if v is not None and k not in _KML_NOISE}
    return {"type": feature.get("type"), "properties": props, "geometry": feature.get("geometry")}


def write_features(features: Iterable[Mapping[str, Any]], fmt: str) -> bytes:
    """Write GeoJSON Feature dicts (WGS84) to one of ``FORMATS``; a Shapefile comes back zipped."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    rows = [dict(f) for f in features]
    for row in rows:
        props = dict(row.get("properties") or {})
        if isinstance(props.get("tags"), list):
            props["tags"] = ",".join(props["tags"])
        row["properties"] = props
    frame = gpd.GeoDataFrame.from_features(rows, crs="EPSG:4326")
    if fmt == "geojson":
        return str(frame.to_json(drop_id=True)).encode()
    if fmt == "geoparquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        return buffer.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        if fmt == "kml":
            target = Path(tmp) / "fences.kml"
            frame.to_file(target, driver="KML", engine="pyogrio")
            return target.read_bytes()
        target = Path(tmp) / "fences.shp"
        frame.to_file(target, driver="ESRI Shapefile", engine="pyogrio")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(Path(tmp).iterdir()):
                archive.write(part, part.name)
        return buffer.getvalue()
