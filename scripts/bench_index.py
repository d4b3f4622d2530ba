"""Benchmark the H3 fence index against the peers a user would pick instead: a shapely STRtree and
geopandas.sjoin, on the same fences and the same points, in the same run (ratios, since machines are noisy).

    python scripts/bench_index.py                        # 10,000 fences, 1,000,000 points, res 9, 10, 11
    python scripts/bench_index.py --points 200000 --res 10

Prints build time, memory, cells, point queries per second through ``FenceIndex.query`` (one point at a time,
as the API does) and ``geofences.bulk.query_many`` (vectorised), the peers' rates, the ratios (``÷cells``: to
computing the points' H3 cells alone, vectorised, the floor of any H3 method), and the number of
(point, fence) pairs on which any of them disagrees with the membership rule (must be 0).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
import tracemalloc

import geopandas as gpd
import numpy as np
import shapely

from geofences import CircleShape, FenceError, FenceIndex, LatLng, PolygonShape, cells, parse_feature
from geofences.bulk import query_many
from geofences.index import cover_shape

CENTRE = LatLng(60.1699, 24.9384)  # Helsinki
HALF_SIDE_M = 6_000


def make_fences(n: int, rng: np.random.Generator) -> list[PolygonShape | CircleShape]:
    """Store-sized fences: 70 % rotated rectangles 10–60 m a side, 30 % circles of 15–80 m."""
    k = 111_195 * math.cos(math.radians(CENTRE.lat))
    shapes: list[PolygonShape | CircleShape] = []
    for _ in range(n):
        x, y = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, 2)
        lat, lon = CENTRE.lat + y / 111_195, CENTRE.lon + x / k
        if rng.random() < 0.3:
            shapes.append(CircleShape(LatLng(lat, lon), float(rng.uniform(15, 80))))
            continue
        w, d = rng.uniform(10, 60, 2)
        a = rng.uniform(0, math.pi)
        ring = []
        for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)):
            px, py = dx * w / 2, dy * d / 2
            rx, ry = px * math.cos(a) - py * math.sin(a), px * math.sin(a) + py * math.cos(a)
            ring.append((lon + rx / k, lat + ry / 111_195))
        shapes.append(PolygonShape(shapely.Polygon(ring)))
    return shapes


def make_points(
    n: int, shapes: list[PolygonShape | CircleShape], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Half uniform over the city, half within ~40 m of a random store (so boundary cells are exercised)."""
    k = 111_195 * math.cos(math.radians(CENTRE.lat))
    half = n // 2
    x = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, half)
    y = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M, half)
    anchors = rng.integers(0, len(shapes), n - half)
    centres = np.array([_centre(shapes[i]) for i in anchors])
    lats = np.concatenate((CENTRE.lat + y / 111_195, centres[:, 0] + rng.normal(0, 40, n - half) / 111_195))
    lons = np.concatenate((CENTRE.lon + x / k, centres[:, 1] + rng.normal(0, 40, n - half) / k))
    return lats, lons


def _centre(shape: PolygonShape | CircleShape) -> tuple[float, float]:
    if isinstance(shape, CircleShape):
        return shape.center.lat, shape.center.lon
    c = shape.geometry.centroid
    return c.y, c.x


def pairs_from(points: np.ndarray, fences: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(points.tolist(), fences.tolist(), strict=True))


def index_memory_mb(res: int, shapes) -> float:
    """Python memory the index's own tables hold (the shapes are shared with every peer, so not counted)."""
    covers = [cover_shape(shape, res) for shape in shapes]
    tracemalloc.start()
    index = FenceIndex(res)
    for i, (shape, cover) in enumerate(zip(shapes, covers, strict=True)):
        index.add(str(i), shape, cover)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return held / 2**20


