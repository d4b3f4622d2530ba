"""Bulk ping files (CSV or Parquet: device_id, lat, lon, ts, accuracy_m?, lmt?) into the event store, vectorised.

Per chunk: judge every row column-wise by ``ping_rules`` (the API's own rules), hash each distinct device id once,
compute H3 cells (h3ronpy, over arrays), find the fences every ping is inside with ``geofences.bulk.query_many``,
and write Parquet partitions. No per-row Python on the hot path except one HMAC per distinct device (remembered
across chunks). Typed Parquet columns are read as numbers (``ping_rules.from_batch``), rows sorted by UTC day first.
"""

from __future__ import annotations

import functools
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geofences import FenceIndex, cells
from geofences.bulk import query_many
from geotarget.measurement import ping_rules
from geotarget.measurement.devices import device_key
from geotarget.measurement.events import ping_event_ids
from geotarget.store.event_store import ParquetEventStore, table_of
from geotarget.store.ping_files import read_ping_chunks

KEYS_REMEMBERED = 1_000_000


@dataclass
class IngestSummary:
    rows: int = 0
    accepted: int = 0
    dropped_lmt: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, other: IngestSummary) -> None:
        self.rows += other.rows
        self.accepted += other.accepted
        self.dropped_lmt += other.dropped_lmt
        self.rejected.update(other.rejected)


def prepare(
    chunk: pa.RecordBatch,
    keyed: Callable[[str], str],
    index: FenceIndex,
    erased: set[str],
    summary: IngestSummary,
    now: datetime,
) -> tuple[pa.Table, np.ndarray]:
    """Judge (``ping_rules``) and enrich one chunk; rejected rows are counted by reason in ``summary``. Returns
    the stored rows and, for each, the raw device id as the file gave it (for presence, never stored)."""
    columns = ping_rules.from_batch(chunk)
    summary.rows += len(columns)
    verdicts = ping_rules.judge(columns, now)
    for number, count in zip(*np.unique(verdicts[verdicts >= 0], return_counts=True), strict=True):
        summary.rejected[ping_rules.RULES[number].reason] += int(count)
    ok = verdicts < 0
    summary.dropped_lmt += int((ok & columns.lmt).sum())
    ok &= ~columns.lmt
    lat, lon, accuracy, device, ts = columns.lat, columns.lon, columns.accuracy_m, columns.device_id, columns.ts
    keep = np.nonzero(ok)[0]
    # Rows in UTC-day order from the start, so the store writes day slices without reordering every column.
    keep = keep[np.argsort(ts[keep].astype(np.int64) // 86_400_000_000_000, kind="stable")]
    # Per distinct value only (devices, cells): HMAC and cell names; rows then take them by code.
    codes, uniques = _distinct_devices(chunk, device, keep)
    unique_keys = np.array([keyed(d) for d in uniques], dtype=object)
    if erased:
        not_erased = ~np.isin(unique_keys, list(erased))[codes]
        summary.rejected["device erased"] += int((~not_erased).sum())
        keep, codes = keep[not_erased], codes[not_erased]
    summary.accepted += len(keep)
    keys = pa.array(unique_keys, pa.string()).take(pa.array(codes))
    lat, lon, accuracy = lat[keep], lon[keep], accuracy[keep]
    nanos = ts[keep].astype(np.int64)

    point_cells = cells.latlngs_to_cells(lat, lon, index.res)
    inverse, unique_cells = pd.factorize(point_cells)  # hashed: a sort of every cell costs more
    cell_text = pa.array([cells.cell_to_str(cells.Cell(int(c))) for c in unique_cells], pa.string()).take(inverse)
    matches = query_many(index, lat, lon, point_cells)
    fence_names = np.array(matches.fence_ids, dtype=object)
    offsets = np.searchsorted(matches.point, np.arange(len(keep) + 1))
    fences = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(fence_names[matches.fence] if len(fence_names) else [], pa.string())
    )
    stored = table_of(
        {
            "kind": pa.repeat(pa.scalar("ping"), len(keep)),
            "event_id": ping_event_ids(keys, pa.array(nanos // 1_000_000)),
            "ts": pa.array(nanos // 1_000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "device_key": keys,
            "lat": lat,
            "lon": lon,
            "cell": cell_text,
            "accuracy_m": pa.array(accuracy, pa.float64(), from_pandas=True),
            "fences": fences,
        }
    )
    return stored, device[keep]


def _distinct_devices(chunk: pa.RecordBatch, device: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, Sequence[str]]:
    """Per kept row, the number of its device among the distinct ones (every row's, when hashed in Arrow: a
    device seen only in refused rows costs one HMAC, never a row)."""
    ids = chunk.column(chunk.schema.get_field_index("device_id"))
    if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
        encoded = pc.dictionary_encode(ids)
        codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)  # refused rows: any number
        return codes[keep], encoded.dictionary.to_pylist()
    codes, uniques = pd.factorize(device[keep])
    return codes, list(uniques)


def ingest_file(
    path: Path,
    store: ParquetEventStore,
    secret: str,
    index: FenceIndex,
    erased: set[str],
    progress: Callable[[int], object] | None = None,
    rows_per_chunk: int = 1_000_000,
    threads: int = 2,
    written: Callable[[pa.Table, np.ndarray], object] | None = None,
) -> IngestSummary:
    """Chunks are prepared ``threads`` at a time (numpy, pyarrow, shapely and h3ronpy work outside the GIL) and
    written in file order; ``written`` then sees each chunk's stored rows with their raw device ids."""
    summary, now = IngestSummary(), datetime.now(UTC)
    # A device's key once per file, not once per chunk (bounded: a file may hold millions of devices).
    keyed = functools.lru_cache(maxsize=KEYS_REMEMBERED)(functools.partial(device_key, secret))
    waiting: deque[tuple[Future[tuple[pa.Table, np.ndarray]], IngestSummary, int]] = deque()

    def write_oldest() -> None:
        done, part, rows = waiting.popleft()
        table, raw_ids = done.result()
        store.write(table)
        if written is not None:
            written(table, raw_ids)
        summary.add(part)
        if progress is not None:
            progress(rows)

    with ThreadPoolExecutor(max(threads, 1), thread_name_prefix="ingest") as pool:
        for chunk in read_ping_chunks(path, ping_rules.REQUIRED, rows_per_chunk):
            part = IngestSummary()
            waiting.append((pool.submit(prepare, chunk, keyed, index, erased, part, now), part, len(chunk)))
            if len(waiting) > threads:
                write_oldest()
        while waiting:
            write_oldest()
    return summary
