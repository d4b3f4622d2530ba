"""Fence files read in batches, for imports larger than one upload (``geotarget fences import``).

A GeoParquet file is streamed: one batch of rows at a time through pyarrow, so a 1,000,000-store file never
sits in memory as a million Python dicts. Other formats are read whole (within ``UploadLimits``) and handed
out in batches. The format is told by the file name (``detect_format``), never guessed by a library.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyarrow.parquet as pq
import shapely
from pyproj import CRS

from geofences.errors import FenceError
from geofences.formats import UploadLimits, clean_feature, detect_format, frame_features, read_features

__all__ = ["count_features", "feature_batches"]


def feature_batches(path: Path, size: int, limits: UploadLimits) -> Iterator[list[dict[str, Any]]]:
    """The file's features as GeoJSON Feature dicts in WGS84, ``size`` at a time, in file order."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if detect_format(path.name, head) == "geoparquet":
        yield from _parquet_batches(path, size)
        return
    features = read_features(path.read_bytes(), path.name, limits)
    for start in range(0, len(features), size):
        yield features[start : start + size]


def count_features(path: Path) -> int | None:
    """How many features a file holds, where that is known without reading it (GeoParquet's footer)."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if detect_format(path.name, head) != "geoparquet":
        return None
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # the batches say what is wrong with the file
        return None


def _parquet_batches(path: Path, size: int) -> Iterator[list[dict[str, Any]]]:
    try:
        source = pq.ParquetFile(path)
        column, crs = _geometry_column(source)
        batches = source.iter_batches(batch_size=size)
    except FenceError:
        raise
    except Exception as exc:  # pyarrow raises many kinds of errors for a broken file
        raise FenceError("unreadable_file", f"could not read the GeoParquet file ({exc})", "file") from None
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                return
            table = batch.to_pandas()
            geometry = shapely.from_wkb(table.pop(column).to_numpy(), on_invalid="ignore")
            frame = gpd.GeoDataFrame(table, geometry=geometry, crs=crs or 4326)
        except Exception as exc:
            raise FenceError("unreadable_file", f"could not read the GeoParquet file ({exc})", "file") from None
        if crs is not None:
            frame = frame.to_crs(4326)
        yield [clean_feature(f) for f in frame_features(frame)]


def _geometry_column(source: pq.ParquetFile) -> tuple[str, CRS | None]:
    """The primary geometry column (WKB) and its CRS, from the file's ``geo`` metadata (GeoParquet 1.x); None
    for longitude/latitude on WGS84 (the default), which needs no reprojection."""
    metadata = source.schema_arrow.metadata or {}
    if b"geo" not in metadata:
        raise FenceError("unreadable_file", "the Parquet file has no GeoParquet 'geo' metadata", "file")
    geo = json.loads(metadata[b"geo"])
    column = geo.get("primary_column", "geometry")
    described = geo.get("columns", {}).get(column, {})
    if described.get("encoding", "WKB") != "WKB":
        raise FenceError(
            "unreadable_file", f"geometry encoding {described.get('encoding')!r} is not read; write WKB", "file"
        )
    given = described.get("crs")
    crs = None if not given else CRS.from_json_dict(given) if isinstance(given, dict) else CRS.from_user_input(given)
    lon_lat = crs is None or crs.to_epsg() == 4326 or crs.equals(CRS.from_user_input("OGC:CRS84"))
    return column, None if lon_lat else crs
