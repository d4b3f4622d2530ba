"""The bid route's documented shapes. The request is OpenRTB 2.6's BidRequest (read by
``geotarget.bidding.openrtb``, which ignores what it does not use); the response models below document the
BidResponse the bidder writes and are not used to validate it again on the way out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

BID_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "An OpenRTB 2.6 BidRequest (docs/openrtb.md lists the fields read)",
                    "required": ["id", "imp"],
                    "properties": {"id": {"type": "string"}, "imp": {"type": "array", "items": {"type": "object"}}},
                }
            }
        },
    }
}


class BidOut(BaseModel):
    id: str
    impid: str
    price: float = Field(description="CPM, in the response's currency")
    nurl: str
    burl: str
    lurl: str
    adm: str = Field(description="banner HTML, or a Native 1.2 response as JSON text")
    adomain: list[str]
    crid: str
    cid: str
    mtype: int = Field(description="1 banner, 4 native")
    w: int | None = None
    h: int | None = None
    exp: int = Field(description="seconds the bid holds its cap slot")


class SeatBidOut(BaseModel):
    seat: str
    bid: list[BidOut]


class BidResponseOut(BaseModel):
    id: str
    seatbid: list[SeatBidOut] = Field(default_factory=list)
    bidid: str | None = None
    cur: str | None = None
    nbr: int | None = Field(default=None, description="no-bid reason (OpenRTB 2.6 list), when one fits")


class NoticeOut(BaseModel):
    bid: str
    outcome: Literal["settled", "late", "unknown"] = Field(
        description="settled: applied; late: applied after the bid's hold ended; unknown: no such open bid"
    )
