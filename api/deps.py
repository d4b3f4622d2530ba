"""Dependencies: the process runtime, the caller's principal, and role guards."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from geotarget.accounts import Principal, Role, authenticate
from geotarget.fences import FenceService
from geotarget.offers import OfferService
from geotarget.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="An API key: admin, merchant, app or adops.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_principal(
    runtime: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(
            401, "send an API key as 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    principal = authenticate(runtime.factory, credentials.credentials, runtime.settings.admin_key, runtime.keys)
    if principal is None:
        raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(*roles: Role) -> object:
    def guard(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"this needs a {' or '.join(roles)} key; yours is a {principal.role} key")
        return principal

    return Depends(guard)


Admin = Annotated[Principal, require("admin")]
Merchant = Annotated[Principal, require("merchant")]
App = Annotated[Principal, require("app")]


def now() -> datetime:
    """The request's clock; tests override it with ``app.dependency_overrides[now]``."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(now)]


def merchant_id(principal: Principal) -> str:
    assert principal.merchant_id is not None, "merchant keys always belong to a merchant"
    return principal.merchant_id


def get_fences(runtime: RuntimeDep) -> FenceService:
    return runtime.fences


Fences = Annotated[FenceService, Depends(get_fences)]


def get_offers(runtime: RuntimeDep) -> OfferService:
    return runtime.offers


Offers = Annotated[OfferService, Depends(get_offers)]
