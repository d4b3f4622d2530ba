"""A catalog as a snapshot (``store.catalog_files``): fences, offers, reach covers and the served pairs as arrays,
and back again without decoding or covering anything.

Fences and offers are numbered in the snapshot, their ids kept as ``Names``. A fence's shape is kept as WKB
(polygons) or centre and radius (circles) and made on first use; its cover is its cells in one array; its
merchant, zone, version, name and tags are columns. Offers are kept as their JSON, decoded on first use, with
the few fields that say where they are and which loops want them as columns. The pairs are the view's live
rows, renumbered, with their two cell tables packed and grouped by offer and by fence. Merchants, zones and tag
sets are few: they are numbered in the JSON beside the arrays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import shapely

from geofences import CircleShape, LatLng, Shape, flat
from geofences.cells import latlngs_to_cells
from geofences.celltable import CellTable
from geofences.index import Cover, FenceIndex, IndexParts, IndexState, index_tables, near_levels
from geofences.names import Names
from geofences.shapes import PolygonShape
from geotarget.catalog.lazy import LazyMap, Rows, later
from geotarget.catalog.model import Fence, Offer
from geotarget.catalog.offer_fences import FencePlacing, Placement, StoredPlacing
from geotarget.catalog.view import (
    BOUNDARY,
    INTERIOR,
    KINDS,
    Reaches,
    StoredGroups,
    StoredPairs,
    StoredReaches,
    ViewBuilder,
)  # fmt: skip
from geotarget.serving.schedule import Schedule, parse_schedule, schedule_to_json
from geotarget.store.covers import CellArray
from geotarget.store.records import offer_from_json

Arrays = dict[str, npt.NDArray[Any]]
# Decoded objects a worker keeps, the most recently used: a worker serving a whole country would otherwise end up
# holding every shape (~0.6 KB) and offer (~3 KB) it ever touched; a miss costs ~11 and ~26 microseconds.
DECODED_SHAPES = 100_000
DECODED_OFFERS = 30_000


@dataclass(frozen=True)
class FenceMeta:
    """What serving needs of a fence besides its shape (the rest stays in SQL)."""

    merchant_id: str
    name: str
    timezone: str
    version: int

    @classmethod
    def of(cls, fence: Fence) -> FenceMeta:
        return cls(fence.merchant_id, fence.name, fence.timezone, fence.version)


@dataclass
class Thawed:
    """Everything a catalog holds, from a snapshot."""

    index: IndexParts
    meta: LazyMap[FenceMeta]
    timezones: LazyMap[str]
    audience_fences: frozenset[str]
    placing: StoredPlacing
    offers: LazyMap[Offer]
    marked: dict[str, list[int]]  # "paced", "optimized": offer numbers the loops look at
    farthest_m: float
    pairs: StoredPairs


@dataclass(frozen=True)
class Captured:
    """One state of a catalog, taken under its lock in time proportional to its size and nothing more; objects
    still to decode (a snapshot's) are decoded by ``freeze``, after the lock is let go."""

    fences: list[FencePlacing]
    meta: dict[str, FenceMeta]
    res: int
    index: IndexState
    offers: Callable[[], Mapping[str, Offer]]
    live: list[tuple[int, str, str]]  # (row, offer id, fence id) of the pairs served
    nearby_m: npt.NDArray[np.float64]  # of the live rows, in their order
    static: npt.NDArray[np.float64]
    bounds: npt.NDArray[np.float64]
    plain: npt.NDArray[np.bool_]
    schedules: list[int]
    schedule_of: tuple[tuple[Schedule, str], ...]
    reach_covers: Callable[[], Mapping[str, Mapping[float, CellArray]]]


def capture(
    index: FenceIndex,
    meta: Mapping[str, FenceMeta],
    fences: list[FencePlacing],
    offers: Mapping[str, Offer],
    builder: ViewBuilder,
) -> Captured:
    """Take the state to freeze (the caller holds the catalog's lock)."""
    live = builder.live_pairs()
    rows = np.array([r for r, _, _ in live], dtype=np.int64)
    nearby_m, static, bounds, plain, schedules = builder.columns()
    return Captured(
        fences=fences,
        meta=dict(meta),
        res=index.res,
        index=index.state(),
        offers=later(offers),
        live=live,
        nearby_m=nearby_m[rows],
        static=static[rows],
        bounds=bounds[rows].reshape(-1, 4),
        plain=plain[rows],
        schedules=[schedules[r] for r in rows.tolist()],
        schedule_of=builder.schedule_of,
        reach_covers=builder.reach_covers().later(),
    )


def freeze(state: Captured) -> tuple[Arrays, dict[str, Any]]:
    """The arrays and JSON of a snapshot of ``state`` (no lock needed)."""
    meta = state.meta
    slot_of = {f: n for n, f in enumerate(state.index.ids)}
    all_shapes, all_covers = state.index.shapes(), state.index.covers()
    nearby = _nearby_first([all_shapes[slot_of[f.id]] for f in state.fences])
    fences = [state.fences[n] for n in nearby]
    ids = [f.id for f in fences]
    fence_no = {f: n for n, f in enumerate(ids)}
    shapes = [all_shapes[slot_of[f]] for f in ids]
    covers = [all_covers[slot_of[f]] for f in ids]
    offers = sorted(
        state.offers().values(),
        key=lambda o: min((fence_no.get(f, len(ids)) for f in o.geofence_ids), default=len(ids)),
    )
    placements = [Placement.of(o) for o in offers]
    merchants = flat.interned([f.merchant_id for f in fences] + [p.merchant_id for p in placements])
    zones = flat.interned(meta[f].timezone for f in ids)
    tag_sets = flat.interned([(), *(f.tags for f in fences), *(p.geofence_tags for p in placements)])
    arrays: Arrays = {}
    arrays["fence_id"], arrays["fence_id_ordered"], arrays["fence_id_order"] = Names.arrays(ids)
    arrays["fence_merchant"] = np.array([merchants[f.merchant_id] for f in fences], dtype=np.int64)
    arrays["fence_zone"] = np.array([zones[meta[f].timezone] for f in ids], dtype=np.int64)
    arrays["fence_version"] = np.array([meta[f].version for f in ids], dtype=np.int64)
    arrays["fence_name"], arrays["fence_name_at"] = flat.blob(meta[f].name.encode() for f in ids)
    arrays["fence_tags"] = np.array([tag_sets[f.tags] for f in fences], dtype=np.int64)
    arrays["fence_audience"] = np.array([f.audience_only for f in fences], dtype=bool)
    arrays["fence_circle"] = np.array([isinstance(s, CircleShape) for s in shapes], dtype=bool)
    arrays["fence_circle_at"] = np.array(
        [(s.center.lat, s.center.lon, s.radius_m) if isinstance(s, CircleShape) else (0, 0, 0) for s in shapes]
    ).reshape(-1, 3)
    wkb = [b"" if isinstance(s, CircleShape) else shapely.to_wkb(s.geometry) for s in shapes]
    arrays["fence_wkb"], arrays["fence_wkb_at"] = flat.blob(wkb)
    arrays["fence_bounds"] = np.array([s.bounds for s in shapes], dtype=np.float64).reshape(-1, 4)
    for part in ("interior", "boundary"):
        arrays[f"fence_{part}"], arrays[f"fence_{part}_at"] = flat.cells([getattr(c, part) for c in covers])
    tables = index_tables(
        state.res,
        arrays["fence_interior"],
        flat.owners(arrays["fence_interior_at"]),
        arrays["fence_boundary"],
        flat.owners(arrays["fence_boundary_at"]),
    )
    for name, table in tables.items():
        arrays[f"index_{name}_keys"], arrays[f"index_{name}_starts"], arrays[f"index_{name}_entries"] = (
            table.packed_arrays()
        )
    offer_no = {o.id: n for n, o in enumerate(offers)}
    arrays["offer_id"], arrays["offer_id_ordered"], arrays["offer_id_order"] = Names.arrays(list(offer_no))
    arrays["offer_json"], arrays["offer_json_at"] = flat.blob(
        o.model_dump_json(by_alias=True, exclude_defaults=True).encode() for o in offers
    )
    arrays["offer_nearby_m"] = np.array([o.nearby_m for o in offers], dtype=np.float64)
    arrays["offer_merchant"] = np.array([merchants[p.merchant_id] for p in placements], dtype=np.int64)
    arrays["offer_tags"] = np.array([tag_sets[p.geofence_tags] for p in placements], dtype=np.int64)
    arrays["offer_all"] = np.array([p.all_geofences for p in placements], dtype=bool)
    arrays["offer_triggered"] = np.array([p.triggered for p in placements], dtype=bool)
    named = [[fence_no[f] for f in p.geofence_ids if f in fence_no] for p in placements]
    arrays["offer_fences"], arrays["offer_fences_at"] = flat.groups(named)
    naming = flat.owners(arrays["offer_fences_at"])
    arrays["fence_offers"], arrays["fence_offers_at"] = flat.grouped_by(naming, arrays["offer_fences"], len(ids))
    marked = {
        "paced": [n for n, o in enumerate(offers) if o.pacing != "asap" and (o.daily_budget or o.goal)],
        "optimized": [n for n, o in enumerate(offers) if o.rotation == "optimized" and o.variants],
    }
    reach_covers = state.reach_covers()
    reach_keys = sorted((fence_no[f], m) for f, by_m in reach_covers.items() if f in fence_no for m in by_m)
    reach_no = {(ids[f], m): n for n, (f, m) in enumerate(reach_keys)}
    reach_fence = np.array([f for f, _ in reach_keys], dtype=np.int64)
    arrays["reach_fence_at"] = np.searchsorted(reach_fence, np.arange(len(ids) + 1)).astype(np.int64)
    arrays["reach_m"] = np.array([m for _, m in reach_keys], dtype=np.float64)
    arrays["reach_cells"], arrays["reach_cells_at"] = flat.cells([reach_covers[ids[f]][m] for f, m in reach_keys])
    arrays.update(_pairs(state, offer_no, fence_no, reach_no, arrays))
    meta_json = {
        "merchants": list(merchants),
        "zones": list(zones),
        "tag_sets": list(tag_sets),
        "marked": marked,
        "schedules": [(schedule_to_json(s), zone) for s, zone in state.schedule_of],
        "offer_schema": offer_schema(),
    }
    return arrays, meta_json


def _nearby_first(shapes: list[Shape]) -> list[int]:
    """Positions of ``shapes`` in the order of H3's hierarchy (the res-9 cell of each box's middle): fences near
    each other get numbers near each other, and so do their offers and pairs. What one request reads then lies
    on a few pages of each mapped array, not on a page of its own for every fence (see store/catalog_files)."""
    bounds = np.array([s.bounds for s in shapes], dtype=np.float64).reshape(-1, 4)
    keys = latlngs_to_cells((bounds[:, 1] + bounds[:, 3]) / 2, (bounds[:, 0] + bounds[:, 2]) / 2, 9)
    order: list[int] = np.argsort(keys, kind="stable").tolist()
    return order


def _pairs(
    state: Captured,
    offer_no: dict[str, int],
    fence_no: dict[str, int],
    reach_no: dict[tuple[str, float], int],
    arrays: Arrays,
) -> Arrays:
    by_fence = np.lexsort(
        (np.array([offer_no[o] for _, o, _ in state.live], dtype=np.int64),
         np.array([fence_no[f] for _, _, f in state.live], dtype=np.int64))
    ).tolist()  # fmt: skip
    live = [state.live[i] for i in by_fence]
    pair_fence = np.array([fence_no[f] for _, _, f in live], dtype=np.int64)
    nearby_m = state.nearby_m[by_fence]
    nearby = nearby_m.tolist()
    pair_reach = np.array([reach_no.get((f, nearby[i]), -1) for i, (_, _, f) in enumerate(live)], dtype=np.int64)
    pair_no = np.arange(len(live), dtype=np.int64)
    member_keys, member_entries = [], []
    for part, kind in (("interior", INTERIOR), ("boundary", BOUNDARY)):
        cells, owners = flat.gather(arrays[f"fence_{part}"], arrays[f"fence_{part}_at"], pair_fence)
        member_keys.append(cells)
        member_entries.append(pair_no[owners] * KINDS + kind)
    reached = pair_reach >= 0
    cells, owners = flat.gather(arrays["reach_cells"], arrays["reach_cells_at"], pair_reach[reached])
    members = CellTable.from_pairs(np.concatenate(member_keys), np.concatenate(member_entries))
    reaches = CellTable.from_pairs(cells, pair_no[reached][owners])
    pair_offer = np.array([offer_no[o] for _, o, _ in live], dtype=np.int64)
    out: Arrays = {
        "pair_offer": pair_offer,
        "pair_fence": pair_fence,
        "pair_nearby_m": nearby_m,
        "pair_static": state.static[by_fence],
        "pair_bounds": state.bounds[by_fence].reshape(-1, 4),
        "pair_plain": state.plain[by_fence],
        "pair_schedule": np.array(state.schedules, dtype=np.int64)[by_fence],
    }
    for name, table in (("members", members), ("reaches", reaches)):
        out[f"{name}_keys"], out[f"{name}_starts"], out[f"{name}_entries"] = table.packed_arrays()
    out["offer_pairs"], out["offer_pairs_at"] = flat.grouped_by(pair_no, pair_offer, len(offer_no))
    out["fence_pairs"], out["fence_pairs_at"] = flat.grouped_by(pair_no, pair_fence, len(fence_no))
    return out


def thaw(arrays: Mapping[str, npt.NDArray[Any]], meta: dict[str, Any], res: int) -> Thawed:
    """The catalog's parts from a snapshot; nothing is decoded here, and nothing is made per fence or offer but
    the bits that say which were changed since. A snapshot whose offers were written by another version of the
    offer model is refused: its JSON might no longer decode, and that would only show when a request first
    touched one."""
    if meta.get("offer_schema") != offer_schema():
        raise ValueError("its offers were written by another version of geotarget")
    fences = Names(arrays["fence_id"], arrays["fence_id_ordered"], arrays["fence_id_order"])
    offers = Names(arrays["offer_id"], arrays["offer_id_ordered"], arrays["offer_id_order"])
    merchants, zones = tuple(meta["merchants"]), tuple(meta["zones"])
    tag_sets = tuple(tuple(tags) for tags in meta["tag_sets"])
    interior, interior_at = arrays["fence_interior"], arrays["fence_interior_at"]
    boundary, boundary_at = arrays["fence_boundary"], arrays["fence_boundary_at"]
    merchant, zone, version = arrays["fence_merchant"], arrays["fence_zone"], arrays["fence_version"]
    name, name_at = arrays["fence_name"], arrays["fence_name_at"]

    def cover(n: int) -> Cover:
        inside = interior[int(interior_at[n]) : int(interior_at[n + 1])].tolist()
        return Cover(res, tuple(inside), tuple(boundary[int(boundary_at[n]) : int(boundary_at[n + 1])].tolist()))

    def fence_meta(n: int) -> FenceMeta:
        named = name[int(name_at[n]) : int(name_at[n + 1])].tobytes().decode()
        return FenceMeta(merchants[merchant[n]], named, zones[zone[n]], int(version[n]))

    shape = _shapes(arrays)
    offer = _offers(arrays)
    placing = StoredPlacing(
        fences, arrays["fence_merchant"], arrays["fence_tags"], arrays["fence_audience"],
        arrays["fence_offers"], arrays["fence_offers_at"],
        offers, arrays["offer_merchant"], arrays["offer_tags"], arrays["offer_all"], arrays["offer_triggered"],
        arrays["offer_fences"], arrays["offer_fences_at"], merchants, tag_sets,
    )  # fmt: skip
    pair_offer, pair_fence, schedules = arrays["pair_offer"], arrays["pair_fence"], arrays["pair_schedule"]
    count = len(pair_offer)
    offer_merchant = arrays["offer_merchant"]
    pairs = StoredPairs(
        offers=Rows(lambda r: offer(int(pair_offer[r])), count),
        offer_ids=Rows(lambda r: offers.name(int(pair_offer[r])), count),
        fence_ids=Rows(lambda r: fences.name(int(pair_fence[r])), count),
        merchants=Rows(lambda r: merchants[offer_merchant[pair_offer[r]]], count),
        shapes=Rows(lambda r: shape(int(pair_fence[r])), count),
        zones=Rows(lambda r: zones[zone[pair_fence[r]]], count),
        schedules=Rows(lambda r: int(schedules[r]), count),
        nearby_m=arrays["pair_nearby_m"],
        static=arrays["pair_static"],
        bounds=arrays["pair_bounds"],
        plain=arrays["pair_plain"],
        alive=np.ones(count, dtype=bool),
        members=CellTable.stored(arrays["members_keys"], arrays["members_starts"], arrays["members_entries"]),
        reaches=CellTable.stored(arrays["reaches_keys"], arrays["reaches_starts"], arrays["reaches_entries"]),
        schedule_of=tuple((_schedule(raw), zone) for raw, zone in meta["schedules"]),
        reach_covers=Reaches(
            StoredReaches(fences, arrays["reach_fence_at"], arrays["reach_m"], arrays["reach_cells"],
                          arrays["reach_cells_at"])
        ),
        by_offer=StoredGroups(offers, arrays["offer_pairs"], arrays["offer_pairs_at"]),
        by_fence=StoredGroups(fences, arrays["fence_pairs"], arrays["fence_pairs_at"]),
    )  # fmt: skip
    audience = np.flatnonzero(arrays["fence_audience"])
    tables = {
        name: CellTable.stored(*(arrays[f"index_{name}_{part}"] for part in ("keys", "starts", "entries")))
        for name in ("interior", "boundary", *(f"near{level}" for level in near_levels(res)[1:]))
    }
    return Thawed(
        index=IndexParts(fences, arrays["fence_bounds"], shape, cover, tables),
        meta=LazyMap(fences, fence_meta),
        timezones=LazyMap(fences, lambda n: zones[zone[n]]),
        audience_fences=frozenset(fences.names(audience)),
        placing=placing,
        offers=LazyMap(offers, offer),
        marked={k: list(v) for k, v in meta["marked"].items()},
        farthest_m=float(arrays["offer_nearby_m"].max(initial=0.0)),
        pairs=pairs,
    )


def _schedule(raw: Any) -> Any:
    schedule = parse_schedule(raw)
    if schedule is None:
        raise ValueError("a snapshot's interned schedule is empty")
    return schedule


@cache
def offer_schema() -> str:
    """A fingerprint of the offer model's JSON form."""
    schema = orjson.dumps(Offer.model_json_schema(by_alias=True), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(schema).hexdigest()[:16]


def _shapes(arrays: Mapping[str, npt.NDArray[Any]]) -> Callable[[int], Shape]:
    """Fence number -> its shape, the last ``DECODED_SHAPES`` made kept (the index and the pairs share them)."""
    circle, circle_at, wkb = arrays["fence_circle"], arrays["fence_circle_at"], arrays["fence_wkb"]
    wkb_at = arrays["fence_wkb_at"]

    @lru_cache(maxsize=DECODED_SHAPES)
    def shape(n: int) -> Shape:
        if circle[n]:
            lat, lon, radius_m = circle_at[n].tolist()
            return CircleShape(LatLng(lat=lat, lon=lon), radius_m)
        return PolygonShape(shapely.from_wkb(wkb[int(wkb_at[n]) : int(wkb_at[n + 1])].tobytes()))

    return shape


def _offers(arrays: Mapping[str, npt.NDArray[Any]]) -> Callable[[int], Offer]:
    """Offer number -> the offer, the last ``DECODED_OFFERS`` decoded kept (the catalog's map and the pairs
    share them)."""
    blob, at = arrays["offer_json"], arrays["offer_json_at"]

    @lru_cache(maxsize=DECODED_OFFERS)
    def offer(n: int) -> Offer:
        return offer_from_json(blob[int(at[n]) : int(at[n + 1])].tobytes())

    return offer
