"""An audience and its rule, declared once: the API validates with these models and the store keeps them.

Every rule is over the merchant's own fences, chosen by ``geofence_ids`` or by ``tags`` (any of them), and
counts *visits*: a device's run of pings inside one fence with gaps under 30 minutes (as the reach report).
Windows end at the refresh: a visit counts in ``days`` when it starts no earlier than ``days`` × 24 h before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

Days = Annotated[int, Field(ge=1, le=365)]


Id = Annotated[str, Field(min_length=1, max_length=64)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]


class _OverFences(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    geofence_ids: tuple[Id, ...] | None = Field(default=None, min_length=1, max_length=500)
    tags: tuple[Tag, ...] | None = Field(default=None, min_length=1, max_length=50, description="fences with any")

    @model_validator(mode="after")
    def _one_way(self) -> _OverFences:
        if (self.geofence_ids is None) == (self.tags is None):
            raise ValueError("choose the fences by geofence_ids or by tags (one of them)")
        return self


class Visitors(_OverFences):
    """At least ``min_visits`` visits in the last ``days``."""

    kind: Literal["visitors"]
    min_visits: int = Field(default=1, ge=1, le=1_000)
    days: Days = 30


class Regulars(_OverFences):
    """Visits on at least ``min_days`` different days (in the fence's time zone) in the last ``days``."""

    kind: Literal["regulars"]
    min_days: int = Field(default=3, ge=1, le=365)
    days: Days = 28

    @model_validator(mode="after")
    def _fits(self) -> Regulars:
        if self.min_days > self.days:
            raise ValueError("min_days cannot be more than days")
        return self


class Lapsed(_OverFences):
    """A visit in the last ``seen_within_days``, none in the last ``not_within_days``."""

    kind: Literal["lapsed"]
    seen_within_days: Days = 90
    not_within_days: Days = 30

    @model_validator(mode="after")
    def _fits(self) -> Lapsed:
        if self.not_within_days >= self.seen_within_days:
            raise ValueError("not_within_days must be less than seen_within_days")
        return self


class Dwellers(_OverFences):
    """A visit of at least ``min_dwell_s`` (first to last ping inside) in the last ``days``."""

    kind: Literal["dwellers"]
    min_dwell_s: int = Field(default=600, ge=60, le=86_400)
    days: Days = 30


Rule = Annotated[Visitors | Regulars | Lapsed | Dwellers, Field(discriminator="kind")]
RULE: TypeAdapter[Rule] = TypeAdapter(Rule)


@dataclass(frozen=True)
class Audience:
    id: str
    merchant_id: str
    name: str
    rule: Rule
    size: int | None  # None while suppressed (under k devices) or never refreshed
    suppressed: bool
    generation: int  # bumped by each refresh that publishes members; 0: none published
    refreshed_at: datetime | None
    created_at: datetime

    @property
    def token(self) -> str | None:
        """What a member's membership record holds for this audience now; None: it matches nobody."""
        return None if self.suppressed or self.generation == 0 else membership_token(self.id, self.generation)


def membership_token(audience_id: str, generation: int) -> str:
    """A member of one refresh of an audience. Refreshes write a new generation beside the old one, so a
    worker still reading the old generation keeps matching until its catalog moves on."""
    return f"{audience_id}:{generation}"
