"""Bulk ping files (CSV or Parquet: device_id, lat, lon, ts, accuracy_m?, lmt?) into the event store, vectorised.

Per chunk: judge every row column-wise by ``ping_rules`` (the API's own rules), hash each distinct device id once,
compute H3 cells (h3ronpy, over arrays), find the fences every ping is inside with ``geofences.bulk.query_many``,
and write Parquet partitions. No per-row Python on the hot path except one HMAC per distinct device (remembered
across chunks). Typed Parquet columns are read as numbers (``ping_rules.from_batch``), rows sorted by UTC day first.
"""

from __future__ import annotations

import threading
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


class DeviceKeys:
    """Each raw device id's key, computed once per file and remembered (up to ``KEYS_REMEMBERED`` ids, then
    forgotten all at once). Looking up the ids already seen is Arrow's hash join, outside the GIL: a Python
    cache over a chunk's hundred thousand devices held the GIL for a third of the time it was held."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._lock = threading.Lock()
        self._ids = pa.array([], pa.string())
        self._keys = pa.array([], pa.string())

    def of(self, ids: pa.Array) -> pa.Array:
        """Keys of distinct, non-null ``ids``, in their order."""
        with self._lock:
            known_ids, known_keys = self._ids, self._keys
        slots = pc.index_in(ids, value_set=known_ids)
        unknown = slots.is_null()
        new_ids = ids.filter(unknown)
        new_keys = pa.array([device_key(self.secret, d) for d in new_ids.to_pylist()], pa.string())
        with self._lock:
            if len(self._ids) + len(new_ids) > KEYS_REMEMBERED:
                self._ids, self._keys = new_ids, new_keys
            elif len(new_ids):  # another thread may have added some of them too: a duplicate id is harmless
                self._ids = pa.concat_arrays([self._ids, new_ids])
                self._keys = pa.concat_arrays([self._keys, new_keys])
        if not len(new_ids):
            return known_keys.take(slots)
        return pc.replace_with_mask(known_keys.take(slots), unknown, new_keys)


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
    device_keys: DeviceKeys,
    index: FenceIndex,
    erased: set[str],
    summary: IngestSummary,
    now: datetime,
) -> tuple[pa.Table, pa.Array]:
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
    lat, lon, accuracy, ts = columns.lat, columns.lon, columns.accuracy_m, columns.ts
    keep = np.nonzero(ok)[0]
    # Rows in UTC-day order from the start, so the store writes day slices without reordering every column.
    keep = keep[np.argsort(ts[keep].astype(np.int64) // 86_400_000_000_000, kind="stable")]
    # Per distinct value only (devices, cells): HMAC and cell names; rows then take them by code.
    codes, uniques = _distinct_devices(columns.device_id, keep)
    unique_keys = device_keys.of(uniques)
    if erased:
        gone = pc.is_in(unique_keys, value_set=pa.array(list(erased), pa.string()))
        not_erased = ~gone.to_numpy(zero_copy_only=False)[codes]
        summary.rejected["device erased"] += int((~not_erased).sum())
        keep, codes = keep[not_erased], codes[not_erased]
    summary.accepted += len(keep)
    keys = unique_keys.take(pa.array(codes))
    lat, lon, accuracy = lat[keep], lon[keep], accuracy[keep]
    nanos = ts[keep].astype(np.int64)

    point_cells = cells.latlngs_to_cells(lat, lon, index.res)
    inverse, unique_cells = pd.factorize(point_cells)  # hashed: a sort of every cell costs more
    cell_text = pa.array([cells.cell_to_str(cells.Cell(int(c))) for c in unique_cells], pa.string()).take(inverse)
    matches = query_many(index, lat, lon, point_cells)
    offsets = np.searchsorted(matches.point, np.arange(len(keep) + 1))
    fence_names = pa.array(matches.fence_ids, pa.string()).take(pa.array(matches.fence))  # Arrow's take: no GIL
    fences = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), fence_names)
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
    return stored, pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), uniques)


def _distinct_devices(device_ids: np.ndarray | pa.Array, keep: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Per kept row, the number of its device among the distinct ones, hashed in Arrow over every row's (a
    device seen only in refused rows costs one HMAC, never a row), and those distinct ids."""
    ids = device_ids if isinstance(device_ids, pa.Array) else pa.array(device_ids, pa.string())
    encoded = pc.dictionary_encode(ids)
    codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)  # refused rows: any number
    return codes[keep], encoded.dictionary.cast(pa.string())


def ingest_file(
    path: Path,
    store: ParquetEventStore,
    secret: str,
    index: FenceIndex,
    erased: set[str],
    progress: Callable[[int], object] | None = None,
    rows_per_chunk: int = 1_000_000,
    threads: int = 2,
    written: Callable[[pa.Table, Sequence[str]], object] | None = None,
) -> IngestSummary:
    """Chunks are prepared and written ``threads`` at a time (numpy, pyarrow, shapely and h3ronpy work outside the
    GIL; one writing thread was measured busy 70 % of an ingest, the bottleneck); ``progress`` and ``written``
    then see them in file order, ``written`` with each chunk's stored rows and their raw device ids. A chunk's
    files may land before an earlier chunk's: a re-run after a crash stores each ping once for reports anyway."""
    summary, now = IngestSummary(), datetime.now(UTC)
    device_keys = DeviceKeys(secret)
    waiting: deque[tuple[Future[tuple[pa.Table, pa.Array]], IngestSummary, int]] = deque()

    def prepare_and_write(chunk: pa.RecordBatch, part: IngestSummary) -> tuple[pa.Table, pa.Array]:
        table, raw_ids = prepare(chunk, device_keys, index, erased, part, now)
        store.write(table)
        return table, raw_ids

    def finish_oldest() -> None:
        done, part, rows = waiting.popleft()
        table, raw_ids = done.result()
        if written is not None:
            written(table, raw_ids.to_pylist())
        summary.add(part)
        if progress is not None:
            progress(rows)

    with ThreadPoolExecutor(max(threads, 1), thread_name_prefix="ingest") as pool:
        for chunk in read_ping_chunks(path, ping_rules.REQUIRED, rows_per_chunk):
            part = IngestSummary()
            waiting.append((pool.submit(prepare_and_write, chunk, part), part, len(chunk)))
            if len(waiting) > threads:
                finish_oldest()
        while waiting:
            finish_oldest()
    return summary