def bench_index(res: int, shapes, lats, lons, scalar_points: int) -> dict[str, object]:
    started = time.perf_counter()
    index = FenceIndex(res)
    for i, shape in enumerate(shapes):
        index.add(str(i), shape, cover_shape(shape, res))
    build_s = time.perf_counter() - started
    memory_mb = index_memory_mb(res, shapes)
    stored = sum(len(c.interior) + len(c.boundary) for c in (index.cover(str(i)) for i in range(len(shapes))) if c)

    started = time.perf_counter()
    scalar: set[tuple[int, int]] = set()
    for i in range(scalar_points):
        for fence_id in index.query(LatLng(float(lats[i]), float(lons[i]))):
            scalar.add((i, int(fence_id)))
    scalar_rate = scalar_points / (time.perf_counter() - started)

    query_many(index, lats[:1000], lons[:1000])  # pack the index's tables (done once per index change)
    cells_s, bulk_s = [], []
    for _ in range(3):  # interleaved, best of three: the ratio should not depend on which ran during a hiccup
        started = time.perf_counter()
        cells.latlngs_to_cells(lats, lons, res)
        cells_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        matches = query_many(index, lats, lons)
        bulk_s.append(time.perf_counter() - started)
    cells_rate, bulk_rate = len(lats) / min(cells_s), len(lats) / min(bulk_s)
    ids = np.array([int(f) for f in matches.fence_ids])
    bulk = pairs_from(matches.point, ids[matches.fence])
    return {
        "res": res,
        "build_s": build_s,
        "memory_mb": memory_mb,
        "cells": stored,
        "scalar_rate": scalar_rate,
        "bulk_rate": bulk_rate,
        "cells_rate": cells_rate,
        "bulk": bulk,
        "scalar": scalar,
    }


def bench_strtree(shapes, lats, lons) -> tuple[float, float, set[tuple[int, int]]]:
    poly_idx = np.array([i for i, s in enumerate(shapes) if isinstance(s, PolygonShape)])
    circ_idx = np.array([i for i, s in enumerate(shapes) if isinstance(s, CircleShape)])
    started = time.perf_counter()
    poly_tree = shapely.STRtree([shapes[i].geometry for i in poly_idx])
    circ_tree = shapely.STRtree([shapely.box(*shapes[i].bounds) for i in circ_idx])
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    points = shapely.points(lons, lats)
    p, f = poly_tree.query(points, predicate="intersects")
    cp, cf = circ_tree.query(points, predicate="intersects")
    centre = np.array([[shapes[i].center.lat, shapes[i].center.lon, shapes[i].radius_m] for i in circ_idx])
    c = centre[cf]
    keep = _haversine(c[:, 0], c[:, 1], lats[cp], lons[cp]) <= c[:, 2]
    rate = len(lats) / (time.perf_counter() - started)
    found = pairs_from(p, poly_idx[f]) | pairs_from(cp[keep], circ_idx[cf[keep]])
    return build_s, rate, found


def bench_strtree_one_at_a_time(shapes, lats, lons, n: int) -> float:
    """What a server would do per request with an STRtree: one point in, exact rule on the candidates."""
    tree = shapely.STRtree([shapely.box(*s.bounds) if isinstance(s, CircleShape) else s.geometry for s in shapes])
    started = time.perf_counter()
    for i in range(n):
        point = LatLng(float(lats[i]), float(lons[i]))
        for f in tree.query(shapely.Point(point.lon, point.lat)):
            shapes[f].covers(point)
    return n / (time.perf_counter() - started)


def bench_sjoin(shapes, lats, lons) -> tuple[float, set[tuple[int, int]]]:
    poly_idx = [i for i, s in enumerate(shapes) if isinstance(s, PolygonShape)]
    circ_idx = [i for i, s in enumerate(shapes) if isinstance(s, CircleShape)]
    polygons = gpd.GeoDataFrame({"fence": poly_idx}, geometry=[shapes[i].geometry for i in poly_idx], crs=4326)
    boxes = gpd.GeoDataFrame(
        {
            "fence": circ_idx,
            "clat": [shapes[i].center.lat for i in circ_idx],
            "clon": [shapes[i].center.lon for i in circ_idx],
            "radius_m": [shapes[i].radius_m for i in circ_idx],
        },
        geometry=[shapely.box(*shapes[i].bounds) for i in circ_idx],
        crs=4326,
    )
    started = time.perf_counter()
    points = gpd.GeoDataFrame({"point": np.arange(len(lats))}, geometry=gpd.points_from_xy(lons, lats), crs=4326)
    joined = gpd.sjoin(points, polygons, predicate="intersects", how="inner")
    near = gpd.sjoin(points, boxes, predicate="intersects", how="inner")
    near = near[
        _haversine(
            near["clat"].to_numpy(),
            near["clon"].to_numpy(),
            lats[near["point"].to_numpy()],
            lons[near["point"].to_numpy()],
        )
        <= near["radius_m"].to_numpy()
    ]
    rate = len(lats) / (time.perf_counter() - started)
    found = pairs_from(joined["point"].to_numpy(), joined["fence"].to_numpy()) | pairs_from(
        near["point"].to_numpy(), near["fence"].to_numpy()
    )
    return rate, found


