"""Bulk ping files (CSV or Parquet: device_id, lat, lon, ts, accuracy_m?, lmt?) into the event store, vectorised.

Per chunk: validate every column at once, hash each distinct device id once, compute H3 cells, find the fences
every ping is inside with ``geofences.bulk.query_many``, and write Parquet partitions. No per-row Python on the
hot path except h3's point-to-cell call (h3-py has no array form) and one HMAC per distinct device.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from geofences import FenceIndex, cells
from geofences.bulk import query_many
from geotarget.measurement.devices import device_key
from geotarget.store.event_store import SCHEMA, ParquetEventStore

REQUIRED = ("device_id", "lat", "lon", "ts")
_OFFSET = r"(?:Z|z|[+-]\d\d:?\d\d)$"


@dataclass
class IngestSummary:
    rows: int = 0
    accepted: int = 0
    dropped_lmt: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def read_chunks(path: Path, rows_per_chunk: int = 1_000_000) -> Iterator[pd.DataFrame]:
    """The file in chunks, as DataFrames; raises ``ValueError`` naming missing columns."""
    if path.suffix.lower() in (".parquet", ".pq"):
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        _check_columns(names)
        for batch in parquet.iter_batches(batch_size=rows_per_chunk):
            yield batch.to_pandas()
        return
    options = pacsv.ReadOptions(block_size=64 << 20)
    convert = pacsv.ConvertOptions(column_types={"device_id": pa.string(), "ts": pa.string()})
    reader = pacsv.open_csv(path, read_options=options, convert_options=convert)
    _check_columns(reader.schema.names)
    for batch in reader:
        yield batch.to_pandas()


def _check_columns(names: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)} (need {', '.join(REQUIRED)})")


def prepare(frame: pd.DataFrame, secret: str, index: FenceIndex, erased: set[str], summary: IngestSummary) -> pa.Table:
    """Validate and enrich one chunk; rejected rows are counted by reason in ``summary``."""
    n = len(frame)
    summary.rows += n
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype=np.float64)
    lon = pd.to_numeric(frame["lon"], errors="coerce").to_numpy(dtype=np.float64)
    device = frame["device_id"].astype("string")
    ok = np.ones(n, dtype=bool)

    def reject(mask: np.ndarray, reason: str) -> None:
        nonlocal ok
        hit = mask & ok
        summary.rejected[reason] += int(hit.sum())
        ok &= ~mask

    reject(
        device.isna().to_numpy()
        | (device.str.len().fillna(0).to_numpy() > 200)
        | (device.str.len().fillna(0).to_numpy() == 0),
        "device_id missing or longer than 200",
    )
    reject(~np.isfinite(lat) | ~np.isfinite(lon), "lat/lon not a finite number")
    reject((np.abs(lat) > 90) | (np.abs(lon) > 180), "lat/lon outside ±90/±180")
    ts = _timestamps(frame["ts"])
    reject(ts.isna().to_numpy(), "ts not ISO 8601 with an offset, nor epoch seconds")
    if "accuracy_m" in frame:
        accuracy = pd.to_numeric(frame["accuracy_m"], errors="coerce").to_numpy(dtype=np.float64)
        reject(~np.isnan(accuracy) & ((accuracy < 0) | (accuracy > 100_000)), "accuracy_m outside 0–100,000")
    else:
        accuracy = np.full(n, np.nan)
    if "lmt" in frame:
        lmt = frame["lmt"].astype(str).str.lower().isin(["true", "1", "yes"]).to_numpy()
        summary.dropped_lmt += int((lmt & ok).sum())
        ok &= ~lmt
    keep = np.nonzero(ok)[0]
    # Per distinct value only (devices, cells): HMAC and cell names; rows then take them by code.
    codes, uniques = pd.factorize(device.iloc[keep])
    unique_keys = np.array([device_key(secret, d) for d in uniques], dtype=object)
    if erased:
        not_erased = ~np.isin(unique_keys, list(erased))[codes]
        summary.rejected["device erased"] += int((~not_erased).sum())
        keep, codes = keep[not_erased], codes[not_erased]
    summary.accepted += len(keep)
    keys = pa.array(unique_keys, pa.string()).take(pa.array(codes))
    lat, lon, accuracy = lat[keep], lon[keep], accuracy[keep]
    nanos = ts.iloc[keep].dt.as_unit("ns").astype("int64").to_numpy()  # parsed text may come in another unit

    millis = pa.array(nanos // 1_000_000).cast(pa.string())
    point_cells = cells.latlngs_to_cells(lat, lon, index.res)
    unique_cells, inverse = np.unique(point_cells, return_inverse=True)
    cell_text = pa.array([cells.cell_to_str(cells.Cell(int(c))) for c in unique_cells], pa.string()).take(inverse)
    matches = query_many(index, lat, lon, point_cells)
    fence_names = np.array(matches.fence_ids, dtype=object)
    offsets = np.searchsorted(matches.point, np.arange(len(keep) + 1))
    fences = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(fence_names[matches.fence] if len(fence_names) else [], pa.string())
    )
    m = len(keep)
    empty = pa.array([""] * m, pa.string())
    return pa.table(
        {
            "kind": pa.array(["ping"] * m, pa.string()),
            "event_id": pc.binary_join_element_wise("p", keys, millis, ":"),
            "ts": pa.array(nanos // 1_000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "device_key": keys,
            "lat": lat,
            "lon": lon,
            "cell": cell_text,
            "offer_id": empty,
            "merchant_id": empty,
            "fence_id": empty,
            "inside": pa.array(np.zeros(m, dtype=bool)),
            "distance_m": np.zeros(m),
            "accuracy_m": pa.array(accuracy, pa.float64(), from_pandas=True),
            "fences": fences,
        },
        schema=SCHEMA,
    )


def _timestamps(column: pd.Series) -> pd.Series:
    """UTC timestamps; NaT where a value is neither ISO 8601 with an offset nor epoch seconds."""
    if pd.api.types.is_numeric_dtype(column):
        return pd.to_datetime(column, unit="s", utc=True, errors="coerce")
    text = column.astype("string")
    numeric = pd.to_numeric(text, errors="coerce")
    parsed = pd.to_datetime(
        text.where(text.str.contains(_OFFSET, regex=True, na=False)), utc=True, errors="coerce", format="ISO8601"
    )
    from_epoch = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
    return parsed.fillna(from_epoch)


def ingest_file(
    path: Path,
    store: ParquetEventStore,
    secret: str,
    index: FenceIndex,
    erased: set[str],
    progress: Callable[[int], object] | None = None,
    rows_per_chunk: int = 1_000_000,
) -> IngestSummary:
    summary = IngestSummary()
    for chunk in read_chunks(path, rows_per_chunk):
        table = prepare(chunk, secret, index, erased, summary)
        store.write(table)
        if progress is not None:
            progress(len(chunk))
    return summary
