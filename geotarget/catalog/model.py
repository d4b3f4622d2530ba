"""Merchants, fences and offers as the domain knows them. Every field is declared here, once.

The SQL row maps to these in one place (``geotarget.store.records``) and the API uses or maps them in one place
(``api.schemas``), so adding a field touches the list in docs/api.md "Adding a field" and nothing else. Offers
are pydantic models because merchants write them directly (the constraints below are the API's rules); fences
are dataclasses because they are built from a validated ``geofences.ValidFence``, never from raw input.

Must not import ``geotarget.store`` or any I/O library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)

from geotarget.catalog import expressions
from geotarget.catalog.expressions import Expr, check_size
from geotarget.serving.schedule import Schedule, parse_schedule, schedule_to_json
from geotarget.triggers.presence import DEFAULT_DWELL_S

OfferStatus = Literal["draft", "active", "paused", "ended"]


def as_utc(moment: datetime) -> datetime:
    """Timezone-aware UTC; SQLite hands timestamps back without a zone, and they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 with ``Z``.

    >>> iso_utc(datetime(2026, 11, 24, 9, 30))
    '2026-11-24T09:30:00Z'
    """
    return as_utc(moment).isoformat().replace("+00:00", "Z")


UtcTime = Annotated[
    datetime,
    BeforeValidator(lambda v: as_utc(v) if isinstance(v, datetime) else v),
    PlainSerializer(iso_utc, return_type=str, when_used="json"),
]
Url = Annotated[HttpUrl, PlainSerializer(str, return_type=str)]
Count = Annotated[int, Field(ge=1, le=1_000_000)]
_SCHEDULE_SCHEMA = {
    "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}, {"type": "null"}],
    "description": "weekly windows in the fence's time zone; none = always live (docs/schedules.md)",
}


@lru_cache(maxsize=4_096)
def _schedule_of(canonical: bytes) -> Schedule | None:
    return parse_schedule(orjson.loads(canonical))


def _schedule(raw: Any) -> Schedule | None:
    """A schedule parsed once per distinct JSON (schedules are immutable and shared): a starting worker reads
    every offer, and a chain's offers mostly share theirs."""
    if raw is None or isinstance(raw, Schedule):
        return raw
    try:
        canonical = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON: parse_schedule says what is wrong with it
        return parse_schedule(raw)
    return _schedule_of(canonical)


ScheduleField = Annotated[
    Schedule | None,
    BeforeValidator(_schedule),
    PlainSerializer(schedule_to_json),
    WithJsonSchema(_SCHEDULE_SCHEMA),
]


def _words(values: Any) -> Any:
    """Targeting values compare case-insensitively: kept trimmed, lower case, unique, in the order given."""
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        return values  # the type check that follows names what is wrong
    return tuple(dict.fromkeys(v.strip().lower().replace("_", "-") for v in values))


Words = Annotated[tuple[str, ...] | None, BeforeValidator(_words)]


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    timezone: str | None = None
    cap_per_device_per_day: int | None = None  # impressions of all its offers per device per day
    created_at: datetime | None = None


@dataclass(frozen=True)
class Fence:
    """A stored geofence. ``geometry`` is plain GeoJSON (for a circle, its centre as a Point)."""

    id: str
    merchant_id: str
    name: str
    kind: str  # "circle" or "polygon"
    geometry: dict[str, Any]
    radius_m: float | None
    timezone: str
    tags: tuple[str, ...]
    properties: dict[str, Any]  # the merchant's own extra properties, kept as given
    area_m2: float
    external_id: str | None = None  # the merchant's own id, unique among its fences (re-imports find it)
    version: int = 1
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def audience_only(self) -> bool:
        """Drawn to feed audiences (around a competitor, say): never served, no presence, no offers."""
        return self.properties.get("purpose") == "audience"


