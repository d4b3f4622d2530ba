"""Frozen value types of the serving domain. ``LatLng`` comes from ``geofences`` so every layer shares it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NewType

from geofences import LatLng
from geotarget.serving.schedule import Schedule

OfferId = NewType("OfferId", str)
FenceId = NewType("FenceId", str)
MerchantId = NewType("MerchantId", str)
DeviceKey = NewType("DeviceKey", str)
OfferStatus = Literal["draft", "active", "paused", "ended"]
OFFER_STATUSES: tuple[OfferStatus, ...] = ("draft", "active", "paused", "ended")


@dataclass(frozen=True)
class Caps:
    """Per-offer, per-device limits; ``None`` means no limit of that kind."""

    per_device_per_hour: int | None = None
    per_device_per_day: int | None = None
    per_device_per_week: int | None = None
    per_device_lifetime: int | None = None


@dataclass(frozen=True)
class Targeting:
    """Who an offer is for; every criterion given must match (a missing attribute does not match)."""

    age_range: tuple[int, int] | None = None
    genders: frozenset[str] | None = None
    interests: frozenset[str] | None = None
    os: frozenset[str] | None = None
    languages: frozenset[str] | None = None


@dataclass(frozen=True)
class Attributes:
    """What the app says about the device user in this request."""

    age: int | None = None
    gender: str | None = None
    interests: frozenset[str] = frozenset()
    os: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class OfferRule:
    """Everything the matcher needs about one offer, as loaded into a worker's memory."""

    id: str
    merchant_id: str
    title: str
    body: str
    url: str | None
    image_url: str | None
    fence_ids: tuple[str, ...]
    nearby_m: float
    timezone: str
    status: OfferStatus = "active"
    priority: int = 50
    special: bool = False
    schedule: Schedule | None = None
    caps: Caps = field(default_factory=Caps)
    targeting: Targeting = field(default_factory=Targeting)
    daily_budget: int | None = None
    merchant_cap_per_device_per_day: int | None = None


@dataclass(frozen=True)
class Candidate:
    """An offer that may be shown for this ping, with where it matched and its rank score."""

    offer: OfferRule
    fence_id: str
    inside: bool
    distance_m: float
    score: float


__all__ = [
    "OFFER_STATUSES",
    "Attributes",
    "Candidate",
    "Caps",
    "DeviceKey",
    "FenceId",
    "LatLng",
    "MerchantId",
    "OfferId",
    "OfferRule",
    "OfferStatus",
    "Targeting",
]
