"""A merchant's offers. Scoped like fences: another merchant's offer is a 404."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from api.deps import Merchant, Offers, merchant_id
from api.errors import ERROR_RESPONSES, NOT_FOUND
from api.openapi import created_links
from api.schemas import OffersOut
from geotarget.catalog.model import Offer, OfferFields

router = APIRouter(prefix="/v1/offers", tags=["offers"], responses=ERROR_RESPONSES)
OfferId = Annotated[str, Path(max_length=64)]


@router.post(
    "",
    status_code=201,
    response_model=Offer,
    responses=created_links("offer_id", "get_offer", "patch_offer", "delete_offer"),
)
def create_offer(body: OfferFields, principal: Merchant, offers: Offers) -> Offer:
    return offers.create(merchant_id(principal), body)


@router.get("", response_model=OffersOut)
def list_offers(principal: Merchant, offers: Offers) -> OffersOut:
    return OffersOut(offers=offers.list(merchant_id(principal)))


@router.get("/{offer_id}", response_model=Offer, responses=NOT_FOUND, operation_id="get_offer")
def get_offer(offer_id: OfferId, principal: Merchant, offers: Offers) -> Offer:
    return offers.get(merchant_id(principal), offer_id)


@router.patch("/{offer_id}", response_model=Offer, responses=NOT_FOUND, operation_id="patch_offer")
def patch_offer(offer_id: OfferId, body: dict[str, Any], principal: Merchant, offers: Offers) -> Offer:
    """Any subset of the offer's fields; the result is validated as a whole."""
    return offers.update(merchant_id(principal), offer_id, body)


@router.delete("/{offer_id}", status_code=204, responses=NOT_FOUND, operation_id="delete_offer")
def delete_offer(offer_id: OfferId, principal: Merchant, offers: Offers) -> Response:
    offers.delete(merchant_id(principal), offer_id)
    return Response(status_code=204)
