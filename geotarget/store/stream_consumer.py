"""Moves events from the Redis Stream into the event store, at least once and never counted twice.

One process at a time holds the consumer lock and reads the stream through a consumer group under a fixed
consumer name. A batch is: read (first anything left pending by a writer that died, then new entries) → drop
erased devices → note which fences each ping was inside → write one Parquet file per day → record the unique
redemption codes it carried (SQL) → XACK and XDEL.
A crash anywhere before XACK leaves the entries pending, and the next holder writes them again under the same
file name; a crash after the write but before XACK writes a duplicate that readers drop by event id.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import redis

from geotarget.metrics import CONSUMER_BATCH, STREAM_LAG
from geotarget.store import keys
from geotarget.store.event_store import ParquetEventStore, events_from_json, with_fences
from geotarget.store.redis_client import ensure_group

log = logging.getLogger(__name__)
GROUP = "event-store"
CONSUMER = "writer"
LOCK_MS = 15_000
_RENEW = (Path(__file__).parent / "lua" / "renew_lock.lua").read_text()
_RELEASE = (Path(__file__).parent / "lua" / "release_lock.lua").read_text()


class StreamConsumer:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        store: ParquetEventStore,
        fences_of: Callable[[pa.Table], list[list[str]]],
        erased: Callable[[], set[str]],
        batch_size: int = 5_000,
        stored: Callable[[pa.Table], object] | None = None,
    ) -> None:
        """``stored`` is handed every batch once it is written and before it is acknowledged (so after a crash
        it sees the batch again: it must be idempotent)."""
        self.client = client
        self.stream = keys.events_stream(prefix)
        self.lock = keys.consumer_lock(prefix)
        self.store = store
        self.fences_of = fences_of
        self.erased = erased
        self.stored = stored
        self.batch_size = batch_size
        self.token = uuid.uuid4().hex
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._group_ready = False

    def lead(self) -> bool:
        """Take or keep the consumer lock; True while this process is the writer."""
        if self._renew(keys=[self.lock], args=[self.token, LOCK_MS]):
            return True
        return bool(self.client.set(self.lock, self.token, nx=True, px=LOCK_MS))

    def release(self) -> None:
        """Give the lock up if this process still holds it (atomically: never someone else's)."""
        self._release(keys=[self.lock], args=[self.token])

    def poll(self, block_ms: int = 1_000, linger_ms: int = 0) -> int:
        """One batch; returns how many stream entries it settled (0 when there was nothing to do).

        After the first entry arrives, keep reading for up to ``linger_ms`` or until the batch is full, so a
        steady trickle of events becomes a few larger files rather than very many tiny ones."""
        self._ensure_group()
        entries = self._read("0", None) or self._read(">", block_ms)
        if not entries:
            return 0
        deadline = time.monotonic() + linger_ms / 1000
        while len(entries) < self.batch_size and (left_s := deadline - time.monotonic()) > 0:
            time.sleep(min(left_s, 0.1))  # let entries gather: a read of many, not many reads of a few each
            entries += self._read(">", None, self.batch_size - len(entries))
        ids = [entry_id for entry_id, _ in entries]
        table, malformed = events_from_json([fields.get("e", "") for _, fields in entries])
        if malformed:
            log.warning("dropping %d malformed stream entries of %s..%s", malformed, ids[0], ids[-1])
        if gone := self.erased():
            table = table.filter(pc.invert(pc.is_in(table["device_key"], pa.array(list(gone), pa.string()))))
        if table.num_rows:
            table = with_fences(table, self.fences_of(table))
            self.store.write(table, batch=f"{ids[0]}_{ids[-1]}".replace("-", "."))
            if self.stored is not None:
                self.stored(table)
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream, GROUP, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.xlen(self.stream)  # settled entries are deleted: what is left is the lag
        *_, lag = pipe.execute()
        CONSUMER_BATCH.observe(len(ids))
        STREAM_LAG.set(lag)
        return len(ids)

    def drain(self) -> int:
        """Settle everything currently in the stream (tests, CLI)."""
        total = 0
        while settled := self.poll(block_ms=1):
            total += settled
        return total

    def _read(self, start: str, block_ms: int | None, count: int | None = None) -> list[tuple[str, dict[str, str]]]:
        try:
            answer: Any = self.client.xreadgroup(
                GROUP, CONSUMER, {self.stream: start}, count=count or self.batch_size, block=block_ms
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis came back empty (restarted without persistence, or flushed): make the group again
            log.warning("the event stream's consumer group is gone; creating it again")
            self._group_ready = False
            self._ensure_group()
            return []
        if not answer:
            return []
        _, entries = answer[0]
        return [(str(entry_id), fields) for entry_id, fields in entries if fields]

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        ensure_group(self.client, self.stream, GROUP)
        self._group_ready = True


class ConsumerThread:
    """Runs a ``StreamConsumer`` in the background of a server process: it writes only while it holds the lock,
    so with several workers exactly one of them moves events at a time. The holder also runs ``housekeeping``
    (retention, compaction) every ``housekeeping_every_s`` and ``sweep`` (presence timeouts) every lap."""

    def __init__(
        self,
        consumer: StreamConsumer,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_every_s: float = 600.0,
        linger_ms: int = 2_000,
        sweep: Callable[[], object] | None = None,
    ) -> None:
        self.consumer = consumer
        self.sweep = sweep
        self.housekeeping = housekeeping
        self.housekeeping_every_s = housekeeping_every_s
        self.linger_ms = linger_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-consumer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(redis.RedisError):
            self.consumer.release()

    def _run(self) -> None:
        last_housekeeping = -math.inf  # at once, then every housekeeping_every_s
        while not self._stop.is_set():
            try:
                if self.consumer.lead():
                    self.consumer.poll(block_ms=500, linger_ms=self.linger_ms)
                    if self.sweep:
                        self.sweep()
                    if self.housekeeping and time.monotonic() - last_housekeeping >= self.housekeeping_every_s:
                        last_housekeeping = time.monotonic()
                        self.housekeeping()
                else:
                    self._stop.wait(2.0)
            except Exception:
                log.warning("event consumer fault; retrying", exc_info=True)
                self._stop.wait(1.0)
