"""Offers as a merchant manages them: the spec (validated), and create/read/patch/delete scoped to the merchant.

An offer's fences must be the merchant's own. Its time zone (for cap windows) is given, or the merchant's, or
its first fence's. Schedules are validated here and stored in their canonical JSON form.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from sqlalchemy.orm import Session, sessionmaker

from geotarget.catalog.accounts import new_id
from geotarget.catalog.shapes import iso_utc
from geotarget.catalog.snapshot import Catalog
from geotarget.catalog.timezones import check_timezone
from geotarget.errors import InvalidInput, NotFound
from geotarget.serving.schedule import parse_schedule, schedule_to_json
from geotarget.serving.types import OFFER_STATUSES
from geotarget.store import repository
from geotarget.store.database import transaction
from geotarget.store.models import Offer


class CapsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_device_per_hour: int | None = Field(default=None, ge=1, le=1_000_000)
    per_device_per_day: int | None = Field(default=None, ge=1, le=1_000_000)
    per_device_per_week: int | None = Field(default=None, ge=1, le=1_000_000)
    per_device_lifetime: int | None = Field(default=None, ge=1, le=1_000_000)


class TargetingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    age_range: tuple[int, int] | None = Field(default=None, description="[min, max] inclusive, 0–130")
    gender: list[str] | None = Field(default=None, max_length=10)
    interests: list[str] | None = Field(default=None, max_length=100)
    os: list[str] | None = Field(default=None, max_length=10)
    language: list[str] | None = Field(default=None, max_length=50, description="BCP 47; matched on the primary tag")

    @field_validator("age_range")
    @classmethod
    def _ages(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 <= value[0] <= value[1] <= 130:
            raise ValueError("age_range must be [min, max] with 0 ≤ min ≤ max ≤ 130")
        return value


class OfferSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=2000)
    url: HttpUrl | None = None
    image_url: HttpUrl | None = None
    geofence_ids: list[str] = Field(min_length=1, max_length=500)
    nearby_m: float = Field(default=0.0, ge=0, le=5000, description="0: only inside the fence")
    schedule: dict[str, Any] | list[Any] | None = Field(default=None, description="weekly windows; none = always")
    special: bool = False
    caps: CapsSpec | None = None
    priority: int = Field(default=50, ge=1, le=100)
    targeting: TargetingSpec | None = None
    status: Literal["draft", "active", "paused", "ended"] = "active"
    daily_budget: int | None = Field(
        default=None, ge=1, le=1_000_000_000, description="most impressions a day, all devices"
    )
    timezone: str | None = Field(default=None, max_length=64, description="cap windows; default: merchant's")


class OfferService:
    def __init__(self, factory: sessionmaker[Session], catalog: Catalog, notify: Any) -> None:
        self.factory = factory
        self.catalog = catalog
        self.notify = notify

    def create(self, merchant_id: str, spec: OfferSpec) -> dict[str, Any]:
        with transaction(self.factory) as session:
            values = self._values(session, merchant_id, spec)
            now = datetime.now(UTC)
            row = repository.add_offer(
                session, {**values, "id": new_id("off"), "version": 1, "created_at": now, "updated_at": now}
            )
        self._changed()
        return offer_json(row)

    def update(self, merchant_id: str, offer_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        with transaction(self.factory) as session:
            row = self._owned(session, merchant_id, offer_id)
            current = {k: v for k, v in offer_json(row).items() if k in OfferSpec.model_fields}
            merged = OfferSpec.model_validate({**current, **patch})
            values = self._values(session, merchant_id, merged)
            row = repository.update_offer(session, row, {**values, "updated_at": datetime.now(UTC)})
        self._changed()
        return offer_json(row)

    def delete(self, merchant_id: str, offer_id: str) -> None:
        with transaction(self.factory) as session:
            repository.delete_offer(session, self._owned(session, merchant_id, offer_id))
        self._changed()

    def get(self, merchant_id: str, offer_id: str) -> dict[str, Any]:
        with self.factory() as session:
            return offer_json(self._owned(session, merchant_id, offer_id))

    def list(self, merchant_id: str) -> list[dict[str, Any]]:
        with self.factory() as session:
            return [offer_json(r) for r in repository.list_offers(session, merchant_id)]

    def _values(self, session: Session, merchant_id: str, spec: OfferSpec) -> dict[str, Any]:
        merchant = repository.get_merchant(session, merchant_id)
        if merchant is None:
            raise NotFound(f"no merchant {merchant_id!r}", "merchant_id")
        fence_ids = list(dict.fromkeys(spec.geofence_ids))
        fences = {f.id: f for f in repository.fences_by_ids(session, fence_ids) if f.merchant_id == merchant_id}
        for i, fence_id in enumerate(fence_ids):
            if fence_id not in fences:
                raise InvalidInput(f"no geofence {fence_id!r} of yours", f"geofence_ids[{i}]", code="unknown_fence")
        if spec.timezone is not None:
            check_timezone(spec.timezone, "timezone")
        timezone = spec.timezone or merchant.timezone or fences[fence_ids[0]].timezone
        schedule = parse_schedule(spec.schedule)
        return {
            "merchant_id": merchant_id,
            "title": spec.title,
            "body": spec.body,
            "url": str(spec.url) if spec.url else None,
            "image_url": str(spec.image_url) if spec.image_url else None,
            "geofence_ids": fence_ids,
            "nearby_m": spec.nearby_m,
            "schedule": schedule_to_json(schedule),
            "special": spec.special,
            "caps": spec.caps.model_dump(exclude_none=True) if spec.caps else {},
            "priority": spec.priority,
            "targeting": spec.targeting.model_dump(exclude_none=True) if spec.targeting else {},
            "status": spec.status,
            "daily_budget": spec.daily_budget,
            "timezone": timezone,
        }

    def _changed(self) -> None:
        self.catalog.sync(self.factory)
        self.notify()

    @staticmethod
    def _owned(session: Session, merchant_id: str, offer_id: str) -> Offer:
        row = repository.get_offer(session, merchant_id, offer_id)
        if row is None:
            raise NotFound(f"no offer {offer_id!r}", "id")
        return row


def offer_json(row: Offer) -> dict[str, Any]:
    return {
        "id": row.id,
        "merchant_id": row.merchant_id,
        "title": row.title,
        "body": row.body,
        "url": row.url,
        "image_url": row.image_url,
        "geofence_ids": list(row.geofence_ids),
        "nearby_m": row.nearby_m,
        "schedule": row.schedule,
        "special": row.special,
        "caps": dict(row.caps or {}),
        "priority": row.priority,
        "targeting": dict(row.targeting or {}),
        "status": row.status if row.status in OFFER_STATUSES else "draft",
        "daily_budget": row.daily_budget,
        "timezone": row.timezone,
        "version": row.version,
        "created_at": iso_utc(row.created_at),
        "updated_at": iso_utc(row.updated_at),
    }
