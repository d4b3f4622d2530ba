"""Admin-only: merchants and app (or ad-ops) keys. A new key is in the answer that creates it and nowhere else."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.account_schemas import AppIn, IssuedKeyOut, MerchantIn, MerchantOut, MerchantPatch, MerchantsOut
from api.deps import Admin, RuntimeDep
from api.errors import ERROR_RESPONSES, NOT_FOUND
from geotarget.catalog import accounts
from geotarget.store.repository import EVERYONE

router = APIRouter(prefix="/v1", tags=["accounts"], responses=ERROR_RESPONSES)
MerchantId = Annotated[str, Path(max_length=64)]


@router.post("/merchants", status_code=201, response_model=IssuedKeyOut)
def create_merchant(body: MerchantIn, _: Admin, runtime: RuntimeDep) -> IssuedKeyOut:
    issued = accounts.create_merchant(
        runtime.repository, body.name, body.timezone, body.cap_per_device_per_day, body.expires_at
    )
    return IssuedKeyOut(id=issued.id, api_key=issued.api_key)


@router.get("/merchants", response_model=MerchantsOut)
def list_merchants(_: Admin, runtime: RuntimeDep) -> MerchantsOut:
    """Every merchant, by name."""
    return MerchantsOut(merchants=[MerchantOut.model_validate(m) for m in runtime.repository.merchants(EVERYONE)])


@router.patch("/merchants/{merchant_id}", response_model=MerchantOut, responses=NOT_FOUND)
def patch_merchant(merchant_id: MerchantId, body: MerchantPatch, _: Admin, runtime: RuntimeDep) -> MerchantOut:
    """Rename a merchant, change its time zone, or set (``null``: clear) its per-device daily cap."""
    return MerchantOut.model_validate(runtime.update_merchant(merchant_id, body.model_dump(exclude_unset=True)))


@router.post("/apps", status_code=201, response_model=IssuedKeyOut)
def create_app_key(body: AppIn, _: Admin, runtime: RuntimeDep) -> IssuedKeyOut:
    issued = accounts.create_app_key(runtime.repository, body.name, body.role, body.expires_at, body.debug)
    return IssuedKeyOut(id=issued.id, api_key=issued.api_key)
