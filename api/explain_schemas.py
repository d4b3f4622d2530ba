"""The decision explainer's answer (``GET /v1/explain``, or ``/v1/nearby?explain=true``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from geotarget.catalog.model import UtcTime


class ExplainedOffer(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    offer_id: str
    merchant_id: str
    title: str
    geofence_id: str = Field(validation_alias="fence_id", description="the offer's best fence here (inside, nearest)")
    inside: bool
    distance_m: float
    outcome: Literal["served", "not_served"]
    reason: str = Field(
        description="served, offer_paused, offer_ended, push_only, out_of_reach, inaccurate, out_of_hours, "
        "targeting_<criterion>, per_merchant, audience, capped, budget_spent, holdout, below_limit"
    )
    detail: str = Field(description="the reason in words, with the figures that decided it")


class ExplainOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    at: UtcTime
    cell: str
    served: list[str] = Field(description="the offers /v1/nearby would show now, in order (yours, for a merchant)")
    offers: list[ExplainedOffer] = Field(
        description="every offer on a fence within 1 km (or the farthest reach), served first"
    )
