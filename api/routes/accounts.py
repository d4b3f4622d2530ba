"""Admin-only: create merchants and app (or ad-ops) keys. The plain key is in this answer and nowhere else."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, RuntimeDep
from api.errors import ERROR_RESPONSES
from api.schemas import AppIn, IssuedKeyOut, MerchantIn
from geotarget.catalog import accounts

router = APIRouter(prefix="/v1", tags=["accounts"], responses=ERROR_RESPONSES)


@router.post("/merchants", status_code=201, response_model=IssuedKeyOut)
def create_merchant(body: MerchantIn, _: Admin, runtime: RuntimeDep) -> IssuedKeyOut:
    issued = accounts.create_merchant(runtime.factory, body.name, body.timezone)
    return IssuedKeyOut(id=issued.id, api_key=issued.api_key)


@router.post("/apps", status_code=201, response_model=IssuedKeyOut)
def create_app_key(body: AppIn, _: Admin, runtime: RuntimeDep) -> IssuedKeyOut:
    issued = accounts.create_app_key(runtime.factory, body.name, body.role)
    return IssuedKeyOut(id=issued.id, api_key=issued.api_key)
