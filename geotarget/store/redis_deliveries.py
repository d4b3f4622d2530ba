"""Pending and settled webhook deliveries in Redis.

A delivery is a hash (its state, and while pending the exact body to send), listed in its webhook's index and
announced on a Redis Stream read by the delivery workers' consumer group. A worker that is killed mid-send
leaves the entry pending in the group; any worker claims it after ``CLAIM_IDLE_MS`` and sends it again, so
nothing is lost (at least once; receivers deduplicate by event id). Each attempt is recorded and acknowledged
in one script (``lua/settle_delivery.lua``); retries wait in a sorted set until due.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis

from geotarget.store import keys
from geotarget.store.redis_client import ScriptCall, ensure_group, run_scripts, text
from geotarget.triggers.webhooks import Delivery, PendingDelivery, Queued, Settled

_LUA = Path(__file__).parent / "lua"
GROUP = "deliverers"
CLAIM_IDLE_MS = 60_000  # well over the longest send (its timeout): an entry pending this long has lost its worker
INDEX_KEEP = 10_000  # deliveries listed per webhook
MAX_STREAM = 1_000_000
KEEP_DELIVERED_S = 7 * 86_400
KEEP_FAILED_S = 30 * 86_400


class RedisDeliveries:
    def __init__(self, client: redis.Redis, prefix: str, claim_idle_ms: int = CLAIM_IDLE_MS) -> None:
        self.client = client
        self.claim_idle_ms = claim_idle_ms
        self.prefix = prefix
        self.stream = keys.deliveries_stream(prefix)
        self._enqueue = client.register_script((_LUA / "enqueue_delivery.lua").read_text())
        self._settle = client.register_script((_LUA / "settle_delivery.lua").read_text())
        self._promote = client.register_script((_LUA / "promote_retries.lua").read_text())

    # -- the trigger worker's side ----------------------------------------------------------------------------

    def enqueue_many(self, queued: Sequence[Queued], now: datetime) -> int:
        """Queue events for webhooks in one round trip, in order; returns how many were new (a delivery id already
        known is not queued again)."""
        if not queued:
            return 0
        calls: list[ScriptCall] = []
        for item in queued:
            event = item.event
            raw = "device_id" in event
            fields: list[str | bytes | int] = [
                *("sub", item.subscription_id, "event", str(event["id"]), "type", str(event["type"])),
                *("status", "pending", "attempts", 0, "created", _ms(now), "body", orjson.dumps(event)),
                *("listed", orjson.dumps({k: v for k, v in event.items() if k != "device_id"})),
                *("device", item.device_key if raw else ""),
            ]
            names = [
                self._hash(item.delivery_id),
                keys.webhook_index(self.prefix, item.subscription_id),
                self.stream,
                keys.device_deliveries(self.prefix, item.device_key),
            ]
            argv = [item.delivery_id, _ms(now), INDEX_KEEP, MAX_STREAM, int(raw), *fields]
            calls.append((self._enqueue, names, argv))
        return sum(int(made) for made in run_scripts(self.client, calls))

    # -- the delivery worker's side ---------------------------------------------------------------------------

    def ensure_group(self) -> None:
        ensure_group(self.client, self.stream, GROUP)

    def take(self, consumer: str, count: int, block_ms: int, claim: bool = True) -> list[PendingDelivery]:
        """Deliveries to send: (when ``claim``) first those a dead worker left (idle past ``CLAIM_IDLE_MS``),
        then new ones."""
        entries: list[Any] = []
        if claim:
            claimed: Any = self.client.xautoclaim(self.stream, GROUP, consumer, self.claim_idle_ms, "0-0", count=count)
            entries = list(claimed[1])
        if not entries:
            answer: Any = self.client.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count, block=block_ms)
            entries = list(answer[0][1]) if answer else []
        return self._load(entries)

    def promote_due(self, now: datetime, limit: int = 1_000) -> int:
        """Retries whose time has come go back into the stream."""
        return int(
            self._promote(keys=[keys.delivery_retries(self.prefix), self.stream], args=[_ms(now), limit, MAX_STREAM])
        )

    def settle_many(self, settled: Sequence[Settled]) -> None:
        """Record attempts and acknowledge their stream entries, in one round trip."""
        if not settled:
            return
        calls: list[ScriptCall] = []
        for one in settled:
            pending = one.pending
            keep = KEEP_DELIVERED_S if one.outcome == "delivered" else KEEP_FAILED_S
            names = [
                self._hash(pending.delivery_id),
                self.stream,
                keys.delivery_retries(self.prefix),
                keys.delivery_stats(self.prefix),
                keys.device_deliveries(self.prefix, pending.device_key),
            ]
            argv: list[str | int | float] = [
                *(pending.entry_id, GROUP, one.outcome, _ms(one.at), _ms(one.next_at) if one.next_at else ""),
                *(one.status or "", one.error[:300], round(one.latency_ms, 2), keep, pending.delivery_id),
            ]
            calls.append((self._settle, names, argv))
        run_scripts(self.client, calls)

    # -- reading ----------------------------------------------------------------------------------------------

    def listed(self, subscription_id: str, status: str | None, limit: int = 100) -> list[Delivery]:
        """Newest first; ``status`` filters (pending, delivered or failed)."""
        ids = self.client.zrevrange(keys.webhook_index(self.prefix, subscription_id), 0, INDEX_KEEP)
        found: list[Delivery] = []
        for start in range(0, len(ids), 200):
            pipe = self.client.pipeline(transaction=False)
            for delivery in ids[start : start + 200]:
                pipe.hgetall(self._hash(text(delivery)))
            for delivery, row in zip(ids[start : start + 200], pipe.execute(), strict=True):
                if row and (status is None or text(row[b"status"]) == status):
                    found.append(_delivery(text(delivery), row))
                    if len(found) >= limit:
                        return found
        return found

    def stats(self) -> dict[str, float]:
        """Counters over every worker: delivered, retried, failed, latency_ms_sum; and waiting now."""
        raw: Any = self.client.hgetall(keys.delivery_stats(self.prefix))
        figures = {text(k): float(v) for k, v in raw.items()}
        figures["retry_waiting"] = float(self.client.zcard(keys.delivery_retries(self.prefix)))
        return figures

    def _load(self, entries: Sequence[Any]) -> list[PendingDelivery]:
        if not entries:
            return []
        pipe = self.client.pipeline(transaction=False)
        live = [(text(e), text(f[b"d"])) for e, f in entries if f]  # an entry erased meanwhile has no fields
        for _, delivery in live:
            pipe.hmget(self._hash(delivery), "sub", "event", "type", "body", "created", "attempts", "device", "status")
        taken: list[PendingDelivery] = []
        gone: list[str] = [text(e) for e, f in entries if not f]
        for (entry, delivery), row in zip(live, pipe.execute(), strict=True):
            sub, event, kind, body, created, attempts, device, state = row
            if body is None or state != b"pending":
                gone.append(entry)  # erased, already settled, or expired: nothing to send
                continue
            texts = (text(sub), text(event), text(kind))
            taken.append(PendingDelivery(entry, delivery, *texts, body, int(created), int(attempts), text(device)))
        if gone:
            self.client.xack(self.stream, GROUP, *gone)
        return taken

    def _hash(self, delivery_id: str) -> str:
        return keys.delivery(self.prefix, delivery_id)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _when(raw: bytes | None) -> datetime | None:
    return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw else None


def _delivery(delivery_id: str, row: Mapping[bytes, bytes]) -> Delivery:
    code, error, latency = row.get(b"code"), row.get(b"error"), row.get(b"latency_ms")
    return Delivery(
        id=delivery_id,
        subscription_id=text(row[b"sub"]),
        event_id=text(row[b"event"]),
        type=text(row[b"type"]),
        status=text(row[b"status"]),  # type: ignore[arg-type]
        attempts=int(row.get(b"attempts", b"0")),
        created_at=_when(row[b"created"]) or datetime.now(UTC),
        event=orjson.loads(row.get(b"listed", b"{}")),
        last_attempt_at=_when(row.get(b"last_at")),
        next_attempt_at=_when(row.get(b"next_at")),
        response_status=int(code) if code else None,
        error=text(error) if error else None,
        latency_ms=float(latency) if latency and row.get(b"last_at") else None,
    )
