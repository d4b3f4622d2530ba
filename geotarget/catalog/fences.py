"""Fences as a merchant manages them: create (one or a bulk file), read, patch, delete, cells, contains.

Validation, the time zone and the H3 cover are computed in the CPU pool (``preparing``: a worker process, so a
large bulk never stalls the requests of this worker); storage and the local index change together after the
transaction commits; then the other workers are told (``FenceNotifier``). Every method takes the owning
merchant, and another merchant's fence is simply ``NotFound``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import orjson

from geofences import FenceError, LatLng, cells
from geofences.index import Cover, cover_shape
from geofences.shapes import CircleShape
from geotarget.catalog.accounts import new_id
from geotarget.catalog.model import Fence
from geotarget.catalog.placement import Placed, PlacementWarning, placement_warnings
from geotarget.catalog.preparing import Prepared, Ready, centre, prepare_collection, prepare_fences, prepare_file
from geotarget.catalog.shapes import shape_of
from geotarget.catalog.snapshot import Catalog
from geotarget.cpu import CpuPool
from geotarget.errors import Conflict, InvalidInput, NotFound
from geotarget.settings import Settings
from geotarget.store.repository import EVERYONE, Repository

log = logging.getLogger(__name__)

# Properties the fence itself answers; a merchant's properties of these names are not kept as extras.
RESERVED_PROPERTIES = frozenset(
    {
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
        "external_id",
    }
)
MAX_CELLS_SHOWN = 50_000


class FenceNotifier(Protocol):
    def changed(self) -> None:
        """Tell other workers that the fence log has grown; failures are theirs to swallow."""


@dataclass(frozen=True)
class H3Summary:
    res: int
    interior_cells: int  # at ``res``, however compacted the stored cells are
    boundary_cells: int
    stored_cells: int

    @classmethod
    def of(cls, cover: Cover) -> H3Summary:
        interior = cells.cells_at_res(cover.interior, cover.res)
        return cls(cover.res, interior, len(cover.boundary), len(cover.interior) + len(cover.boundary))


@dataclass(frozen=True)
class FenceView:
    """A fence as its owner sees it: the stored fence, its H3 cover, and what a repair changed."""

    fence: Fence
    h3: H3Summary | None = None
    repaired: str | None = None
    warnings: tuple[PlacementWarning, ...] = ()  # a new fence in an unlikely place (see ``placement``)


@dataclass(frozen=True)
class FenceCells:
    fence_id: str
    res: int
    interior: list[cells.Cell]  # uncompacted, at ``res``
    boundary: list[cells.Cell]


@dataclass(frozen=True)
class NearbyFence:
    id: str
    name: str
    inside: bool
    distance_m: float


@dataclass(frozen=True)
class BulkResult:
    index: int
    id: str | None = None
    error: FenceError | InvalidInput | None = None
    existing: bool = False  # its external_id was already stored: the fence it names is left as it is


PLACEMENT_SAMPLE = 1_000  # of the merchant's fences, at random: their middle is known well enough from these


class FenceService:
    def __init__(
        self, settings: Settings, repository: Repository, catalog: Catalog, notifier: FenceNotifier, pool: CpuPool
    ) -> None:
        self.repository = repository
        self.catalog = catalog
        self.notifier = notifier
        self.pool = pool
        self.limits = settings.fence_limits()
        self.max_per_merchant = settings.max_fences_per_merchant
        self.upload_limits = settings.upload_limits()

    # -- writes -----------------------------------------------------------------------------------------------

    def create(self, merchant_id: str, feature: Any, *, repair: bool = False) -> FenceView:
        ready = self._prepared_one(feature, repair=repair)
        warnings = self._placement(merchant_id, ready)
        [fence] = self._store(merchant_id, [ready])
        return FenceView(fence, H3Summary.of(ready.cover), ready.fence.repaired, tuple(warnings))

    def _placement(self, merchant_id: str, ready: Ready) -> list[PlacementWarning]:
        """Where the new fence lands against the merchant's other fences and stated zone (lat/lon swapped?)."""
        shapes, unseen = self.catalog.index, self.catalog.audience_fences
        sample = self.repository.fence_sample(merchant_id, PLACEMENT_SAMPLE)
        others = [Placed(centre(s), zone) for f, zone in sample if f not in unseen and (s := shapes.shape(f))]
        merchant = self.repository.merchant(EVERYONE, merchant_id)
        zone = merchant.timezone if merchant is not None else None
        return placement_warnings(centre(ready.fence.shape), ready.timezone, others, zone, datetime.now(UTC))

    def create_many(self, merchant_id: str, features: Sequence[Any], *, repair: bool = False) -> list[BulkResult]:
        """Store every valid feature in one transaction; report every invalid one by its index."""
        prepared = self.pool.run(partial(prepare_fences, repair=repair, bulk=True), list(features), self.limits)
        return self.store_prepared(merchant_id, prepared)

    def import_collection(self, merchant_id: str, body: bytes, *, repair: bool = False) -> list[BulkResult]:
        """``create_many`` for a raw FeatureCollection body (parsed in the CPU pool, not on the event loop)."""
        job = partial(prepare_collection, repair=repair)
        return self.store_prepared(merchant_id, self.pool.run(job, body, self.limits, self.upload_limits.max_features))

    def import_file(
        self,
        merchant_id: str,
        data: bytes,
        filename: str | None,
        *,
        repair: bool = False,
        default_radius_m: float | None = None,
    ) -> list[BulkResult]:
        """``create_many`` for a GeoJSON, KML, zipped Shapefile or GeoParquet file (parsed in the CPU pool)."""
        job = partial(prepare_file, repair=repair, default_radius_m=default_radius_m)
        return self.store_prepared(merchant_id, self.pool.run(job, data, filename, self.upload_limits, self.limits))

    def store_prepared(self, merchant_id: str, prepared: list[Prepared], *, index: bool = True) -> list[BulkResult]:
        """Store the valid ones; report the others by index. Features whose ``external_id`` the merchant
        already stored are left alone (a re-run import or a page sent again creates nothing twice); one repeated
        within the request is an error at its second place. ``index=False``: store and tell the serving workers
        without indexing here (an import in a CLI process that serves nothing)."""
        results = [BulkResult(p.index, error=p.error) for p in prepared if p.error is not None]
        valid = [(p.index, p.ready) for p in prepared if p.ready is not None]
        given = [r.fence.external_id for _, r in valid if r.fence.external_id is not None]
        stored = self.repository.fences_by_external_id(merchant_id, given) if given else {}
        first: dict[str, int] = {}
        new: list[tuple[int, Ready]] = []
        for position, ready in valid:
            external_id = ready.fence.external_id
            if external_id is None:
                new.append((position, ready))
            elif external_id in stored:
                results.append(BulkResult(position, id=stored[external_id], existing=True))
            elif external_id in first:
                message = f"external_id {external_id!r} is also given at features[{first[external_id]}]"
                results.append(
                    BulkResult(position, error=InvalidInput(message, f"features[{position}].properties.external_id"))
                )
            else:
                first[external_id] = position
                new.append((position, ready))
        fences = self._store(merchant_id, [ready for _, ready in new], index=index)
        results += [BulkResult(i, id=fence.id) for (i, _), fence in zip(new, fences, strict=True)]
        return sorted(results, key=lambda r: r.index)

    def _store(self, merchant_id: str, prepared: list[Ready], *, index: bool = True) -> list[Fence]:
        """One transaction; the catalog lock is held until the new fences are indexed, so a concurrent sync
        waits and finds them indexed instead of indexing them a second time."""
        new = [_new_fence(merchant_id, r) for r in prepared]
        covers = [r.cover for r in prepared]
        if not index:
            fences = self.repository.add_fences(merchant_id, new, covers, self.max_per_merchant)
            if fences:
                self.notify_others()
            return fences
        with self.catalog.writing(len(prepared)):
            fences = self.repository.add_fences(merchant_id, new, covers, self.max_per_merchant)
            for ready, fence in zip(prepared, fences, strict=True):
                self.catalog.put_fence(fence, ready.fence.shape, ready.cover)
        if fences:
            self._announce()
        return fences

    def update(self, merchant_id: str, fence_id: str, patch: dict[str, Any], *, repair: bool = False) -> FenceView:
        """Merge-patch: ``geometry`` replaces the shape; ``properties`` entries replace, ``null`` removes extras.
        The new shape is prepared outside any transaction; if the fence changed meanwhile, the patch is a
        ``Conflict`` rather than a silent overwrite."""
        current = self._owned(merchant_id, fence_id)
        if not patch or patch == {"properties": {}}:
            return self._view(current)  # nothing to change: no new version
        changes = patch.get("properties") or {}
        properties = {k: v for k, v in {**_properties(current), **changes}.items() if v is not None}
        if "timezone" not in changes and patch.get("geometry") is not None:
            properties.pop("timezone", None)  # a moved fence gets its zone derived again
        geometry = patch["geometry"] if patch.get("geometry") is not None else current.geometry
        ready = self._prepared_one({"type": "Feature", "geometry": geometry, "properties": properties}, repair=repair)
        changed = replace(_new_fence(merchant_id, ready), id=current.id, created_at=current.created_at)
        if changed.audience_only and not current.audience_only:
            offers = [o.id for o in self.repository.offers_naming(merchant_id, fence_id)]
            if offers:
                message = f"offers {offers} are on this fence; an audience-only fence has none"
                raise Conflict(message, "properties.purpose")
        with self.catalog.writing(1):
            fence = self.repository.replace_fence(changed, ready.cover, current.version)
            self.catalog.put_fence(fence, ready.fence.shape, ready.cover)
        self._announce()
        return FenceView(fence, H3Summary.of(ready.cover), ready.fence.repaired)

    def delete(self, merchant_id: str, fence_id: str) -> None:
        self.repository.delete_fence(merchant_id, fence_id)
        self._announce()

    # -- reads ------------------------------------------------------------------------------------------------

    def get(self, merchant_id: str, fence_id: str) -> FenceView:
        return self._view(self._owned(merchant_id, fence_id))

    def collection(self, merchant_id: str) -> list[FenceView]:
        return [self._view(f) for f in self.repository.fences(merchant_id)]

    def cells(self, merchant_id: str, fence_id: str, res: int | None = None) -> FenceCells:
        """The H3 cover at ``res`` (the index's by default), interior cells uncompacted."""
        fence = self._owned(merchant_id, fence_id)
        res = self.catalog.index.res if res is None else res
        if not cells.MIN_RES + 1 <= res <= cells.MAX_RES:
            raise InvalidInput(f"res must be between {cells.MIN_RES + 1} and {cells.MAX_RES}", "res")
        shape = shape_of(fence)
        if cells.estimate_cover_cells(shape.area_m2, shape.perimeter_m, res) > MAX_CELLS_SHOWN:
            raise InvalidInput(f"res {res} would draw more than {MAX_CELLS_SHOWN:,} cells; choose a coarser one", "res")
        cover = self.catalog.index.cover(fence.id)
        if cover is None or cover.res != res:
            cover = self.pool.run(partial(cover_shape, res=res, max_cells=MAX_CELLS_SHOWN), shape)
        return FenceCells(fence.id, res, cells.uncompact_cells(cover.interior, res), list(cover.boundary))

    def contains(self, merchant_id: str, point: LatLng, within_m: float = 0.0) -> list[NearbyFence]:
        """The merchant's fences containing ``point`` or within ``within_m`` of it, by the matcher's own index."""
        found = []
        for p in self.catalog.nearby_for(merchant_id, point, within_m):
            meta = self.catalog.meta(p.fence_id)
            found.append(NearbyFence(p.fence_id, meta.name if meta else "", p.inside, round(p.distance_m, 2)))
        return found

    # -- helpers ----------------------------------------------------------------------------------------------

    def _prepared_one(self, feature: Any, *, repair: bool) -> Ready:
        [prepared] = self.pool.run(partial(prepare_fences, repair=repair, bulk=False), [feature], self.limits)
        if prepared.ready is None:
            raise prepared.error or InvalidInput("the fence could not be prepared")
        return prepared.ready

    def _announce(self) -> None:
        """Apply the log locally (offers that changed with the fences), then tell the other workers."""
        self.catalog.sync(self.repository)
        self.notify_others()

    def notify_others(self) -> None:
        try:
            self.notifier.changed()
        except Exception:  # other workers still catch up from the SQL change log
            log.warning("could not notify other workers of a fence change", exc_info=True)

    def _view(self, fence: Fence) -> FenceView:
        cover = self.catalog.index.cover(fence.id)
        return FenceView(fence, None if cover is None else H3Summary.of(cover))

    def _owned(self, merchant_id: str, fence_id: str) -> Fence:
        fence = self.repository.fence(merchant_id, fence_id)
        if fence is None:
            raise NotFound(f"no geofence {fence_id!r}", "id")
        return fence


