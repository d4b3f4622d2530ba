"""Fences as a merchant sees them: create (one or a bulk file), read, patch, delete, cells, contains.

Validation, the time zone and the H3 cover are computed by ``prepare_fences`` in the CPU pool (a worker
process, so a large bulk never stalls the requests of this worker); storage and the local index change together
after the transaction commits; then the other workers are told (``FenceNotifier``). Every method takes the
owning merchant, and another merchant's fence is simply ``NotFound``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import orjson
from sqlalchemy.orm import Session, sessionmaker

from geofences import FenceError, FenceLimits, LatLng, Proximity, ValidFence, parse_feature
from geofences import cells as h3cells
from geofences.formats import UploadLimits, read_features
from geofences.index import Cover, cover_shape
from geofences.shapes import CircleShape
from geotarget.catalog.accounts import new_id
from geotarget.catalog.shapes import feature_of, plain_geometry, shape_of
from geotarget.catalog.snapshot import Catalog
from geotarget.catalog.timezones import check_timezone, timezone_at
from geotarget.cpu import CpuPool
from geotarget.errors import Conflict, InvalidInput, NotFound
from geotarget.settings import Settings
from geotarget.store import repository
from geotarget.store.database import transaction
from geotarget.store.models import Geofence

log = logging.getLogger(__name__)

_RESERVED = {
    "name",
    "tags",
    "timezone",
    "radius_m",
    "area_m2",
    "version",
    "created_at",
    "updated_at",
    "h3",
    "repaired",
    "id",
}
MAX_CELLS_SHOWN = 50_000


class FenceNotifier(Protocol):
    def changed(self) -> None:
        """Tell other workers that the fence log has grown; failures are theirs to swallow."""


@dataclass(frozen=True)
class BulkResult:
    index: int
    id: str | None = None
    error: FenceError | InvalidInput | None = None


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


def prepare_fences(features: Sequence[Any], limits: FenceLimits, *, repair: bool, bulk: bool) -> list[Prepared]:
    """Validate, place in a time zone and cover each feature (pure; runs in the CPU pool). A bulk names its
    fields ``features[i].…``."""
    out = []
    for i, feature in enumerate(features):
        path = f"features[{i}]." if bulk else ""
        try:
            fence = parse_feature(feature, limits, repair=repair, path=path)
            if fence.timezone is not None:
                check_timezone(fence.timezone, f"{path}properties.timezone")
            cover = cover_shape(fence.shape, limits.cover_res, max_cells=limits.max_cover_cells)
            out.append(Prepared(i, Ready(fence, fence.timezone or timezone_at(_centre(fence)), cover)))
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
    data: bytes, filename: str | None, upload: UploadLimits, limits: FenceLimits, *, repair: bool
) -> list[Prepared]:
    """``prepare_fences`` for an uploaded file, parsed in the same worker process."""
    return prepare_fences(read_features(data, filename, upload), limits, repair=repair, bulk=True)


def _summary(cover: Cover) -> dict[str, int]:
    interior = sum(7 ** (cover.res - h3cells.cell_to_res(c)) for c in cover.interior)
    return {
        "res": cover.res,
        "interior_cells": interior,
        "boundary_cells": len(cover.boundary),
        "stored_cells": len(cover.interior) + len(cover.boundary),
    }


def _centre(fence: ValidFence) -> LatLng:
    shape = fence.shape
    if isinstance(shape, CircleShape):
        return shape.center
    west, south, east, north = shape.bounds
    return LatLng(lat=(south + north) / 2, lon=(west + east) / 2)


class FenceService:
    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        catalog: Catalog,
        notifier: FenceNotifier,
        pool: CpuPool,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.catalog = catalog
        self.notifier = notifier
        self.pool = pool
        self.limits = settings.fence_limits()
        self.upload_limits = settings.upload_limits()

    # -- writes -----------------------------------------------------------------------------------------------

    def create(self, merchant_id: str, feature: Any, *, repair: bool = False) -> dict[str, Any]:
        ready = self._prepared_one(feature, repair=repair)
        [row] = self._store(merchant_id, [ready])
        return feature_of(row, self._extra(ready.cover, ready.fence.repaired))

    def create_many(self, merchant_id: str, features: Sequence[Any], *, repair: bool = False) -> list[BulkResult]:
        """Store every valid feature in one transaction; report every invalid one by its index."""
        prepared = self.pool.run(partial(prepare_fences, repair=repair, bulk=True), list(features), self.limits)
        return self._store_many(merchant_id, prepared)

    def import_collection(self, merchant_id: str, body: bytes, *, repair: bool = False) -> list[BulkResult]:
        """``create_many`` for a raw FeatureCollection body (parsed in the CPU pool, not on the event loop)."""
        job = partial(prepare_collection, repair=repair)
        return self._store_many(merchant_id, self.pool.run(job, body, self.limits, self.upload_limits.max_features))

    def import_file(
        self, merchant_id: str, data: bytes, filename: str | None, *, repair: bool = False
    ) -> list[BulkResult]:
        """``create_many`` for a GeoJSON, KML, zipped Shapefile or GeoParquet file (parsed in the CPU pool)."""
        job = partial(prepare_file, repair=repair)
        return self._store_many(merchant_id, self.pool.run(job, data, filename, self.upload_limits, self.limits))

    def _store_many(self, merchant_id: str, prepared: list[Prepared]) -> list[BulkResult]:
        results = [BulkResult(p.index, error=p.error) for p in prepared if p.error is not None]
        valid = [(p.index, p.ready) for p in prepared if p.ready is not None]
        rows = self._store(merchant_id, [ready for _, ready in valid])
        results += [BulkResult(i, id=row.id) for (i, _), row in zip(valid, rows, strict=True)]
        return sorted(results, key=lambda r: r.index)

    def _store(self, merchant_id: str, fences: list[Ready]) -> list[Geofence]:
        """One transaction; the catalog lock is held until the new fences are indexed, so a concurrent sync
        waits and finds them indexed instead of covering them a second time."""
        with self.catalog.writing(len(fences)):
            with transaction(self.factory) as session:
                self._require_merchant(session, merchant_id)
                rows = repository.add_fences(session, [self._row_values(merchant_id, r) for r in fences])
            for ready, row in zip(fences, rows, strict=True):
                self.catalog.put_fence(row, ready.fence.shape, ready.cover)
        if rows:
            self._announce()
        return rows

    def update(self, merchant_id: str, fence_id: str, patch: dict[str, Any], *, repair: bool = False) -> dict[str, Any]:
        """Merge-patch: ``geometry`` replaces the shape; ``properties`` entries replace, ``null`` removes extras.
        The new shape is prepared outside any transaction; if the fence changed meanwhile, the patch is a
        ``Conflict`` rather than a silent overwrite."""
        with self.factory() as session:
            row = self._owned(session, merchant_id, fence_id)
        seen_version = row.version
        changes = patch.get("properties") or {}
        properties = {k: v for k, v in {**feature_of(row)["properties"], **changes}.items() if v is not None}
        if "timezone" not in changes and patch.get("geometry") is not None:
            properties.pop("timezone", None)  # a moved fence gets its zone derived again
        merged = {
            "type": "Feature",
            "geometry": patch["geometry"] if patch.get("geometry") is not None else row.geometry,
            "properties": properties,
        }
        ready = self._prepared_one(merged, repair=repair)
        with self.catalog.writing(1):
            with transaction(self.factory) as session:
                row = self._owned(session, merchant_id, fence_id)
                if row.version != seen_version:
                    raise Conflict(f"geofence {fence_id!r} changed while this patch was checked; send it again", "id")
                row = repository.update_fence(session, row, self._row_values(merchant_id, ready, keep_id=True))
            self.catalog.put_fence(row, ready.fence.shape, ready.cover)
        self._announce()
        return feature_of(row, self._extra(ready.cover, ready.fence.repaired))

    def delete(self, merchant_id: str, fence_id: str) -> None:
        with transaction(self.factory) as session:
            row = self._owned(session, merchant_id, fence_id)
            for offer in repository.list_offers(session, merchant_id):  # offers stop pointing at it
                if fence_id in offer.geofence_ids:
                    remaining = [f for f in offer.geofence_ids if f != fence_id]
                    repository.update_offer(session, offer, {"geofence_ids": remaining})
            repository.delete_fence(session, row)

        self._announce()

    # -- reads ------------------------------------------------------------------------------------------------

    def get(self, merchant_id: str, fence_id: str) -> dict[str, Any]:
        with self.factory() as session:
            row = self._owned(session, merchant_id, fence_id)
        return feature_of(row, self._extra(self.catalog.index.cover(row.id)))

    def collection(self, merchant_id: str) -> dict[str, Any]:
        with self.factory() as session:
            rows = repository.list_fences(session, merchant_id)
        features = [feature_of(r, self._extra(self.catalog.index.cover(r.id))) for r in rows]
        return {"type": "FeatureCollection", "features": features}

    def cells(self, merchant_id: str, fence_id: str, res: int | None = None) -> dict[str, Any]:
        """The H3 cover as GeoJSON polygons marked interior/boundary (interior cells uncompacted)."""
        with self.factory() as session:
            row = self._owned(session, merchant_id, fence_id)
        res = self.catalog.index.res if res is None else res
        if not h3cells.MIN_RES + 1 <= res <= h3cells.MAX_RES:
            raise InvalidInput(f"res must be between {h3cells.MIN_RES + 1} and {h3cells.MAX_RES}", "res")
        shape = shape_of(row)
        if h3cells.estimate_cover_cells(shape.area_m2, shape.perimeter_m, res) > MAX_CELLS_SHOWN:
            raise InvalidInput(f"res {res} would draw more than {MAX_CELLS_SHOWN:,} cells; choose a coarser one", "res")
        indexed = self.catalog.index.cover(row.id)
        if indexed is not None and indexed.res == res:
            cover = indexed
        else:
            cover = self.pool.run(partial(cover_shape, res=res, max_cells=MAX_CELLS_SHOWN), shape)
        features = []
        for kind, group in (
            ("interior", h3cells.uncompact_cells(cover.interior, res)),
            ("boundary", cover.boundary),
        ):
            for cell in group:
                ring = [p.as_geojson() for p in h3cells.cell_to_ring(cell)]
                features.append(
                    {
                        "type": "Feature",
                        "id": h3cells.cell_to_str(cell),
                        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
                        "properties": {"cell": h3cells.cell_to_str(cell), "kind": kind, "res": res},
                    }
                )
        return {
            "type": "FeatureCollection",
            "features": features,
            "properties": {"fence_id": row.id, "res": res},
        }

    def contains(self, merchant_id: str, point: LatLng, within_m: float = 0.0) -> list[dict[str, Any]]:
        found: list[Proximity] = self.catalog.nearby_for(merchant_id, point, within_m)
        out = []
        for p in found:
            meta = self.catalog.meta(p.fence_id)
            out.append(
                {
                    "id": p.fence_id,
                    "name": meta.name if meta else "",
                    "inside": p.inside,
                    "distance_m": round(p.distance_m, 2),
                }
            )
        return out

    # -- helpers ----------------------------------------------------------------------------------------------

    def _prepared_one(self, feature: Any, *, repair: bool) -> Ready:
        [prepared] = self.pool.run(partial(prepare_fences, repair=repair, bulk=False), [feature], self.limits)
        if prepared.ready is None:
            raise prepared.error or InvalidInput("the fence could not be prepared")
        return prepared.ready

    def _row_values(self, merchant_id: str, ready: Ready, *, keep_id: bool = False) -> dict[str, Any]:
        fence = ready.fence
        extras = {k: v for k, v in fence.properties.items() if k not in _RESERVED}
        values: dict[str, Any] = {
            "merchant_id": merchant_id,
            "name": fence.name,
            "kind": fence.shape.kind,
            "geometry": plain_geometry(fence.shape.to_geojson()),
            "radius_m": fence.shape.radius_m if isinstance(fence.shape, CircleShape) else None,
            "timezone": ready.timezone,
            "tags": list(fence.tags),
            "properties": plain_geometry(extras),
            "area_m2": fence.shape.area_m2,
        }
        now = datetime.now(UTC)
        values["updated_at"] = now
        if not keep_id:
            values.update(id=new_id("fen"), version=1, created_at=now)
        return values

    def _announce(self) -> None:
        """Apply the log locally (offers that changed with the fences), then tell the other workers."""
        self.catalog.sync(self.factory)
        self.notify_others()

    def notify_others(self) -> None:
        try:
            self.notifier.changed()
        except Exception:  # other workers still catch up from the SQL change log
            log.warning("could not notify other workers of a fence change", exc_info=True)

    def _extra(self, cover: Cover | None, repaired: str | None = None) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if cover is not None:
            extra["h3"] = _summary(cover)
        if repaired:
            extra["repaired"] = repaired
        return extra

    @staticmethod
    def _owned(session: Session, merchant_id: str, fence_id: str) -> Geofence:
        row = repository.get_fence(session, merchant_id, fence_id)
        if row is None:
            raise NotFound(f"no geofence {fence_id!r}", "id")
        return row

    @staticmethod
    def _require_merchant(session: Session, merchant_id: str) -> None:
        if repository.get_merchant(session, merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id!r}", "merchant_id")


__all__ = ["BulkResult", "FenceNotifier", "FenceService", "Prepared", "prepare_fences", "prepare_file"]
