"""Read and write fence files: GeoJSON, KML, zipped Shapefile and GeoParquet, through geopandas.

Everything is reprojected to WGS84 on the way in. Circles leave as 64-vertex polygons in formats that have no
circles, with ``radius_m`` kept as a property. Reading returns plain GeoJSON Feature dicts, so imported files go
through exactly the same validation as fences posted to the API.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd

from geofences.errors import FenceError

__all__ = ["FORMATS", "detect_format", "read_features", "write_features"]

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


def detect_format(filename: str | None, data: bytes) -> str:
    """Guess the format from the file name, falling back to the first bytes."""
    suffix = Path(filename or "").suffix.lower()
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


def read_features(data: bytes, filename: str | None = None) -> list[dict[str, Any]]:
    """Parse a fence file into GeoJSON Feature dicts in WGS84 (properties without NaN)."""
    fmt = detect_format(filename, data)
    try:
        frame = _read_frame(fmt, data)
    except FenceError:
        raise
    except Exception as exc:  # the drivers raise many kinds of errors for broken files
        raise FenceError("unreadable_file", f"could not read the {fmt} file: {exc}", "file") from exc
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    return [_clean(f) for f in frame.iterfeatures(na="null", drop_id=True)]


def _read_frame(fmt: str, data: bytes) -> gpd.GeoDataFrame:
    if fmt == "geoparquet":
        return gpd.read_parquet(io.BytesIO(data))
    if fmt == "shapefile":
        with tempfile.TemporaryDirectory() as tmp:
            archive = zipfile.ZipFile(io.BytesIO(data))
            shp = [n for n in archive.namelist() if n.lower().endswith(".shp") and not n.startswith("__MACOSX")]
            if len(shp) != 1:
                raise FenceError(
                    "bad_shapefile", f"the zip must hold exactly one .shp file, it holds {len(shp)}", "file"
                )
            archive.extractall(tmp)
            return gpd.read_file(Path(tmp) / shp[0], engine="pyogrio")
    return gpd.read_file(io.BytesIO(data), engine="pyogrio", driver="KML" if fmt == "kml" else None)


def _plain(value: Any) -> Any:
    """numpy values (list columns in GeoParquet, numpy scalars) as plain JSON-able Python; NaN as None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _clean(feature: dict[str, Any]) -> dict[str, Any]:
    props = {k: _plain(v) for k, v in (feature.get("properties") or {}).items()}
    if "name" not in props and isinstance(props.get("Name"), str):
        props["name"] = props.pop("Name")
    if isinstance(props.get("tags"), str):
        props["tags"] = [t.strip() for t in props["tags"].split(",") if t.strip()]
    props = {k: v for k, v in props.items() if v is not None and k not in _KML_NOISE}
    geometry = feature.get("geometry")
    return {
        "type": "Feature",
        "properties": props,
        "geometry": json.loads(json.dumps(geometry)) if geometry else None,
    }


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
