"""A catalog as a snapshot (``store.catalog_files``): fences, offers, reach covers and the served pairs as arrays,
and back again without decoding or covering anything.

Fences are numbered in the snapshot; a fence's shape is kept as WKB (polygons) or centre and radius (circles)
and made on first use; its cover is its cells in one array. Offers are kept as their JSON, decoded on first use,
with the few fields that say where they are and which loops want them as columns. The pairs are the view's
live rows, renumbered, with their two cell tables packed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import shapely

from geofences import CircleShape, LatLng, Shape
from geofences.celltable import CellTable
from geofences.index import Cover, CoverCells, FenceIndex
from geofences.shapes import PolygonShape
from geotarget.catalog.lazy import LazyMap, Rows, later
from geotarget.catalog.model import Fence, Offer
from geotarget.catalog.offer_fences import FencePlacing, Placement
from geotarget.catalog.view import BOUNDARY, INTERIOR, KINDS, StoredPairs, ViewBuilder
from geotarget.serving.schedule import Schedule, parse_schedule, schedule_to_json
from geotarget.store.covers import CellArray
from geotarget.store.records import offer_from_json

Arrays = dict[str, npt.NDArray[Any]]


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

    cells: CoverCells
    covers: LazyMap[Cover]
    bounds: dict[str, tuple[float, float, float, float]]
    shapes: LazyMap[Shape]
    meta: dict[str, FenceMeta]
    audience_fences: frozenset[str]
    fences: list[FencePlacing]
    offers: LazyMap[Offer]
    placements: list[Placement]
    marked: dict[str, list[int]]  # "paced", "optimized": offer numbers the loops look at
    farthest_m: float
    pairs: StoredPairs


@dataclass(frozen=True)
class Captured:
    """One state of a catalog, taken under its lock in time proportional to its size and nothing more; objects
    still to decode (a snapshot's) are decoded by ``freeze``, after the lock is let go."""

    fences: list[FencePlacing]
    meta: dict[str, FenceMeta]
    shapes: Callable[[], Mapping[str, Shape]]
    covers: Callable[[], Mapping[str, Cover]]
    offers: Callable[[], Mapping[str, Offer]]
    live: list[tuple[int, str, str]]  # (row, offer id, fence id) of the pairs served
    nearby_m: npt.NDArray[np.float64]  # of the live rows, in their order
    static: npt.NDArray[np.float64]
    bounds: npt.NDArray[np.float64]
    schedules: list[int]
    schedule_of: tuple[tuple[Schedule, str], ...]
    reach_covers: dict[str, dict[float, CellArray]]


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
    nearby_m, static, bounds, schedules = builder.columns()
    return Captured(
        fences=fences,
        meta=dict(meta),
        shapes=later(index.shapes()),
        covers=later(index.covers()),
        offers=later(offers),
        live=live,
        nearby_m=nearby_m[rows],
        static=static[rows],
        bounds=bounds[rows].reshape(-1, 4),
        schedules=[schedules[r] for r in rows.tolist()],
        schedule_of=builder.schedule_of,
        reach_covers={f: dict(by_m) for f, by_m in builder.reach_covers().items()},
    )


def freeze(state: Captured) -> tuple[Arrays, dict[str, Any]]:
    """The arrays and JSON of a snapshot of ``state`` (no lock needed)."""
    fences, meta = state.fences, state.meta
    ids = [f.id for f in fences]
    fence_no = {f: n for n, f in enumerate(ids)}
    all_shapes, all_covers = state.shapes(), state.covers()
    shapes = [all_shapes[f] for f in ids]
    covers = [all_covers[f] for f in ids]
    arrays: Arrays = {}
    arrays["fence_circle"] = np.array([isinstance(s, CircleShape) for s in shapes], dtype=bool)
    arrays["fence_circle_at"] = np.array(
        [(s.center.lat, s.center.lon, s.radius_m) if isinstance(s, CircleShape) else (0, 0, 0) for s in shapes]
    ).reshape(-1, 3)
    wkb = [b"" if isinstance(s, CircleShape) else shapely.to_wkb(s.geometry) for s in shapes]
    arrays["fence_wkb"], arrays["fence_wkb_at"] = _blob(wkb)
    arrays["fence_bounds"] = np.array([s.bounds for s in shapes], dtype=np.float64).reshape(-1, 4)
    for part in ("interior", "boundary"):
        arrays[f"fence_{part}"], arrays[f"fence_{part}_at"] = _cells([getattr(c, part) for c in covers])
    offers = list(state.offers().values())
    offer_no = {o.id: n for n, o in enumerate(offers)}
    arrays["offer_json"], arrays["offer_json_at"] = _blob(
        [o.model_dump_json(by_alias=True, exclude_defaults=True).encode() for o in offers]
    )
    arrays["offer_nearby_m"] = np.array([o.nearby_m for o in offers], dtype=np.float64)
    marked = {
        "paced": [n for n, o in enumerate(offers) if o.pacing != "asap" and (o.daily_budget or o.goal)],
        "optimized": [n for n, o in enumerate(offers) if o.rotation == "optimized" and o.variants],
    }
    reach_keys = [(f, m) for f, by_m in state.reach_covers.items() if f in fence_no for m in by_m]
    reach_no = {key: n for n, key in enumerate(reach_keys)}
    arrays["reach_fence"] = np.array([fence_no[f] for f, _ in reach_keys], dtype=np.int64)
    arrays["reach_m"] = np.array([m for _, m in reach_keys], dtype=np.float64)
    arrays["reach_cells"], arrays["reach_cells_at"] = _cells([state.reach_covers[f][m] for f, m in reach_keys])
    arrays.update(_pairs(state, offer_no, fence_no, reach_no, arrays))
    meta_json = {
        "fences": [
            (f.id, f.merchant_id, meta[f.id].name, meta[f.id].timezone, meta[f.id].version, f.tags, f.audience_only)
            for f in fences
        ],
        "offers": [tuple(Placement.of(o)) for o in offers],
        "marked": marked,
        "schedules": [(schedule_to_json(s), zone) for s, zone in state.schedule_of],
        "offer_schema": offer_schema(),
    }
    return arrays, meta_json


def _pairs(
    state: Captured,
    offer_no: dict[str, int],
    fence_no: dict[str, int],
    reach_no: dict[tuple[str, float], int],
    arrays: Arrays,
) -> Arrays:
    live = state.live
    pair_fence = np.array([fence_no[f] for _, _, f in live], dtype=np.int64)
    nearby = state.nearby_m.tolist()
    pair_reach = np.array([reach_no.get((f, nearby[i]), -1) for i, (_, _, f) in enumerate(live)], dtype=np.int64)
    pair_no = np.arange(len(live), dtype=np.int64)
    member_keys, member_entries = [], []
    for part, kind in (("interior", INTERIOR), ("boundary", BOUNDARY)):
        cells, owners = _gather(arrays[f"fence_{part}"], arrays[f"fence_{part}_at"], pair_fence)
        member_keys.append(cells)
        member_entries.append(pair_no[owners] * KINDS + kind)
    reached = pair_reach >= 0
    cells, owners = _gather(arrays["reach_cells"], arrays["reach_cells_at"], pair_reach[reached])
    members = CellTable.from_pairs(np.concatenate(member_keys), np.concatenate(member_entries))
    reaches = CellTable.from_pairs(cells, pair_no[reached][owners])
    out: Arrays = {
        "pair_offer": np.array([offer_no[o] for _, o, _ in live], dtype=np.int64),
        "pair_fence": pair_fence,
        "pair_nearby_m": state.nearby_m,
        "pair_static": state.static,
        "pair_bounds": state.bounds,
        "pair_schedule": np.array(state.schedules, dtype=np.int64),
    }
    for name, table in (("members", members), ("reaches", reaches)):
        out[f"{name}_keys"], out[f"{name}_starts"], out[f"{name}_entries"] = table.packed_arrays()
    return out


def thaw(arrays: Mapping[str, npt.NDArray[Any]], meta: dict[str, Any], res: int) -> Thawed:
    """The catalog's parts from a snapshot; shapes and offers are decoded when first used. A snapshot whose offers
    were written by another version of the offer model is refused here: its JSON might no longer decode, and
    that would only show when a request first touched one."""
    if meta.get("offer_schema") != offer_schema():
        raise ValueError("its offers were written by another version of geotarget")
    fence_rows = meta["fences"]
    ids: list[str] = [row[0] for row in fence_rows]
    bounds = dict(zip(ids, map(tuple, arrays["fence_bounds"].tolist()), strict=True))
    interior, interior_at = arrays["fence_interior"], arrays["fence_interior_at"]
    boundary, boundary_at = arrays["fence_boundary"], arrays["fence_boundary_at"]
    cells = CoverCells(ids, interior, _owners(interior_at), boundary, _owners(boundary_at))

    def cover(n: int) -> Cover:
        inside = interior[int(interior_at[n]) : int(interior_at[n + 1])].tolist()
        return Cover(res, tuple(inside), tuple(boundary[int(boundary_at[n]) : int(boundary_at[n + 1])].tolist()))

    shape = _shapes(arrays)
    shapes = LazyMap(ids, shape)
    fence_meta = {row[0]: FenceMeta(row[1], row[2], row[3], row[4]) for row in fence_rows}
    fences = [FencePlacing(row[0], row[1], tuple(row[5]), row[6]) for row in fence_rows]
    placements = [Placement(p[0], p[1], tuple(p[2]), tuple(p[3]), p[4], p[5]) for p in meta["offers"]]
    offer_ids = [p.id for p in placements]
    offer = _offers(arrays)
    reach_cells, reach_at = arrays["reach_cells"], arrays["reach_cells_at"].tolist()
    reach_covers: dict[str, dict[float, CellArray]] = {}
    for n, (f, m) in enumerate(zip(arrays["reach_fence"].tolist(), arrays["reach_m"].tolist(), strict=True)):
        reach_covers.setdefault(ids[f], {})[m] = reach_cells[reach_at[n] : reach_at[n + 1]]
    pair_offer, pair_fence = arrays["pair_offer"].tolist(), arrays["pair_fence"].tolist()
    row_offer_ids = [offer_ids[n] for n in pair_offer]
    row_fence_ids = [ids[n] for n in pair_fence]
    zones = [row[3] for row in fence_rows]
    schedules = arrays["pair_schedule"]
    count = len(pair_offer)
    pairs = StoredPairs(
        offers=Rows(lambda r: offer(pair_offer[r]), count, keep=False),
        offer_ids=Rows(row_offer_ids.__getitem__, count, keep=False),
        fence_ids=Rows(row_fence_ids.__getitem__, count, keep=False),
        shapes=Rows(lambda r: shape(pair_fence[r]), count, keep=False),
        zones=Rows(lambda r: zones[pair_fence[r]], count, keep=False),
        schedules=Rows(lambda r: int(schedules[r]), count, keep=False),
        nearby_m=arrays["pair_nearby_m"],
        static=arrays["pair_static"],
        bounds=arrays["pair_bounds"],
        alive=np.ones(count, dtype=bool),
        members=CellTable.stored(arrays["members_keys"], arrays["members_starts"], arrays["members_entries"]),
        reaches=CellTable.stored(arrays["reaches_keys"], arrays["reaches_starts"], arrays["reaches_entries"]),
        schedule_of=tuple((_schedule(raw), zone) for raw, zone in meta["schedules"]),
        reach_covers=reach_covers,
    )
    return Thawed(
        cells=cells,
        covers=LazyMap(ids, cover),
        bounds=bounds,
        shapes=shapes,
        meta=fence_meta,
        audience_fences=frozenset(f.id for f in fences if f.audience_only),
        fences=fences,
        offers=LazyMap(offer_ids, offer),
        placements=placements,
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
    """Fence number -> its shape, each made once (the index and the pairs share it)."""
    made: dict[int, Shape] = {}
    circle, circle_at, wkb = arrays["fence_circle"], arrays["fence_circle_at"], arrays["fence_wkb"]
    wkb_at = arrays["fence_wkb_at"]

    def shape(n: int) -> Shape:
        found = made.get(n)
        if found is None:
            if circle[n]:
                lat, lon, radius_m = circle_at[n].tolist()
                found = CircleShape(LatLng(lat=lat, lon=lon), radius_m)
            else:
                found = PolygonShape(shapely.from_wkb(wkb[int(wkb_at[n]) : int(wkb_at[n + 1])].tobytes()))
            made[n] = found
        return found

    return shape


def _offers(arrays: Mapping[str, npt.NDArray[Any]]) -> Callable[[int], Offer]:
    """Offer number -> the offer, decoded once (the catalog's map and the pairs share it)."""
    made: dict[int, Offer] = {}
    blob, at = arrays["offer_json"], arrays["offer_json_at"]

    def offer(n: int) -> Offer:
        found = made.get(n)
        if found is None:
            found = made[n] = offer_from_json(blob[int(at[n]) : int(at[n + 1])].tobytes())
        return found

    return offer


def _blob(parts: Iterable[bytes]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Byte strings as one array and their starts (one more than there are strings)."""
    chunks = list(parts)
    at = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in chunks], out=at[1:])
    return np.frombuffer(b"".join(chunks), dtype=np.uint8), at


def _cells(groups: Sequence[Iterable[int]]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    arrays = [np.asarray(list(g) if not isinstance(g, np.ndarray) else g, dtype=np.uint64) for g in groups]
    at = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=at[1:])
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint64)
    return flat, at


def _owners(at: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """For each item of groups laid end to end (``at``: where each starts), the number of its group."""
    return np.repeat(np.arange(len(at) - 1, dtype=np.int64), np.diff(at))


def _gather(
    flat: npt.NDArray[np.uint64], at: npt.NDArray[np.int64], groups: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """The cells of each of ``groups`` (repeats allowed), and the position in ``groups`` each came from."""
    starts, sizes = at[groups], at[groups + 1] - at[groups]
    owners = np.repeat(np.arange(len(groups), dtype=np.int64), sizes)
    offsets = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return flat[np.repeat(starts, sizes) + offsets], owners
