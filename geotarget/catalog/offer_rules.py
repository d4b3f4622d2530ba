"""Stored offer rows → the ``OfferRule`` the matcher uses (schedules parsed once, at load)."""

from __future__ import annotations

from typing import Any

from geotarget.serving.schedule import parse_schedule
from geotarget.serving.targeting import language_tag
from geotarget.serving.types import Caps, OfferRule, Targeting
from geotarget.store.models import Offer


def caps_of(raw: dict[str, Any] | None) -> Caps:
    return Caps(**{k: v for k, v in (raw or {}).items() if v is not None})


def targeting_of(raw: dict[str, Any] | None) -> Targeting:
    raw = raw or {}

    def lowered(name: str) -> frozenset[str] | None:
        values = raw.get(name)
        return None if values is None else frozenset(str(v).strip().lower() for v in values)

    age = raw.get("age_range")
    languages = raw.get("language")
    return Targeting(
        age_range=None if age is None else (int(age[0]), int(age[1])),
        genders=lowered("gender"),
        interests=lowered("interests"),
        os=lowered("os"),
        languages=None if languages is None else frozenset(language_tag(str(v)) for v in languages),
    )


def rule_of(row: Offer, merchant_cap_per_device_per_day: int | None = None) -> OfferRule:
    return OfferRule(
        id=row.id,
        merchant_id=row.merchant_id,
        title=row.title,
        body=row.body,
        url=row.url,
        image_url=row.image_url,
        fence_ids=tuple(row.geofence_ids),
        nearby_m=row.nearby_m,
        timezone=row.timezone,
        status=row.status,  # type: ignore[arg-type]
        priority=row.priority,
        special=row.special,
        schedule=parse_schedule(row.schedule),
        caps=caps_of(row.caps),
        targeting=targeting_of(row.targeting),
        daily_budget=row.daily_budget,
        merchant_cap_per_device_per_day=merchant_cap_per_device_per_day,
    )
