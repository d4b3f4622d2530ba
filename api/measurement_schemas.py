"""Request and response shapes of ``/v1/pings``, ``/v1/interactions`` and ``/v1/redemptions``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.openapi import one_or_many
from api.schemas import ErrorDetail
from geotarget.catalog.model import Offer, UtcTime
from geotarget.measurement.interactions import MAX_INTERACTIONS, TYPES, InteractionResult, InteractionType
from geotarget.measurement.pings import PingResult

INTERACTIONS_BODY = one_or_many(
    "interactions",
    MAX_INTERACTIONS,
    {
        "required": ["impression_id", "type"],
        "properties": {
            "impression_id": {"type": "string"},
            "type": {"enum": list(TYPES)},
            "ts": {"description": "ISO 8601 with an offset, or epoch seconds; default now"},
        },
    },
)


class InteractionRow(BaseModel):
    index: int
    status: Literal["accepted", "rejected"]
    event_id: str | None = None
    error: ErrorDetail | None = None


class InteractionsOut(BaseModel):
    accepted: int
    rejected: int
    results: list[InteractionRow]

    @classmethod
    def of(cls, results: list[InteractionResult]) -> InteractionsOut:
        rows = [
            InteractionRow(index=r.index, status="accepted", event_id=r.event_id)
            if r.error is None
            else InteractionRow(index=r.index, status="rejected", error=ErrorDetail.of(r.error))
            for r in results
        ]
        accepted = sum(1 for r in rows if r.status == "accepted")
        return cls(accepted=accepted, rejected=len(rows) - accepted, results=rows)


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64, examples=["7KQ3-M9XD-2PWT"])


class RedemptionOut(BaseModel):
    offer: Offer
    impression_id: str | None = Field(description="the impression a unique code was shown with; null for a static code")
    redeemed_at: UtcTime


__all__ = ["INTERACTIONS_BODY", "InteractionType", "InteractionsOut", "RedemptionIn", "RedemptionOut"]


class PingRow(BaseModel):
    index: int
    status: Literal["accepted", "rejected"]
    event_id: str | None = None
    stored: bool = False
    error: ErrorDetail | None = None
    warnings: list[ErrorDetail] | None = Field(
        default=None, description="lat_lon_swapped: kept, but it looks like lat and lon were sent the wrong way round"
    )


class PingsOut(BaseModel):
    accepted: int
    rejected: int
    results: list[PingRow]


def pings_out(results: list[PingResult]) -> PingsOut:
    rows = [
        PingRow(index=r.index, status="accepted", event_id=r.event_id, stored=r.stored, warnings=_swap_warning(r))
        if r.error is None
        else PingRow(index=r.index, status="rejected", error=ErrorDetail.of(r.error))
        for r in results
    ]
    accepted = sum(1 for r in rows if r.status == "accepted")
    return PingsOut(accepted=accepted, rejected=len(rows) - accepted, results=rows)


def _swap_warning(result: PingResult) -> list[ErrorDetail] | None:
    if result.swapped is None:
        return None
    return [ErrorDetail(code="lat_lon_swapped", message=result.swapped, field=f"pings[{result.index}].lat")]
