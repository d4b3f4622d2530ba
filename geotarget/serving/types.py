"""Frozen value types of the serving path: what the app says about its user, and a ranked candidate offer."""

from __future__ import annotations

from dataclasses import dataclass

from geotarget.catalog.model import Offer


@dataclass(frozen=True)
class Attributes:
    """What the app says about the device user in this request."""

    age: int | None = None
    gender: str | None = None
    interests: frozenset[str] = frozenset()
    os: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class Candidate:
    """An offer that may be shown for this ping, with where it matched and its rank score."""

    offer: Offer
    fence_id: str
    inside: bool
    distance_m: float
    score: float


__all__ = ["Attributes", "Candidate"]
