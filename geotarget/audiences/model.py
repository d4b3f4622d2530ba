"""An audience and its rule, declared once: the API validates with these models and the store keeps them.

Every rule is over the merchant's own fences, chosen by ``geofence_ids`` or by ``tags`` (any of them), and
counts *visits*: a device's run of pings inside one fence with gaps under 30 minutes (as the reach report).
Windows end at the refresh: a visit counts in ``days`` when it starts no earlier than ``days`` × 24 h before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator

Days = Annotated[int, Field(ge=1, le=365)]


Id = Annotated[str, Field(min_length=1, max_length=64)]
Tag = Annotated[str, Field(min_length=1, max_length=100)]


class _OverFences(BaseModel):
    """Rules check their figures on the field a person would change, so an error names (and a page outlines) it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # tags come first: the check that the fences are chosen one way is reported on geofence_ids, which sees them
    tags: tuple[Tag, ...] | None = Field(default=None, min_length=1, max_length=50, description="fences with any")
    geofence_ids: tuple[Id, ...] | None = Field(default=None, min_length=1, max_length=500, validate_default=True)

    @field_validator("geofence_ids")
    @classmethod
    def _one_way(cls, ids: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        if ids is None and info.data.get("tags") is None:
            raise ValueError("pick the fences it counts visits in: give geofence_ids or tags")
        if ids is not None and info.data.get("tags") is not None:
            raise ValueError("give geofence_ids or tags, not both")
        return ids


class Visitors(_OverFences):
    """At least ``min_visits`` visits in the last ``days``."""

    kind: Literal["visitors"]
    min_visits: int = Field(default=1, ge=1, le=1_000)
    days: Days = 30


class Regulars(_OverFences):
    """Visits on at least ``min_days`` different days (in the fence's time zone) in the last ``days``."""

    kind: Literal["regulars"]
    days: Days = 28
    min_days: int = Field(default=3, ge=1, le=365, validate_default=True)

    @field_validator("min_days")
    @classmethod
    def _fits(cls, min_days: int, info: ValidationInfo) -> int:
        days = info.data.get("days")
        if days is not None and min_days > days:
            raise ValueError(f"{min_days} days of visits cannot fit in a window of {days} days: lower min_days")
        return min_days


class Lapsed(_OverFences):
    """A visit in the last ``seen_within_days``, none in the last ``not_within_days``."""

    kind: Literal["lapsed"]
    seen_within_days: Days = 90
    not_within_days: Days = Field(default=30, validate_default=True)

    @field_validator("not_within_days")
    @classmethod
    def _fits(cls, not_within: int, info: ValidationInfo) -> int:
        seen = info.data.get("seen_within_days")
        if seen is not None and not_within >= seen:
            raise ValueError(f"the quiet {not_within} days must be fewer than the {seen} days seen within")
        return not_within


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