class Caps(BaseModel):
    """Per-offer, per-device limits; a missing one means no limit of that kind (docs/caps.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    per_device_per_hour: Count | None = None
    per_device_per_day: Count | None = None
    per_device_per_week: Count | None = None
    per_device_lifetime: Count | None = None


def _unique(values: Any) -> Any:
    """Audience ids kept once each, in the order given (anything else is left for the type check to name)."""
    if isinstance(values, list | tuple) and all(isinstance(v, str) for v in values):
        return tuple(dict.fromkeys(values))
    return values


AudienceIds = Annotated[tuple[Annotated[str, Field(min_length=1, max_length=64)], ...], BeforeValidator(_unique)]


class AudienceSelection(BaseModel):
    """Audiences an offer is for (a member of any ``include``, when given) and not for (a member of any
    ``exclude``); memberships are checked in the cap reservation, so they cost no extra Redis round trip."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    include: AudienceIds = Field(default=(), max_length=20)
    exclude: AudienceIds = Field(default=(), max_length=20)

    @model_validator(mode="after")
    def _disjoint(self) -> AudienceSelection:
        both = set(self.include) & set(self.exclude)
        if both:
            raise ValueError(f"an audience cannot be both included and excluded: {sorted(both)}")
        return self


class Targeting(BaseModel):
    """Who an offer is for; every criterion given must match, and a missing attribute does not match."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    age_range: tuple[int, int] | None = Field(default=None, description="[min, max] inclusive, 0–130")
    gender: Words = Field(default=None, max_length=10)
    interests: Words = Field(default=None, max_length=100)
    os: Words = Field(default=None, max_length=10)
    language: Words = Field(default=None, max_length=50, description="BCP 47; matched on the primary tag")
    audiences: AudienceSelection | None = Field(default=None, description="the merchant's audiences (audiences.md)")
    expr: Annotated[Expr | None, AfterValidator(check_size)] = Field(
        default=None, description="all / any / not over tests of the attributes (docs/matching.md#targeting)"
    )

    @field_validator("age_range")
    @classmethod
    def _ages(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 <= value[0] <= value[1] <= 130:
            raise ValueError("age_range must be [min, max] with 0 ≤ min ≤ max ≤ 130")
        return value

    @cached_property
    def expr_audiences(self) -> tuple[tuple[str, str], ...]:
        """The audiences ``expr`` tests, each with the path of its field; empty for most offers, which then
        cost serving nothing more."""
        return expressions.audiences(self.expr, "targeting.expr")

    @cached_property
    def audience_ids(self) -> tuple[str, ...]:
        """Every audience it asks about, listed or in ``expr``."""
        chosen = self.audiences
        listed = () if chosen is None else (*chosen.include, *chosen.exclude)
        return tuple(dict.fromkeys((*listed, *(a for _, a in self.expr_audiences))))


class Trigger(BaseModel):
    """Push the offer when a device enters, dwells in or leaves one of its fences (docs/triggers.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    on: Literal["enter", "dwell", "exit"]
    dwell_s: int | None = Field(
        default=None, ge=60, le=86_400, description="dwell only: seconds inside before it fires (default 300)"
    )

    @model_validator(mode="after")
    def _dwell_only(self) -> Trigger:
        if self.dwell_s is not None and self.on != "dwell":
            raise ValueError("dwell_s is only for a trigger with on = 'dwell'")
        return self

    @property
    def threshold_s(self) -> int | None:
        """How long a dwell waits; None for enter and exit."""
        return (self.dwell_s or DEFAULT_DWELL_S) if self.on == "dwell" else None


class Redemption(BaseModel):
    """How a shown offer is redeemed at the till: one static code for everyone, or a unique code per impression
    (``POST /v1/redemptions``; docs/measurement.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str | None = Field(default=None, min_length=3, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$")
    unique: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Redemption:
        if (self.code is not None) == self.unique:
            raise ValueError("give a static code, or unique: true (one of them)")
        return self


class Goal(BaseModel):
    """Impressions to deliver over a date range (the offer's days, in its time zone), never more: a campaign's
    whole figure, where ``daily_budget`` is each day's. Paced like a budget when ``pacing`` asks."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)
    impressions: int = Field(ge=1, le=1_000_000_000)
    first_day: date = Field(alias="from")
    last_day: date = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Goal:
        if self.last_day < self.first_day:
            raise ValueError("a goal's 'to' cannot be before its 'from'")
        if (self.last_day - self.first_day).days > 366:
            raise ValueError("a goal spans at most 367 days")
        return self


class Variant(BaseModel):
    """One creative of an offer: what it shows instead of the offer's own title, text, image or link (a field
    left out is the offer's). Rotation picks one per device and keeps it (docs/variants.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, max_length=2000)
    image_url: Url | None = None
    url: Url | None = None
    weight: int = Field(default=1, ge=1, le=100, description="its share under rotation 'weighted'")


def _compact(value: BaseModel) -> dict[str, Any]:
    return value.model_dump(exclude_none=True)


def _or_empty(value: Any) -> Any:
    return {} if value is None else value


class OfferFields(BaseModel):
    """What a merchant writes: the body of ``POST /v1/offers`` and, merged with the stored offer, of a PATCH."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=2000)
    url: Url | None = None
    image_url: Url | None = None
    # tags and "all" come first: the check that some fence is named is reported on geofence_ids, which sees them
    geofence_tags: tuple[Annotated[str, Field(min_length=1, max_length=100)], ...] = Field(
        default=(), max_length=20, description="every fence of the merchant's with any of these tags, now or later"
    )
    all_geofences: bool = Field(default=False, description="every fence of the merchant's, now or later")
    geofence_ids: tuple[str, ...] = Field(
        default=(), max_length=500, validate_default=True, description="the merchant's fences, by id"
    )
    nearby_m: float = Field(default=0.0, ge=0, le=5000, description="0: only inside the fence")
    schedule: ScheduleField = None
    special: bool = False
    caps: Annotated[Caps, BeforeValidator(_or_empty)] = Caps()
    priority: int = Field(default=50, ge=1, le=100)
    targeting: Annotated[Targeting, BeforeValidator(_or_empty)] = Targeting()
    status: OfferStatus = "active"
    daily_budget: int | None = Field(default=None, ge=1, le=1_000_000_000, description="most impressions a day")
    goal: Goal | None = Field(default=None, description="impressions over a date range, never more (caps.md)")
    pacing: Literal["asap", "even", "frontloaded"] = Field(
        default="asap", description="how the daily budget or goal is spent over the live hours (docs/caps.md#pacing)"
    )
    timezone: str | None = Field(default=None, max_length=64, description="cap windows; default: merchant's")
    trigger: Trigger | None = Field(default=None, description="push it on enter, dwell or exit (docs/triggers.md)")
    holdout_pct: int = Field(default=0, ge=0, le=50, description="% of devices held out to measure lift (reports.md)")
    redemption: Redemption | None = Field(default=None, description="a code shown with the offer (measurement.md)")
    bid_cpm: float | None = Field(
        default=None, ge=0.01, le=1000, description="price per 1,000 impressions bid on exchanges; none: never bid"
    )
    variants: tuple[Variant, ...] = Field(default=(), max_length=10, description="creatives to rotate (variants.md)")
    rotation: Literal["even", "weighted", "optimized"] = Field(
        default="even", description="how devices are split over the variants: equally, by weight, or by clicks"
    )

    @field_validator("variants")
    @classmethod
    def _distinct(cls, variants: tuple[Variant, ...]) -> tuple[Variant, ...]:
        ids = [v.id for v in variants]
        if len(set(ids)) != len(ids):
            raise ValueError(f"variant ids must differ: {sorted({i for i in ids if ids.count(i) > 1})}")
        return variants

    @field_validator("pacing")
    @classmethod
    def _paces_a_budget(cls, pacing: str, info: ValidationInfo) -> str:
        if pacing != "asap" and info.data.get("daily_budget") is None and info.data.get("goal") is None:
            raise ValueError(f"{pacing} pacing spreads a daily_budget or a goal: give one")
        return pacing

    @field_validator("geofence_ids")
    @classmethod
    def _some_fences(cls, ids: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not (ids or info.data.get("geofence_tags") or info.data.get("all_geofences")):
            raise ValueError("an offer needs at least one of your geofences (or geofence_tags, or all_geofences)")
        return ids

    def names_fence(self, fence: Fence) -> bool:
        """Whether this offer is on ``fence`` (one of the same merchant's): by id, by a tag, or as all of them."""
        return self.all_geofences or fence.id in self.geofence_ids or not set(self.geofence_tags).isdisjoint(fence.tags)

    @field_serializer("caps", "targeting")
    def _given_only(self, value: BaseModel) -> dict[str, Any]:
        return _compact(value)

    @field_serializer("trigger", "redemption")
    def _trigger_given(self, value: Trigger | Redemption | None) -> dict[str, Any] | None:
        return None if value is None else _compact(value)


class Offer(OfferFields):
    """A stored offer: its fields, resolved (fences without repeats, a time zone), and its bookkeeping."""

    id: str
    merchant_id: str
    timezone: str  # resolved: given, else the merchant's, else its first fence's
    version: int = 1
    created_at: UtcTime
    updated_at: UtcTime


OFFER_FIELDS = tuple(OfferFields.model_fields)
