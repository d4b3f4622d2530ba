"""The event store: Parquet files partitioned by UTC day (``day=YYYY-MM-DD/<batch>.parquet``) in a folder or an
S3 bucket (``FileArea``), read with DuckDB.

Files are immutable and written whole (a file renamed into place in a folder, an object uploaded at once), so any
number of processes may add files and any number may read; a cluster engine can read the same layout later.
Delivery upstream is at-least-once, so a batch can be written twice: readers count ``DISTINCT event_id`` and never
double count.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from geotarget.errors import Busy
from geotarget.measurement.events import Event
from geotarget.store import rollups
from geotarget.store.event_schema import ENCODING, SCHEMA
from geotarget.store.file_area import FileArea, S3Options
from geotarget.store.report_engines import DuckDBEngine, ReportEngine, Views, duckdb_connection, register_views

_VISITS_BEFORE = (Path(__file__).parent / "sql" / "visits_before.sql").read_text()

_COLUMN_OF = {"at": "ts"}  # Event field -> stored column, where the names differ
_EMPTY = {pa.string(): "", pa.bool_(): False, pa.float64(): 0.0}


def events_to_table(events: Sequence[Event], fences: Sequence[Sequence[str]] | None = None) -> pa.Table:
    """Events as rows of ``SCHEMA``; ``fences`` lists, per event, the fences a ping was inside."""
    columns: dict[str, Any] = {
        _COLUMN_OF.get(f.name, f.name): [getattr(e, f.name) for e in events] for f in dataclasses.fields(Event)
    }
    columns["fences"] = [list(f) for f in fences] if fences is not None else [[] for _ in events]
    return pa.table(columns, schema=SCHEMA)


_JSON_SCHEMA = pa.schema([pa.field("at" if f.name == "ts" else f.name, f.type) for f in SCHEMA if f.name != "fences"])
_JSON_OPTIONS = pj.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="error")


def events_from_json(documents: Sequence[str]) -> tuple[pa.Table, int]:
    """``Event.to_json`` documents (stream entries) as ``SCHEMA`` rows without fences, parsed in one columnar
    pass; returns the table and how many malformed documents were left out."""
    try:
        table = _read_json(documents)
    except (pa.ArrowInvalid, ValueError):  # rare: find the bad ones one by one
        good = [d for d in documents if _parses(d)]
        table = _read_json(good) if good else _JSON_SCHEMA.empty_table()
    columns = table.rename_columns(["ts" if n == "at" else n for n in table.column_names])
    return columns.append_column("fences", pa.array([[]] * columns.num_rows, pa.list_(pa.string()))), (
        len(documents) - table.num_rows
    )


def with_fences(table: pa.Table, fences: Sequence[Sequence[str]]) -> pa.Table:
    """``table`` with its ``fences`` column replaced, one list per row."""
    return table.set_column(table.schema.get_field_index("fences"), "fences", pa.array(fences, pa.list_(pa.string())))


def _read_json(documents: Sequence[str]) -> pa.Table:
    lines = io.BytesIO("\n".join(documents).encode())
    return pj.read_json(lines, read_options=pj.ReadOptions(use_threads=False), parse_options=_JSON_OPTIONS)


def _parses(document: str) -> bool:
    if "\n" in document:
        return False
    try:
        return bool(_read_json([document]).num_rows == 1)
    except (pa.ArrowInvalid, ValueError):
        return False


def table_of(columns: Mapping[str, Any]) -> pa.Table:
    """A ``SCHEMA`` table from the columns given; the others are empty (``""``, false, 0, null, no fences)."""
    rows = len(next(iter(columns.values())))
    full = {}
    for column in SCHEMA:
        if column.name in columns:
            full[column.name] = columns[column.name]
        elif column.type in _EMPTY:
            full[column.name] = pa.repeat(pa.scalar(_EMPTY[column.type], column.type), rows)
        else:
            full[column.name] = pa.nulls(rows, column.type)
    return pa.table(full, schema=SCHEMA)


class EventStoreUnavailable(Busy):
    """The event files cannot be read or written now (the object store is down or slow)."""

    code = "event_store_unavailable"


@contextmanager
def _unavailable_as_busy() -> Iterator[None]:
    try:
        yield
    except (OSError, duckdb.IOException, duckdb.HTTPException) as exc:
        message = f"the event store is unavailable ({type(exc).__name__}); try again shortly"
        raise EventStoreUnavailable(message) from exc


class ParquetEventStore:
    def __init__(
        self,
        location: str | Path | FileArea,
        s3: S3Options | None = None,
        engine: Callable[[FileArea], ReportEngine] = DuckDBEngine,
    ) -> None:
        self.area = location if isinstance(location, FileArea) else FileArea.at(location, s3)
        self.engine = engine(self.area)

    @property
    def glob(self) -> str:
        return self.area.url_of("day=*/*.parquet")

    def has_data(self) -> bool:
        return bool(self._names())

    @_unavailable_as_busy()
    def write(self, table: pa.Table, batch: str | None = None) -> list[str]:
        """Write ``table`` (``SCHEMA``) split by UTC day; returns the files written."""
        if table.num_rows == 0:
            return []
        table = table.cast(SCHEMA)
        batch = batch or uuid.uuid4().hex
        # Sort once by UTC day and write zero-copy slices: one pass, whatever the number of days.
        micros = table["ts"].cast(pa.int64()).to_numpy()
        day_numbers = micros // 86_400_000_000
        if np.any(day_numbers[1:] < day_numbers[:-1]):  # a take copies every column: only when out of order
            order = np.argsort(day_numbers, kind="stable")
            table, day_numbers = table.take(order), day_numbers[order]
        starts = np.flatnonzero(np.r_[True, day_numbers[1:] != day_numbers[:-1]])
        ends = np.r_[starts[1:], len(day_numbers)]
        written = []
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            part = table.slice(start, end - start)
            day = (date(1970, 1, 1) + timedelta(days=int(day_numbers[start]))).isoformat()
            written.append(self.area.path(self._write_raw(part, f"day={day}/{batch}.parquet")))
        return written

    def _write_raw(self, table: pa.Table, name: str) -> str:
        """A raw event file (``SCHEMA``), whole or not at all, encoded as ``ENCODING`` says."""
        return self.area.write_parquet(table, name, **ENCODING)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A private in-memory DuckDB for one query (DuckDB connections are not shared across threads)."""
        return duckdb_connection(self.area)

    @_unavailable_as_busy()
    def query(
        self, sql: str, params: Mapping[str, Any], first: date | None = None, last: date | None = None,
        edges_cut: bool = False,
    ) -> list[tuple[Any, ...]]:  # fmt: skip
        """Rows of one report query (DuckDB's dialect, ``$name`` parameters) run by the store's engine over the
        views of ``views``."""
        return self.engine.run(sql, params, self.views(first, last, edges_cut))

    @contextmanager
    def reading(
        self, first: date | None = None, last: date | None = None, edges_cut: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection for one query, closed after, with the views of ``views``."""
        with self.connect() as connection, _unavailable_as_busy():
            register_views(connection, self.area, self.views(first, last, edges_cut))
            yield connection

    @_unavailable_as_busy()
    def views(self, first: date | None = None, last: date | None = None, edges_cut: bool = False) -> Views:
        """The files of the views a report query reads, over the UTC days ``first``..``last`` (None: no bound):
        ``events`` (every event, but a rolled day's pings and visit records only as its segments),
        ``rolled_segments`` (those segments) and ``raw_events`` (every raw event). A query that cuts its first and
        last day at instants other than whole quarter hours says ``edges_cut``: those two days are read raw, as
        segments cannot be cut. The files out of reach is ``EventStoreUnavailable``."""
        listing = self.area.sizes(suffix="")
        raw = {n: size for n, size in listing.items() if _is_raw(n) and _within(n, first, last)}
        rolled = rollups.current(rollups.read_index(self.area), raw) if rollups.INDEX in listing else {}
        if edges_cut:
            rolled = {day: r for day, r in rolled.items() if day not in (first, last)}
        unrolled = [n for n in raw if rollups.day_of(n) not in rolled]
        weeks = rollups.read_weeks(self.area) if rollups.WEEKS in listing else {}
        weeks = rollups.weeks_read(weeks, first, last, {rollups.day_of(n) for n in raw}, rolled)
        read: list[rollups.RolledDay | rollups.RolledWeek] = [
            *(r for day, r in rolled.items() if rollups.monday_of(day) not in weeks),
            *weeks.values(),
        ]
        return Views(
            events=sorted([*unrolled, *(r.events for r in read)]),
            rolled_segments=sorted(r.segments for r in read),
            raw_events=sorted(raw),
        )

    def files(self) -> list[str]:
        """Every raw event file, as paths of the area's filesystem (local paths for a folder)."""
        return [self.area.path(name) for name in self._names()]

    @_unavailable_as_busy()
    def _names(self) -> list[str]:
        return [name for name in self.area.names() if _is_raw(name)]

    @_unavailable_as_busy()
    def roll(self, today: date, days: Collection[date] = ()) -> list[date]:
        """Roll up every closed UTC day (before ``today``) whose rollup is missing or stale, or exactly ``days``,
        then merge the closed weeks whose merge is missing or stale; returns the days rolled. Rollup files no index
        entry names (replaced by the previous run) are deleted first: a reader that listed the index before it was
        replaced had a whole run to finish. One process at a time (the consumer's housekeeping lock, which
        ``geotarget rollup`` takes too)."""
        listing = self.area.sizes()
        index, weeks = rollups.read_index(self.area), rollups.read_weeks(self.area)
        rollups_made: list[rollups.RolledDay | rollups.RolledWeek] = [*index.values(), *weeks.values()]
        named = {n for r in rollups_made for n in (r.events, r.segments)}
        for name in listing:
            if name.startswith(rollups.FOLDER + "/") and name not in named:
                self.area.delete(name)
        raw: dict[date, dict[str, int]] = {}
        for name, size in listing.items():
            if _is_raw(name):
                raw.setdefault(rollups.day_of(name), {})[name] = size
        every = {n: size for files in raw.values() for n, size in files.items()}
        fresh = rollups.current(index, every)
        wanted = sorted(d for d in raw if d < today and (d in days if days else d not in fresh))
        with self.connect() as connection:
            for day in wanted:
                index[day] = rollups.roll_day(self.area, connection, day, raw[day])
                rollups.write_index(self.area, index)  # day by day: a run stopped half-way keeps what it did
            if gone := [day for day in index if day not in raw]:  # no raw files left: nothing to stand for
                index = {d: r for d, r in index.items() if d not in gone}
                rollups.write_index(self.area, index)
            rollups.roll_weeks(self.area, connection, weeks, rollups.current(index, every), raw.keys(), today)
        return wanted

    @_unavailable_as_busy()
    def erase_devices(self, device_keys: Iterable[str]) -> int:
        """Rewrite every file that holds any of ``device_keys`` without their rows; returns rows removed."""
        keys = pa.array(sorted(set(device_keys)), type=pa.string())
        removed = 0
        for name in self.area.names():  # raw files and rollups alike
            table = self.area.read_table(name, SCHEMA if _is_raw(name) else None)
            hit = pc.is_in(table["device_key"], value_set=keys)
            count = pc.sum(hit).as_py() or 0
            if count:
                kept = table.filter(pc.invert(hit))
                if _is_raw(name):
                    self._write_raw(kept, name)
                else:
                    self.area.write_parquet(kept, name, row_group_size=rollups.ROW_GROUP)
                removed += count
        return removed

    @_unavailable_as_busy()
    def compact(self, erased: Iterable[str] = (), min_files: int = 16) -> int:
        """Merge each day's files into one where a day has ``min_files`` or more; returns files merged away.

        Write the merged file first, then delete the parts: a reader in between sees rows twice, and reports count
        every event once by its id. Only the parts read are deleted, so batches other consumers add meanwhile
        stay (a batch written again under a part's name holds that part's events, which the merge kept). One
        process at a time (the consumer's housekeeping). Rows of ``erased`` devices are left out, so an erasure
        that rewrote a part while it was being merged is not undone."""
        gone = pa.array(sorted(set(erased)), type=pa.string())
        merged = 0
        for day, group in itertools.groupby(self._names(), key=_day_folder):
            parts = list(group)
            if len(parts) < min_files:
                continue
            table = pa.concat_tables([self.area.read_table(p, SCHEMA) for p in parts])
            if len(gone):
                table = table.filter(pc.invert(pc.is_in(table["device_key"], value_set=gone)))
            self._write_raw(table, f"{day}/compact-{uuid.uuid4().hex}.parquet")
            for part in parts:
                self.area.delete(part)
            merged += len(parts) - 1
        return merged

    @_unavailable_as_busy()
    def visit_starts_before(self, cutoff: datetime) -> list[tuple[str, str, int]]:
        """(device key, fence, epoch ms) of every visit that starts among the raw pings before ``cutoff``."""
        if not any(_day_of(name) < cutoff.date() for name in self._names()):
            return []
        with self.reading() as connection:
            rows = connection.execute(_VISITS_BEFORE, {"glob": self.glob, "cutoff": cutoff}).fetchall()
        return [(str(device), str(fence), int(ms)) for device, fence, ms in rows]

    @_unavailable_as_busy()
    def drop_kinds_before(self, cutoff: datetime, kinds: Sequence[str]) -> dict[str, int]:
        """Remove events of ``kinds`` from every day partition before ``cutoff``'s day; returns rows removed by
        kind. Files left empty are deleted."""
        removed: dict[str, int] = dict.fromkeys(kinds, 0)
        doomed = pa.array(list(kinds), pa.string())
        for name in self._names():
            if _day_of(name) >= cutoff.date():
                continue
            table = self.area.read_table(name, SCHEMA)
            hit = pc.is_in(table["kind"], value_set=doomed)
            for kind in kinds:
                removed[kind] += pc.sum(pc.equal(table["kind"], pa.scalar(kind))).as_py() or 0
            kept = table.filter(pc.invert(hit))
            if kept.num_rows:
                self._write_raw(kept, name)
            else:
                self.area.delete(name)
        return removed


def _is_raw(name: str) -> bool:
    return name.startswith("day=")


def _within(name: str, first: date | None, last: date | None) -> bool:
    day = _day_of(name)
    return (first is None or first <= day) and (last is None or day <= last)


def _day_folder(name: str) -> str:
    return name.split("/", 1)[0]


def _day_of(name: str) -> date:
    return date.fromisoformat(_day_folder(name).removeprefix("day="))
