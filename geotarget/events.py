"""Events the serving path emits (pings, impressions, cap-blocked serves) and the sink they go to.

Event ids make delivery idempotent downstream: a ping is ``p:<device_key>:<epoch ms>`` (the same device at the
same instant is one ping), an impression is its ``impression_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Event:
    kind: str  # "ping" | "impression" | "cap_blocked"
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

    def fields(self) -> dict[str, str]:
        """Flat string fields, as a Redis Stream entry holds them."""
        return {
            "kind": self.kind,
            "event_id": self.event_id,
            "ts": self.at.isoformat(),
            "device_key": self.device_key,
            "lat": repr(self.lat),
            "lon": repr(self.lon),
            "cell": self.cell,
            "offer_id": self.offer_id,
            "merchant_id": self.merchant_id,
            "fence_id": self.fence_id,
            "inside": "1" if self.inside else "0",
            "distance_m": f"{self.distance_m:.2f}",
            "accuracy_m": "" if self.accuracy_m is None else repr(self.accuracy_m),
        }


def ping_event_id(device_key: str, at: datetime) -> str:
    return f"p:{device_key}:{int(at.timestamp() * 1000)}"


class EventSink(Protocol):
    def append(self, events: Sequence[Event]) -> None:
        """Hand events over for storage; may raise on a storage fault (callers log and carry on)."""
