"""Erasure and retention: what ``DELETE /v1/devices/{id}`` and the retention setting do.

Erasing a device records its key (so events still on their way are dropped by the consumer), deletes its Redis
keys (cap counters) and its entries still in the event stream, and rewrites the event files without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import redis
from sqlalchemy.orm import Session, sessionmaker

from geotarget.measurement.devices import device_key
from geotarget.measurement.events import Event
from geotarget.store import keys, repository
from geotarget.store.database import transaction
from geotarget.store.event_store import SCHEMA, ParquetEventStore, events_to_table


@dataclass(frozen=True)
class Erased:
    device_key: str
    redis_keys: int
    stream_entries: int
    stored_events: int


def erase_device(
    device_id: str,
    secret: str,
    factory: sessionmaker[Session],
    client: redis.Redis,
    prefix: str,
    store: ParquetEventStore,
) -> Erased:
    key = device_key(secret, device_id)
    with transaction(factory) as session:
        repository.add_erasure(session, key)
    redis_keys = 0
    for name in client.scan_iter(match=keys.device_pattern(prefix, key).replace("[", "\\["), count=1000):
        redis_keys += int(client.delete(name))
    stream_entries = 0
    stream = keys.events_stream(prefix)
    last = "-"
    while True:
        chunk: Any = client.xrange(stream, min=last, max="+", count=1000)
        if not chunk:
            break
        doomed = [entry_id for entry_id, fields in chunk if _belongs(fields, key)]
        if doomed:
            stream_entries += int(client.xdel(stream, *doomed))
        if len(chunk) < 1000:
            break
        last = "(" + str(chunk[-1][0])
    return Erased(key, redis_keys, stream_entries, store.erase_devices([key]))


def _belongs(fields: Any, key: str) -> bool:
    try:
        return Event.from_json(fields["e"]).device_key == key
    except Exception:
        return False


_VISITS_BEFORE = (Path(__file__).parent.parent / "store" / "sql" / "visits_before.sql").read_text()


def apply_retention(store: ParquetEventStore, retention_days: int, today: date) -> int:
    """Delete raw pings older than ``retention_days`` and keep what reports need of them: one ``visit`` record
    per visit (device key, fence, start time; no position). Impressions and cap-blocked records stay. Returns
    the number of pings removed."""
    cutoff = datetime.combine(today - timedelta(days=retention_days), datetime.min.time(), tzinfo=UTC)
    old = [p for p in store.files() if date.fromisoformat(p.parent.name.removeprefix("day=")) < cutoff.date()]
    if not old:
        return 0
    with store.connect() as connection:
        starts = connection.execute(_VISITS_BEFORE, {"glob": store.glob, "cutoff": cutoff}).fetchall()
    visits = [
        Event(
            "visit",
            f"v:{device}:{fence}:{ms}",
            datetime.fromtimestamp(ms / 1000, UTC),
            device,
            0.0,
            0.0,
            "",
            fence_id=fence,
        )
        for device, fence, ms in starts
    ]
    removed = 0
    for path in old:
        table = pq.read_table(path, schema=SCHEMA)
        raw = pc.is_in(table["kind"], value_set=pa.array(["ping", "visit"]))
        count = pc.sum(pc.equal(table["kind"], pa.scalar("ping"))).as_py() or 0
        kept = table.filter(pc.invert(raw))
        if kept.num_rows:
            temporary = path.with_name(f".{path.stem}.retention.tmp")
            pq.write_table(kept, temporary, compression="zstd")
            temporary.replace(path)
        else:
            path.unlink()
        removed += count
    if visits:
        store.write(events_to_table(visits, [[v.fence_id] for v in visits]), batch="visits-retained")
    return removed
