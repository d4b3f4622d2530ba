"""Bulk ping files read in chunks: CSV (told it is CSV, every column as text where text is expected) or
Parquet, chosen by the file's suffix; never by guessing from its content."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def read_ping_chunks(path: Path, required: Sequence[str], rows_per_chunk: int = 1_000_000) -> Iterator[pa.RecordBatch]:
    """The file in chunks; raises ``ValueError`` naming missing columns."""
    if path.suffix.lower() in (".parquet", ".pq"):
        parquet = pq.ParquetFile(path)
        _check_columns(parquet.schema_arrow.names, required)
        yield from parquet.iter_batches(batch_size=rows_per_chunk)
        return
    options = pacsv.ReadOptions(block_size=64 << 20)
    text = {name: pa.string() for name in ("device_id", "ts", "lmt")}
    reader = pacsv.open_csv(path, read_options=options, convert_options=pacsv.ConvertOptions(column_types=text))
    _check_columns(reader.schema.names, required)
    yield from reader


def _check_columns(names: Sequence[str], required: Sequence[str]) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise ValueError(f"missing column(s): {', '.join(missing)} (need {', '.join(required)})")
