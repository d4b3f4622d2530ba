"""Pings sent by apps (``POST /v1/pings``): judged by ``ping_rules`` (the same rules as bulk files), hashed,
handed to the event stream.

A ping is idempotent by (device, timestamp): its event id is ``p:<device_key>:<epoch ms>``. Rows that break a
rule are reported by index and the others are kept. ``lmt`` pings are accepted and dropped: no history.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from geofences import FenceIndex, LatLng, cells
from geofences.bulk import query_many
from geotarget.errors import InvalidInput
from geotarget.measurement import ping_rules
from geotarget.measurement.devices import device_key
from geotarget.measurement.events import Event, EventSink, ping_event_id

MAX_PINGS = 1_000


@dataclass(frozen=True)
class PingResult:
    index: int
    event_id: str | None = None
    stored: bool = False
    error: InvalidInput | None = None
    swapped: str | None = None  # kept, but near no fence where a fence lies near it with lat and lon swapped


def json_body(body: bytes) -> Any:
    """A request body parsed (in a worker thread: a large one is real work), or where it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", "body") from exc


def parse_pings_body(body: bytes) -> list[Any]:
    """The rows of a ``POST /v1/pings`` body: ``{"pings": [...]}``, or one ping object."""
    document = json_body(body)
    if isinstance(document, list):
        raise InvalidInput('send a list of pings as {"pings": [...]} (a bare JSON array is not accepted)', "body")
    if isinstance(document, dict) and "pings" in document:
        rows = document["pings"]
        if not isinstance(rows, list):
            raise InvalidInput("pings must be a list", "pings")
        return rows
    if not isinstance(document, dict):
        raise InvalidInput('send one ping object or {"pings": [...]}', "body")
    return [document]


def accept_pings(
    rows: Sequence[Any],
    sink: EventSink,
    secret: str,
    res: int,
    now: datetime,
    kept: Callable[[list[tuple[str, Event]]], object] | None = None,
    max_ahead_s: float = ping_rules.MAX_CLOCK_SKEW_S,
) -> list[PingResult]:
    """Judge every row (``ping_rules``), append the good ones in one call, report each by index. ``kept``
    receives the appended pings with the raw device id each came with (for presence)."""
    if len(rows) > MAX_PINGS:
        raise InvalidInput(f"at most {MAX_PINGS:,} pings per request; this has {len(rows):,}", "pings")
    columns = ping_rules.from_rows(rows)
    verdicts = ping_rules.judge(columns, now, max_ahead_s)
    results: list[PingResult] = []
    keep: list[Event] = []
    raw_ids: list[str] = []
    for i, verdict in enumerate(verdicts.tolist()):
        if verdict >= 0:
            rule = ping_rules.RULES[verdict]
            field = ".".join(part for part in (f"pings[{i}]", rule.field(columns, i)) if part)
            results.append(PingResult(i, error=InvalidInput(rule.message(columns, i), field)))
        elif columns.lmt[i]:
            results.append(PingResult(i))  # answered, never kept
        else:
            event = _ping(columns, i, secret, res)
            keep.append(event)
            raw_ids.append(str(columns.device_id[i]))
            results.append(PingResult(i, event.event_id, stored=True))
    sink.append(keep)
    if kept is not None and keep:
        kept(list(zip(raw_ids, keep, strict=True)))
    return results


SWAP_CHECKS = 3  # kept rows looked at for swapped coordinates: an app that swaps them swaps them in every row


def flag_swapped(
    results: list[PingResult], rows: Sequence[Any], hint: Callable[[LatLng], str | None]
) -> list[PingResult]:
    """The first few kept rows, each told when its lat and lon look swapped (``hint``: the same check as an
    empty ``/v1/nearby`` answer gets)."""
    flagged = list(results)
    for result in [r for r in results if r.stored][:SWAP_CHECKS]:
        row = rows[result.index]
        message = hint(LatLng(lat=float(row["lat"]), lon=float(row["lon"])))
        if message is not None:
            flagged[result.index] = replace(result, swapped=message)
    return flagged


def _ping(columns: ping_rules.PingColumns, i: int, secret: str, res: int) -> Event:
    key = device_key(secret, columns.device_id[i])
    at = ping_rules.ns_to_datetime(int(columns.ts[i].astype(np.int64)))
    lat, lon, accuracy = float(columns.lat[i]), float(columns.lon[i]), float(columns.accuracy_m[i])
    return Event(
        kind="ping",
        event_id=ping_event_id(key, at),
        at=at,
        device_key=key,
        lat=lat,
        lon=lon,
        cell=cells.cell_to_str(cells.latlng_to_cell(LatLng(lat, lon), res)),
        accuracy_m=None if math.isnan(accuracy) else accuracy,
    )


def fences_inside(index: FenceIndex, events: pa.Table) -> list[list[str]]:
    """For each row of an events table, the fences a ping was inside (empty for other kinds), in one
    vectorised pass."""
    inside: list[list[str]] = [[] for _ in range(events.num_rows)]
    pings = np.flatnonzero(pc.equal(events["kind"], "ping").to_numpy(zero_copy_only=False))
    if not len(pings):
        return inside
    lats = events["lat"].to_numpy()[pings]
    lons = events["lon"].to_numpy()[pings]
    matches = query_many(index, lats, lons)
    for point, fence in zip(matches.point.tolist(), matches.fence.tolist(), strict=True):
        inside[int(pings[point])].append(matches.fence_ids[fence])
    return inside
