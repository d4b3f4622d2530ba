"""Erasure and retention: what ``DELETE /v1/devices/{id}`` and the retention setting do.

Erasing a device records its key (so events still on their way are dropped by the consumer), deletes its Redis
keys (cap counters) and its entries still in the event stream, and rewrites the event files without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import redis
from sqlalchemy.orm import Session, sessionmaker

from geotarget.devices import device_key
from geotarget.events import Event
from geotarget.store import keys, repository
from geotarget.store.database import transaction
from geotarget.store.event_store import SCHEMA, ParquetEventStore


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


def apply_retention(store: ParquetEventStore, retention_days: int, today: date) -> int:
    """Delete raw pings older than ``retention_days``; impressions and cap-blocked records stay (they are the
    figures reports are made of). Returns the pings removed."""
    first_kept = today - timedelta(days=retention_days)
    removed = 0
    for path in store.files():
        day = date.fromisoformat(path.parent.name.removeprefix("day="))
        if day >= first_kept:
            continue
        table = pq.read_table(path, schema=SCHEMA)
        pings = pc.equal(table["kind"], pa.scalar("ping"))
        count = pc.sum(pings).as_py() or 0
        if count:
            kept = table.filter(pc.invert(pings))
            if kept.num_rows:
                temporary = path.with_name(f".{path.stem}.retention.tmp")
                pq.write_table(kept, temporary, compression="zstd")
                temporary.replace(path)
            else:
                path.unlink()
            removed += count
    return removed
