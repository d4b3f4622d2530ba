"""A merchant's audiences: segments of devices by their visits to the merchant's fences. Another merchant's
audience is a 404; no route lists members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from api.audience_schemas import AudienceIn, AudienceOut, AudiencesOut
from api.deps import Merchant, RuntimeDep, merchant_id
from api.errors import ERROR_RESPONSES, NOT_FOUND
from geotarget.audiences.service import AudienceService

router = APIRouter(prefix="/v1/audiences", tags=["audiences"], responses=ERROR_RESPONSES)
AudienceId = Annotated[str, Path(max_length=64)]


async def service(runtime: RuntimeDep) -> AudienceService:
    return runtime.audiences


Audiences = Annotated[AudienceService, Depends(service)]


@router.post("", status_code=201, response_model=AudienceOut, operation_id="create_audience")
def create_audience(body: AudienceIn, principal: Merchant, audiences: Audiences) -> AudienceOut:
    """Stored and refreshed at once from the event store, so the answer has its size."""
    return AudienceOut.model_validate(audiences.create(merchant_id(principal), body.name, body.rule))


@router.get("", response_model=AudiencesOut, operation_id="list_audiences")
def list_audiences(principal: Merchant, audiences: Audiences) -> AudiencesOut:
    return AudiencesOut(audiences=[AudienceOut.model_validate(a) for a in audiences.listed(merchant_id(principal))])


@router.get("/{audience_id}", response_model=AudienceOut, responses=NOT_FOUND, operation_id="get_audience")
def get_audience(audience_id: AudienceId, principal: Merchant, audiences: Audiences) -> AudienceOut:
    return AudienceOut.model_validate(audiences.get(merchant_id(principal), audience_id))


@router.delete("/{audience_id}", status_code=204, responses=NOT_FOUND, operation_id="delete_audience")
def delete_audience(audience_id: AudienceId, principal: Merchant, audiences: Audiences) -> Response:
    """Refused with 409 while an offer targets it."""
    audiences.delete(merchant_id(principal), audience_id)
    return Response(status_code=204)


@router.post("/{audience_id}/refresh", response_model=AudienceOut, responses=NOT_FOUND, operation_id="refresh_audience")
def refresh_audience(audience_id: AudienceId, principal: Merchant, audiences: Audiences) -> AudienceOut:
    """Recompute its members now (they are also refreshed on a schedule while serving)."""
    return AudienceOut.model_validate(audiences.refresh_one(merchant_id(principal), audience_id))
