"""Events the serving path emits (pings, impressions, cap-blocked serves) and the sink they go to.

Event ids make delivery idempotent downstream: a ping is ``p:<device_key>:<epoch ms>`` (the same device at the
same instant is one ping), an impression is its ``impression_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True, kw_only=True)
class Event:
    # "ping" | "impression" | "cap_blocked" | "ghost" (reserved for a held-out device, not shown) | "click" |
    # "redeem" | "dismiss" (interactions) | "redemption" (at the till) | "bid" (made on an exchange)
    kind: str
    event_id: str
    at: datetime
    device_key: str  # "" for limit-ad-tracking devices: counted, never linked
    lat: float
    lon: float
    cell: str
    offer_id: str = ""
    merchant_id: str = ""
    fence_id: str = ""
    inside: bool = False
    distance_m: float = 0.0
    accuracy_m: float | None = None
    trigger: str = ""  # an impression pushed on "enter", "dwell" or "exit"; "" when the app asked (pulled)
    code: str = ""  # the unique redemption code an impression carried
    ref: str = ""  # the impression an interaction or a redemption is about
    variant: str = ""  # the creative variant an impression showed ("" for an offer without variants)
    # CPM: a bid's price, or a won bid's clearing price on its impression; None for offers apps pulled. Kept
    # last: a held bid's impression is stored as JSON up to '"price":' and completed when it wins.
    price: float | None = None

    def to_json(self) -> bytes:
        """One compact JSON document: a stream entry holds it in a single field (cheap to pack and parse)."""
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        raw = orjson.loads(data)
        raw["at"] = datetime.fromisoformat(raw["at"])
        return cls(**raw)


def ping_event_id(device_key: str, at: datetime) -> str:
    """The same device at the same millisecond is one ping."""
    return f"p:{device_key}:{int(at.timestamp() * 1000)}"


def ping_event_ids(device_keys: pa.Array, epoch_ms: pa.Array) -> pa.Array:
    """``ping_event_id`` over arrays (bulk files)."""
    return pc.binary_join_element_wise("p", device_keys, epoch_ms.cast(pa.string()), ":")


def visit_event_id(device_key: str, fence_id: str, epoch_ms: int) -> str:
    """A visit kept after its raw pings expired: one per device, fence and start."""
    return f"v:{device_key}:{fence_id}:{epoch_ms}"


class EventSink(Protocol):
    def append(self, events: Sequence[Event]) -> None:
        """Hand events over for storage; may raise on a storage fault (callers log and carry on)."""
