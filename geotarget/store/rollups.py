"""Daily rollups: each closed UTC day of raw events compacted, exactly, into two files that reports read in its
place (docs/reports.md, "Rollups").

- ``events``: the day's events other than pings and visit records, each copy once (copies alike in every column are
  one; copies that differ under one id are kept, as queries pick among them by their own window), sorted by
  kind, merchant, offer and fence so that a read of one kind and one offer or fence reads a few row groups.
- ``segments``: the day's pings and visit records inside fences as one row per device, fence, kind and UTC quarter
  hour: first and last instant and the number of pings. Every question reports ask of pings is answered exactly by
  segments: a quarter hour lies inside one UTC day and one local day of every time zone (offsets are whole quarter
  hours), two pings of a quarter are under 30 minutes apart (so only a segment's first ping can start a visit,
  after a gap to the previous segment's last), and a visit's dwell runs from its first segment's first ping to its
  last segment's last.

A day's rollup records the raw files (and their sizes) it was made from. A reader uses it only while the day's raw
files are exactly those (a late event, an erasure, retention or compaction makes another set) and reads the raw
files otherwise, so figures never depend on whether a day was rolled; the next rollup run makes it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa

from geotarget.store.file_area import FileArea

FOLDER = "rollups"
INDEX = f"{FOLDER}/index.json"
ROW_GROUP = 16_384  # rows per row group: a fence's or an offer's rows are a few groups to read
_ROLL_EVENTS = (Path(__file__).parent / "sql" / "rollup_events.sql").read_text()
_ROLL_SEGMENTS = (Path(__file__).parent / "sql" / "rollup_segments.sql").read_text()

SEGMENTS = pa.schema(
    [
        ("device_key", pa.string()),
        ("fence", pa.string()),
        ("kind", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("last_ts", pa.timestamp("us", tz="UTC")),
        ("pings", pa.int64()),
    ]
)


@dataclass(frozen=True)
class RolledDay:
    raw: Mapping[str, int]  # the raw files it was made from, with their sizes
    events: str
    segments: str
    rows: Mapping[str, int] = field(default_factory=dict)  # rows written per file (for people reading the index)


def read_index(area: FileArea) -> dict[date, RolledDay]:
    data = area.read_bytes(INDEX)
    if not data:
        return {}
    return {date.fromisoformat(day): RolledDay(**entry) for day, entry in orjson.loads(data).items()}


def write_index(area: FileArea, index: Mapping[date, RolledDay]) -> None:
    entries = {day.isoformat(): vars(rolled) for day, rolled in sorted(index.items())}
    area.write_bytes(INDEX, orjson.dumps(entries, option=orjson.OPT_INDENT_2))


def current(index: Mapping[date, RolledDay], raw: Mapping[str, int]) -> dict[date, RolledDay]:
    """The rollups still made of exactly the raw files there are now."""
    by_day: dict[date, dict[str, int]] = {}
    for name, size in raw.items():
        by_day.setdefault(day_of(name), {})[name] = size
    return {day: rolled for day, rolled in index.items() if dict(rolled.raw) == by_day.get(day)}


def roll_day(area: FileArea, connection: duckdb.DuckDBPyConnection, day: date, raw: Mapping[str, int]) -> RolledDay:
    """Write ``day``'s rollup from its raw files ``raw`` (names and sizes); the index is the caller's."""
    files = [area.url_of(name) for name in sorted(raw)]
    events = connection.sql(_ROLL_EVENTS, params={"files": files}).to_arrow_table()
    segments = connection.sql(_ROLL_SEGMENTS, params={"files": files}).to_arrow_table().cast(SEGMENTS)
    stem = f"{FOLDER}/day={day.isoformat()}/{uuid.uuid4().hex}"
    written = {
        kind: area.write_parquet(table, f"{stem}-{kind}.parquet", row_group_size=ROW_GROUP)
        for kind, table in (("events", events), ("segments", segments))
    }
    rows = {"events": events.num_rows, "segments": segments.num_rows}
    return RolledDay(dict(raw), written["events"], written["segments"], rows)


def day_of(name: str) -> date:
    """The UTC day of a raw file or a rollup file, from its ``day=YYYY-MM-DD`` folder."""
    folder = next(part for part in name.split("/") if part.startswith("day="))
    return date.fromisoformat(folder.removeprefix("day="))