def _haversine(lat0, lon0, lat, lon):
    phi0, phi = np.radians(lat0), np.radians(lat)
    h = np.sin((phi - phi0) / 2) ** 2 + np.cos(phi0) * np.cos(phi) * np.sin(np.radians(lon - lon0) / 2) ** 2
    return 2 * 6_371_008.8 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def truth(shapes, lats, lons, candidates: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The membership rule itself, applied to every pair anyone reported (shapely.covers / great-circle)."""
    out = set()
    for p, f in candidates:
        shape = shapes[f]
        if isinstance(shape, CircleShape):
            inside = _haversine(shape.center.lat, shape.center.lon, lats[p], lons[p]) <= shape.radius_m
        else:
            inside = shapely.covers(shape.geometry, shapely.Point(lons[p], lats[p]))
        if inside:
            out.add((p, f))
    return out


def rejection_ms() -> dict[str, float]:
    """How fast oversized fences are refused (before any H3 work)."""
    n = 100_000
    ring = [
        [24.9 + 0.01 * math.cos(2 * math.pi * i / n), 60.1 + 0.01 * math.sin(2 * math.pi * i / n)] for i in range(n)
    ]
    ring.append(ring[0])
    square = [[24.5, 60.0], [25.4, 60.0], [25.4, 60.45], [24.5, 60.45], [24.5, 60.0]]
    out = {}
    for name, coords in (("100k-vertex ring", ring), ("50 km square", square)):
        feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [coords]}}
        started = time.perf_counter()
        with contextlib.suppress(FenceError):
            parse_feature(feature)
        out[name] = (time.perf_counter() - started) * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fences", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--scalar-points", type=int, default=None, help="points for the one-at-a-time loop")
    parser.add_argument("--res", type=int, nargs="+", default=[9, 10, 11])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    shapes = make_fences(args.fences, rng)
    lats, lons = make_points(args.points, shapes, rng)
    scalar_points = args.scalar_points or args.points
    print(
        f"{args.fences:,} fences in a 12 km × 12 km city, {args.points:,} points "
        f"({scalar_points:,} through the one-at-a-time query)"
    )

    trees = [bench_strtree(shapes, lats, lons) for _ in range(3)]  # best of three, as for query_many
    tree_build_s, tree_rate, tree_pairs = min(t[0] for t in trees), max(t[1] for t in trees), trees[0][2]
    tree_scalar_rate = bench_strtree_one_at_a_time(shapes, lats, lons, scalar_points)
    joins = [bench_sjoin(shapes, lats, lons) for _ in range(3)]
    sjoin_rate, sjoin_pairs = max(j[0] for j in joins), joins[0][1]
    print(
        f"peers: STRtree build {tree_build_s:.2f} s, bulk {tree_rate:,.0f} points/s, one point at a time "
        f"{tree_scalar_rate:,.0f} points/s; geopandas.sjoin {sjoin_rate:,.0f} points/s"
    )
    header = (
        f"{'res':>3} {'build s':>8} {'mem MB':>7} {'cells':>8} {'query() pts/s':>14} {'query_many pts/s':>17} "
        f"{'÷STRtree':>9} {'÷sjoin':>7} {'÷cells':>7} {'query()÷STRtree 1-by-1':>23} {'disagree':>9}"
    )
    print(header)
    for res in args.res:
        r = bench_index(res, shapes, lats, lons, scalar_points)
        everyone = r["bulk"] | r["scalar"] | tree_pairs | sjoin_pairs
        exact = truth(shapes, lats, lons, everyone)
        scalar_exact = {pair for pair in exact if pair[0] < scalar_points}
        disagreements = (
            len(r["bulk"] ^ exact)
            + len(r["scalar"] ^ scalar_exact)
            + len(tree_pairs ^ exact)
            + len(sjoin_pairs ^ exact)
        )
        print(
            f"{res:>3} {r['build_s']:>8.2f} {r['memory_mb']:>7.1f} {r['cells']:>8,} {r['scalar_rate']:>14,.0f} "
            f"{r['bulk_rate']:>17,.0f} {r['bulk_rate'] / tree_rate:>9.2f} {r['bulk_rate'] / sjoin_rate:>7.2f} "
            f"{r['bulk_rate'] / r['cells_rate']:>7.2f} {r['scalar_rate'] / tree_scalar_rate:>23.2f} {disagreements:>9}"
        )
    print(f"(pairs inside a fence: {len(exact):,})")
    for name, ms in rejection_ms().items():
        print(f"rejecting a {name}: {ms:.1f} ms")


if __name__ == "__main__":
    main()
