"""The event store: Parquet files partitioned by UTC day (``day=YYYY-MM-DD/<batch>.parquet``), read with DuckDB.

Files are immutable and written atomically (temporary name, then rename), so any number of processes may add
files and any number may read; a cluster engine can read the same layout later. Delivery upstream is
at-least-once, so a batch can be written twice: readers count ``DISTINCT event_id`` and never double count.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from geotarget.measurement.events import Event

SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("event_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("device_key", pa.string()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("cell", pa.string()),
        ("offer_id", pa.string()),
        ("merchant_id", pa.string()),
        ("fence_id", pa.string()),
        ("inside", pa.bool_()),
        ("distance_m", pa.float64()),
        ("accuracy_m", pa.float64()),
        ("fences", pa.list_(pa.string())),  # for pings: the fences the device was inside
    ]
)


def events_to_table(events: Sequence[Event], fences: Sequence[Sequence[str]] | None = None) -> pa.Table:
    columns = {
        "kind": [e.kind for e in events],
        "event_id": [e.event_id for e in events],
        "ts": [e.at for e in events],
        "device_key": [e.device_key for e in events],
        "lat": [e.lat for e in events],
        "lon": [e.lon for e in events],
        "cell": [e.cell for e in events],
        "offer_id": [e.offer_id for e in events],
        "merchant_id": [e.merchant_id for e in events],
        "fence_id": [e.fence_id for e in events],
        "inside": [e.inside for e in events],
        "distance_m": [e.distance_m for e in events],
        "accuracy_m": [e.accuracy_m for e in events],
        "fences": [list(f) for f in fences] if fences is not None else [[] for _ in events],
    }
    return pa.table(columns, schema=SCHEMA)


class ParquetEventStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def glob(self) -> str:
        return str(self.root / "day=*" / "*.parquet")

    def has_data(self) -> bool:
        return any(self.root.glob("day=*/*.parquet"))

    def write(self, table: pa.Table, batch: str | None = None) -> list[Path]:
        """Write ``table`` (``SCHEMA``) split by UTC day; returns the files written."""
        if table.num_rows == 0:
            return []
        table = table.cast(SCHEMA)
        batch = batch or uuid.uuid4().hex
        # Sort once by UTC day and write zero-copy slices: one pass, whatever the number of days.
        micros = table["ts"].cast(pa.int64()).to_numpy()
        day_numbers = micros // 86_400_000_000
        order = np.argsort(day_numbers, kind="stable")
        table, day_numbers = table.take(order), day_numbers[order]
        starts = np.flatnonzero(np.r_[True, day_numbers[1:] != day_numbers[:-1]])
        ends = np.r_[starts[1:], len(day_numbers)]
        written = []
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            part = table.slice(start, end - start)
            day = (date(1970, 1, 1) + timedelta(days=int(day_numbers[start]))).isoformat()
            folder = self.root / f"day={day}"
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{batch}.parquet"
            temporary = folder / f".{batch}.{uuid.uuid4().hex}.tmp"
            pq.write_table(part, temporary, compression="zstd")
            temporary.replace(target)
            written.append(target)
        return written

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A private in-memory DuckDB for one query (DuckDB connections are not shared across threads)."""
        connection = duckdb.connect(":memory:")
        connection.execute("SET TimeZone = 'UTC'")
        return connection

    def files(self) -> list[Path]:
        return sorted(self.root.glob("day=*/*.parquet"))

    def erase_devices(self, device_keys: Iterable[str]) -> int:
        """Rewrite every file that holds any of ``device_keys`` without their rows; returns rows removed."""
        keys = pa.array(sorted(set(device_keys)), type=pa.string())
        removed = 0
        for path in self.files():
            table = pq.read_table(path, schema=SCHEMA)
            hit = pc.is_in(table["device_key"], value_set=keys)
            count = pc.sum(hit).as_py() or 0
            if count:
                kept = table.filter(pc.invert(hit))
                temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp")
                pq.write_table(kept, temporary, compression="zstd")
                temporary.replace(path)
                removed += count
        return removed

    def compact(self, erased: Iterable[str] = (), min_files: int = 16) -> int:
        """Merge each day's files into one where a day has ``min_files`` or more; returns files merged away.

        Write the merged file first, then delete the parts: a reader in between sees rows twice, and reports count
        every event once by its id. Run it only where events are written (the consumer's housekeeping), so no
        batch lands in a day while it is being merged. Rows of ``erased`` devices are left out, so an erasure
        that rewrote a part while it was being merged is not undone."""
        gone = pa.array(sorted(set(erased)), type=pa.string())
        merged = 0
        for folder in sorted(self.root.glob("day=*")):
            parts = sorted(folder.glob("*.parquet"))
            if len(parts) < min_files:
                continue
            table = pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in parts])
            if len(gone):
                table = table.filter(pc.invert(pc.is_in(table["device_key"], value_set=gone)))
            target = folder / f"compact-{uuid.uuid4().hex}.parquet"
            temporary = folder / f".{target.stem}.tmp"
            pq.write_table(table, temporary, compression="zstd")
            temporary.replace(target)
            for part in parts:
                part.unlink()
            merged += len(parts) - 1
        return merged

    def delete_days_before(self, first_kept: date) -> list[str]:
        """Remove whole day partitions older than ``first_kept``; returns the days removed."""
        removed = []
        for folder in sorted(self.root.glob("day=*")):
            day = date.fromisoformat(folder.name.removeprefix("day="))
            if day < first_kept:
                for path in folder.iterdir():
                    path.unlink()
                folder.rmdir()
                removed.append(day.isoformat())
        return removed
