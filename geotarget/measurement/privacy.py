"""Erasure and retention: what ``DELETE /v1/devices/{id}`` and the retention setting do.

Erasing a device records its key (so events still on their way are dropped by the consumer), deletes its Redis
keys (cap counters) and its entries still in the event stream, and rewrites the event files without it.
Retention replaces raw pings older than the retention period by one position-free ``visit`` record per visit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from geotarget.measurement.devices import device_key
from geotarget.measurement.events import Event, visit_event_id
from geotarget.store.event_store import ParquetEventStore, events_to_table
from geotarget.store.redis_devices import RedisDeviceData
from geotarget.store.repository import Repository


@dataclass(frozen=True)
class Erased:
    device_key: str
    redis_keys: int
    stream_entries: int
    stored_events: int


def erase_device(
    device_id: str, secret: str, repository: Repository, redis_data: RedisDeviceData, store: ParquetEventStore
) -> Erased:
    """Redis is checked first: with Redis away nothing changes. Should it fail half-way, the erasure is already
    recorded (later events are dropped) and repeating the request completes it."""
    redis_data.check()
    key = device_key(secret, device_id)
    repository.add_erasure(key)
    redis_keys, stream_entries = redis_data.erase(key)
    return Erased(key, redis_keys, stream_entries, store.erase_devices([key]))


def apply_retention(store: ParquetEventStore, retention_days: int, today: date) -> int:
    """Delete raw pings older than ``retention_days`` and keep what reports need of them: one ``visit`` record
    per visit (device key, fence, start time; no position). Impressions and cap-blocked records stay. Returns
    the number of pings removed."""
    cutoff = datetime.combine(today - timedelta(days=retention_days), datetime.min.time(), tzinfo=UTC)
    starts = store.visit_starts_before(cutoff)
    removed = store.drop_kinds_before(cutoff, ("ping", "visit"))
    visits = [
        Event(
            kind="visit",
            event_id=visit_event_id(device, fence, ms),
            at=datetime.fromtimestamp(ms / 1000, UTC),
            device_key=device,
            lat=0.0,
            lon=0.0,
            cell="",
            fence_id=fence,
        )
        for device, fence, ms in starts
    ]
    if visits:
        store.write(events_to_table(visits, [[v.fence_id] for v in visits]), batch="visits-retained")
    return removed["ping"]