def _new_fence(merchant_id: str, ready: Ready) -> Fence:
    valid, now = ready.fence, datetime.now(UTC)
    return Fence(
        id=new_id("fen"),
        merchant_id=merchant_id,
        name=valid.name,
        kind=valid.shape.kind,
        geometry=_plain(valid.shape.to_geojson()),
        radius_m=valid.shape.radius_m if isinstance(valid.shape, CircleShape) else None,
        timezone=ready.timezone,
        tags=tuple(valid.tags),
        properties=_plain({k: v for k, v in valid.properties.items() if k not in RESERVED_PROPERTIES}),
        area_m2=valid.shape.area_m2,
        external_id=valid.external_id,
        created_at=now,
        updated_at=now,
    )


def _properties(fence: Fence) -> dict[str, Any]:
    """The properties a patch is merged into: the merchant's extras and the fields it may change."""
    own: dict[str, Any] = {"name": fence.name, "tags": list(fence.tags), "timezone": fence.timezone}
    if fence.radius_m is not None:
        own["radius_m"] = fence.radius_m
    if fence.external_id is not None:
        own["external_id"] = fence.external_id
    return {**fence.properties, **own}


def _plain(document: dict[str, Any]) -> dict[str, Any]:
    """A JSON round trip: tuples to lists, numpy floats to floats, so the stored document is plain JSON."""
    parsed: dict[str, Any] = orjson.loads(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY))
    return parsed


__all__ = ["BulkResult", "FenceCells", "FenceNotifier", "FenceService", "FenceView", "H3Summary", "NearbyFence"]
