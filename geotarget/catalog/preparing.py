"""Everything CPU-heavy about new fences, as pure functions that run in the CPU pool (a worker process): parse
and validate, place in a time zone, cover with H3 cells. What comes back is ready to store, or the reason not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from geofences import FenceError, FenceLimits, LatLng, Shape, ValidFence, parse_feature
from geofences.formats import UploadLimits, read_features
from geofences.index import Cover, cover_shape
from geofences.shapes import CircleShape
from geotarget.catalog.timezones import check_timezone, timezone_at
from geotarget.errors import InvalidInput


@dataclass(frozen=True)
class Ready:
    """A valid fence with its time zone and H3 cover: everything CPU-heavy is done."""

    fence: ValidFence
    timezone: str
    cover: Cover


@dataclass(frozen=True)
class Prepared:
    """One submitted feature after the CPU pool: ready to store, or the reason it is not."""

    index: int
    ready: Ready | None = None
    error: FenceError | InvalidInput | None = None


def prepare_fences(
    features: Sequence[Any],
    limits: FenceLimits,
    *,
    repair: bool,
    bulk: bool,
    default_radius_m: float | None = None,
) -> list[Prepared]:
    """Validate, place in a time zone and cover each feature (pure; runs in the CPU pool). A bulk names its
    fields ``features[i].…``. ``default_radius_m`` makes circles of points that do not give their own radius
    (store locations exported as points)."""
    out = []
    for i, feature in enumerate(features):
        if default_radius_m is not None:
            feature = _with_radius(feature, default_radius_m)
        path = f"features[{i}]." if bulk else ""
        try:
            fence = parse_feature(feature, limits, repair=repair, path=path)
            if fence.timezone is not None:
                check_timezone(fence.timezone, f"{path}properties.timezone")
            cover = cover_shape(fence.shape, limits.cover_res, max_cells=limits.max_cover_cells)
            out.append(Prepared(i, Ready(fence, fence.timezone or timezone_at(centre(fence.shape)), cover)))
        except (FenceError, InvalidInput) as error:
            out.append(Prepared(i, error=error))
    return out


def prepare_collection(body: bytes, limits: FenceLimits, most: int, *, repair: bool) -> list[Prepared]:
    """``prepare_fences`` for a JSON FeatureCollection body, parsed in the same worker process."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", "body") from None
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection" or not isinstance(features, list):
        raise InvalidInput("expected a GeoJSON FeatureCollection with a 'features' list", "body")
    if len(features) > most:
        raise InvalidInput(f"at most {most:,} features per request; this has {len(features):,}", "features")
    return prepare_fences(features, limits, repair=repair, bulk=True)


def prepare_file(
    data: bytes,
    filename: str | None,
    upload: UploadLimits,
    limits: FenceLimits,
    *,
    repair: bool,
    default_radius_m: float | None = None,
) -> list[Prepared]:
    """``prepare_fences`` for an uploaded file, parsed in the same worker process."""
    features = read_features(data, filename, upload)
    return prepare_fences(features, limits, repair=repair, bulk=True, default_radius_m=default_radius_m)


def _with_radius(feature: Any, radius_m: float) -> Any:
    if not isinstance(feature, dict):
        return feature
    geometry, properties = feature.get("geometry"), feature.get("properties")
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        return feature
    properties = properties if isinstance(properties, dict) else {}
    return {**feature, "properties": {"radius_m": radius_m, **properties}}


def centre(shape: Shape) -> LatLng:
    """A circle's centre, else the middle of the bounding box (enough to tell where a fence roughly is)."""
    if isinstance(shape, CircleShape):
        return shape.center
    west, south, east, north = shape.bounds
    return LatLng(lat=(south + north) / 2, lon=(west + east) / 2)
