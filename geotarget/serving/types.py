"""Frozen value types of the serving path: what the app says about its user, and a ranked candidate offer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from geotarget.catalog.model import Offer


@dataclass(frozen=True)
class Attributes:
    """What the app says about the device user in this request."""

    age: int | None = None
    gender: str | None = None
    interests: frozenset[str] = frozenset()
    os: str | None = None
    language: str | None = None

    def to_json(self) -> dict[str, object]:
        """Only what was said, JSON-ready: kept with a device's presence so a pushed offer is targeted as pulled
        ones are."""
        said: dict[str, object] = {k: v for k, v in vars(self).items() if v is not None and k != "interests"}
        if self.interests:
            said["interests"] = sorted(self.interests)
        return said

    @classmethod
    def from_json(cls, said: Mapping[str, object]) -> Attributes:
        values = dict(said)
        values["interests"] = frozenset(cast(list[str], values.get("interests") or ()))
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Candidate:
    """An offer that may be shown for this ping, with where it matched and its rank score."""

    offer: Offer
    fence_id: str
    inside: bool
    distance_m: float
    score: float


__all__ = ["Attributes", "Candidate"]
