"""Raw event files are encoded for what they hold: dictionaries only where values repeat, doubles split by byte,
times as deltas; whatever writes one (a batch, compaction, retention, an erasure) writes it so, and what is read
back is what was written, to the bit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from geotarget.measurement.events import Event
from geotarget.store.event_store import ParquetEventStore, events_to_table

AT = datetime(2026, 11, 19, 9, 30, 15, 123456, tzinfo=UTC)


def pings(first: int, count: int) -> pa.Table:
    events = [
        Event(kind="ping", event_id=f"p{n}", at=AT + timedelta(seconds=n), device_key=f"dev{n % 3}",
              lat=60.1699 + n * 1e-7, lon=24.9384 - n * 1e-7, cell="8a1126", accuracy_m=None if n % 2 else 4.5)
        for n in range(first, first + count)
    ]  # fmt: skip
    return events_to_table(events, [["fen_a"]] * count)


def encodings(path: Path) -> dict[str, tuple[str, ...]]:
    stored = pq.ParquetFile(path)
    return {
        stored.schema.column(i).path: stored.metadata.row_group(0).column(i).encodings
        for i in range(stored.metadata.num_columns)
    }


def encoded_as_planned(path: Path) -> bool:
    found = encodings(path)
    return (
        "BYTE_STREAM_SPLIT" in found["lat"]
        and "DELTA_BINARY_PACKED" in found["ts"]
        and "RLE_DICTIONARY" not in found["event_id"]
        and "RLE_DICTIONARY" in found["device_key"]
    )


def test_a_written_batch_is_encoded_and_reads_back_exactly(tmp_path):
    store = ParquetEventStore(tmp_path / "events")
    table = pings(0, 50)
    (written,) = store.write(table)
    assert encoded_as_planned(Path(written))
    assert pq.read_table(written).equals(table)


def test_compaction_writes_the_same_encoding(tmp_path):
    store = ParquetEventStore(tmp_path / "events")
    for first in range(0, 40, 10):
        store.write(pings(first, 10))
    assert store.compact(min_files=4) == 3
    (merged,) = store.files()
    assert encoded_as_planned(Path(merged))
    assert pq.read_table(merged).sort_by("event_id").equals(pings(0, 40).sort_by("event_id"))
