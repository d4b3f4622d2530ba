"""Request and response shapes of ``/v1/audiences``. The rule is the domain's own model (declared once)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from geotarget.audiences.model import Rule
from geotarget.catalog.model import UtcTime


class AudienceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["Regulars of the Kallio café"])
    rule: Rule = Field(examples=[{"kind": "regulars", "min_days": 3, "days": 28, "tags": ["cafe"]}])


class AudienceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    rule: Rule
    size: int | None = Field(description="devices in it at the last refresh; null while suppressed (under k)")
    suppressed: bool = Field(description="under k devices: it matches nobody and its size is not told")
    refreshed_at: UtcTime | None
    created_at: UtcTime


class AudiencesOut(BaseModel):
    audiences: list[AudienceOut]
