"""Response shapes of the per-variant reports (``/v1/reports/reach``'s ``variants`` and ``/v1/reports/variants``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class VariantRow(BaseModel):
    variant_id: str
    impressions: int | None
    reach: int | None
    clicks: int | None
    ctr: float | None = Field(description="clicks ÷ impressions")


class LiveVariant(VariantRow):
    title: str
    share: float = Field(description="the part of new impressions it gets now (0–1)")


class VariantsOut(BaseModel):
    offer_id: str
    rotation: str
    k: int
    from_: str = Field(alias="from", description="the figures' window, a UTC timestamp")
    to: str
    variants: list[LiveVariant] = Field(description="figures all null when one variant is under k devices")
