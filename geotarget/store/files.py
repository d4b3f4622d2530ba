"""Files written whole or not at all: a reader (another process, DuckDB) never sees half a file."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet_atomically(table: pa.Table, target: Path) -> Path:
    """Write to a hidden temporary name in the same folder, then rename over ``target`` (atomic on POSIX)."""
    temporary = target.with_name(f".{target.stem}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, temporary, compression="zstd")
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return target
