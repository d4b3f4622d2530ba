"""Moves events from the Redis Stream into the event store, at least once and never counted twice.

Any number of consumers (serving workers, ``geotarget consume --processes N``, on any machine) read the stream
through one consumer group, each under a name of its own, with no election: each entry goes to one of them. A
batch is: read (first what this consumer left pending, then entries another consumer left pending for
``claim_idle_ms``: it died or was stopped, then new entries) → drop erased devices → note which fences each ping
was inside → write one Parquet file per day → record the unique redemption codes it carried (SQL) → XACK and
XDEL. A crash anywhere before XACK leaves the entries pending until another consumer claims them and writes them
again; readers drop such duplicates by event id. Housekeeping (retention, compaction, the presence sweeper) is
done by one consumer at a time: whichever holds the consumer lock.

With several shards (``store.keys``) each shard has its stream and its group; a batch gathers new entries of every
shard in one pipelined read, and a consumer that finds all of them empty waits ``IDLE_MS`` (a cluster cannot block
on several slots at once). Pending entries (its own, then other consumers' left for ``claim_idle_ms``) are looked
for in a shard at most every ``PENDING_EVERY_S`` then, rather than before every read.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
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
LOCK_MS = 15_000
CLAIM_IDLE_MS = 60_000  # an entry pending this long has lost its consumer (a batch takes seconds at most)
FORGET_IDLE_MS = 3_600_000  # a consumer with nothing pending, silent this long, is gone for good
IDLE_MS = (
    250  # with several shards: the wait after a round found every shard's stream empty (events wait seconds anyway)
)
PENDING_EVERY_S = 5.0  # with several shards: how often one shard's pending entries are looked for
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
        claim_idle_ms: int = CLAIM_IDLE_MS,
        shards: int = 1,
    ) -> None:
        """``stored`` is handed every batch once it is written and before it is acknowledged (so after a crash
        it sees the batch again: it must be idempotent)."""
        self.client = client
        self.streams = [keys.events_stream(p) for p in keys.every_shard(prefix, shards)]
        self.stream = self.streams[0]  # with one shard, the only one
        self.lock = keys.consumer_lock(prefix)
        self.store = store
        self.fences_of = fences_of
        self.erased = erased
        self.stored = stored
        self.batch_size = batch_size
        self.token = uuid.uuid4().hex
        self.name = f"{socket.gethostname()}-{os.getpid()}-{self.token[:8]}"  # this consumer's, in the group
        self.claim_idle_ms = claim_idle_ms
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._group_ready = False
        self._pending_due = [0.0] * len(self.streams)  # monotonic time each shard's pending entries are looked for

    def lead(self) -> bool:
        """Take or keep the consumer lock; True while this process does the housekeeping."""
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
        taken = self._first(block_ms)
        if not taken:
            return 0
        deadline = time.monotonic() + linger_ms / 1000
        while (count := sum(map(len, taken.values()))) < self.batch_size and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))  # let entries gather: a read of many, not many reads of a few each
            for shard, more in self._new(self.batch_size - count).items():
                taken.setdefault(shard, []).extend(more)
        entries = [entry for shard in sorted(taken) for entry in taken[shard]]
        ids = [entry_id for entry_id, _ in entries]
        table, malformed = events_from_json([fields.get("e", "") for _, fields in entries])
        if malformed:
            log.warning("dropping %d malformed stream entries of %s..%s", malformed, ids[0], ids[-1])
        if gone := self.erased():
            table = table.filter(pc.invert(pc.is_in(table["device_key"], pa.array(list(gone), pa.string()))))
        if table.num_rows:
            table = with_fences(table, self.fences_of(table))
            first = min(taken)
            batch = f"{taken[first][0][0]}_{taken[first][-1][0]}".replace("-", ".")
            self.store.write(table, batch=batch if len(self.streams) == 1 else f"{first}.{batch}")
            if self.stored is not None:
                self.stored(table)
        lag = 0
        for shard, settled in taken.items():
            pipe = self.client.pipeline(transaction=True)  # one stream, one slot
            pipe.xack(self.streams[shard], GROUP, *(entry_id for entry_id, _ in settled))
            pipe.xdel(self.streams[shard], *(entry_id for entry_id, _ in settled))
            pipe.xlen(self.streams[shard])  # settled entries are deleted: what is left is the lag
            lag += pipe.execute()[-1]
        CONSUMER_BATCH.observe(len(ids))
        STREAM_LAG.set(lag)
        return len(ids)

    def _first(self, block_ms: int) -> dict[int, list[tuple[str, dict[str, str]]]]:
        """A batch's first entries by shard. With one stream as always: this consumer's pending entries, else
        claimable ones, else new ones, waiting up to ``block_ms``. With several: pending and claimable entries
        of the shards due a look, else every shard's new ones in one pipelined read."""
        if len(self.streams) == 1:
            stream = self.stream
            entries = self._read(stream, "0", None) or self._claim(stream) or self._read(stream, ">", block_ms)
            return {0: entries} if entries else {}
        now = time.monotonic()
        for shard, stream in enumerate(self.streams):
            if self._pending_due[shard] <= now:
                self._pending_due[shard] = now + PENDING_EVERY_S
                if entries := self._read(stream, "0", None) or self._claim(stream):
                    return {shard: entries}
        if taken := self._new(self.batch_size):
            return taken
        time.sleep(min(block_ms, IDLE_MS) / 1000)
        return {}

    def _new(self, count: int) -> dict[int, list[tuple[str, dict[str, str]]]]:
        """New entries by shard, at most about ``count``: of the one stream, or of every shard's in one pipelined
        read (a round trip per master on a cluster, whose commands each name one slot)."""
        if len(self.streams) == 1:
            entries = self._read(self.stream, ">", None, count)
            return {0: entries} if entries else {}
        each = max(16, math.ceil(count / len(self.streams)))
        pipe = self.client.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xreadgroup(GROUP, self.name, {stream: ">"}, count=each)
        try:
            answers = pipe.execute()
        except redis.ResponseError as exc:
            return self._lost_group(exc)
        return {
            shard: [(str(entry_id), fields) for entry_id, fields in answer[0][1] if fields]
            for shard, answer in enumerate(answers)
            if answer and answer[0][1]
        }

    def drain(self) -> int:
        """Settle everything currently in the stream (tests, CLI)."""
        total = 0
        while settled := self.poll(block_ms=1):
            total += settled
        return total

    def forget_gone(self) -> int:
        """Remove consumers that left nothing pending and have been silent for an hour (stopped or scaled
        down): the group's list stays the consumers at work. Returns how many were removed."""
        removed = 0
        for stream in self.streams:
            gone = [
                c["name"]
                for c in self.client.xinfo_consumers(stream, GROUP)
                if c["pending"] == 0 and c["idle"] > FORGET_IDLE_MS and c["name"] != self.name
            ]
            for name in gone:
                self.client.xgroup_delconsumer(stream, GROUP, name)
            removed += len(gone)
        return removed

    def _claim(self, stream: str) -> list[tuple[str, dict[str, str]]]:
        """Entries another consumer left pending for ``claim_idle_ms``, now this one's."""
        answer: Any = self.client.xautoclaim(stream, GROUP, self.name, self.claim_idle_ms, "0-0", self.batch_size)
        return [(str(entry_id), fields) for entry_id, fields in answer[1] if fields]

    def _read(
        self, stream: str, start: str, block_ms: int | None, count: int | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        try:
            answer: Any = self.client.xreadgroup(
                GROUP, self.name, {stream: start}, count=count or self.batch_size, block=block_ms
            )
        except redis.ResponseError as exc:
            self._lost_group(exc)
            return []
        if not answer:
            return []
        _, entries = answer[0]
        return [(str(entry_id), fields) for entry_id, fields in entries if fields]

    def _lost_group(self, exc: redis.ResponseError) -> dict[int, list[tuple[str, dict[str, str]]]]:
        """Redis came back empty (restarted without persistence, or flushed): make the group again."""
        if "NOGROUP" not in str(exc):
            raise exc
        log.warning("the event stream's consumer group is gone; creating it again")
        self._group_ready = False
        self._ensure_group()
        return {}

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        for stream in self.streams:
            ensure_group(self.client, stream, GROUP)
        self._group_ready = True


class ConsumerThread:
    """Runs a ``StreamConsumer`` in the background of a process; every worker's consumes. The one holding the
    consumer lock also runs ``housekeeping`` (retention, compaction) every ``housekeeping_every_s`` and ``sweep``
    (presence timeouts) every lap."""

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
                self.consumer.poll(block_ms=500, linger_ms=self.linger_ms)
                if self.consumer.lead():
                    if self.sweep:
                        self.sweep()
                    if self.housekeeping and time.monotonic() - last_housekeeping >= self.housekeeping_every_s:
                        last_housekeeping = time.monotonic()
                        self.consumer.forget_gone()
                        self.housekeeping()
            except Exception:
                log.warning("event consumer fault; retrying", exc_info=True)
                self._stop.wait(1.0)
