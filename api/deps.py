"""Dependencies: the process runtime, the caller's principal, and role guards.

They are ``async`` so they run on the event loop: a sync dependency costs a thread-pool hop per request. The only
blocking step, an SQL key lookup on a cache miss, is sent to the thread pool explicitly.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.rate_classes import count_request
from geotarget.catalog.accounts import Principal, Role
from geotarget.catalog.fences import FenceService
from geotarget.catalog.keys import authenticate, known_principal, surely_unknown
from geotarget.catalog.offers import OfferService
from geotarget.runtime import Runtime
from geotarget.store.repository import EVERYONE, Owner

_bearer = HTTPBearer(auto_error=False, description="An API key: admin, merchant, app, adops or exchange.")


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_principal(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(
            401, "send an API key as 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    plain, admin_key = credentials.credentials, runtime.settings.admin_key
    principal = known_principal(plain, admin_key, runtime.keys)
    if principal is None and not surely_unknown(plain, runtime.keys):
        principal = await run_in_threadpool(authenticate, runtime.repository, plain, admin_key, runtime.keys)
    if principal is None:
        raise HTTPException(401, "unknown, expired or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    request.state.key_id = principal.key_id  # for the access log (see api/access_log.py)
    runtime.keys.used(principal.key_id)
    if runtime.server.quick:  # Redis answers fast: inline, as the serving call itself (api/routes/serving.py)
        count_request(request, runtime.rate_limits, runtime.device_limits, principal.key_id)
    else:
        await run_in_threadpool(count_request, request, runtime.rate_limits, runtime.device_limits, principal.key_id)
    return principal


async def authorize(request: Request, *roles: Role) -> Principal:
    """``require(*roles)`` as a plain call, for the hot path that skips dependency injection (its cost is
    a third of an answer's); the same rules and errors."""
    principal = await get_principal(request, request.app.state.runtime, await _bearer(request))
    return _allowed(principal, roles)


def _allowed(principal: Principal, roles: tuple[Role, ...]) -> Principal:
    if principal.role not in roles:
        raise HTTPException(403, f"this needs {_keys_in_words(roles)}; yours is {_keys_in_words([principal.role])}")
    return principal


def _keys_in_words(roles: Sequence[str]) -> str:
    """The kinds of key, as a sentence says them.

    >>> _keys_in_words(["app"]), _keys_in_words(["merchant", "adops", "admin"])
    ('an app key', 'a merchant, ad-ops or admin key')
    """
    names = ["ad-ops" if role == "adops" else role for role in roles]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"{'an' if listed[0] in 'aeiou' else 'a'} {listed} key"


def require(*roles: Role) -> object:
    async def guard(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        return _allowed(principal, roles)

    return Depends(guard)


Admin = Annotated[Principal, require("admin")]
Merchant = Annotated[Principal, require("merchant")]
App = Annotated[Principal, require("app")]
Reader = Annotated[Principal, require("merchant", "adops", "admin")]


async def viewer(principal: Reader) -> Owner:
    """Whose records a reader sees: a merchant its own, ad ops and the admin everyone's."""
    return principal.merchant_id if principal.role == "merchant" and principal.merchant_id else EVERYONE


Viewer = Annotated[Owner, Depends(viewer)]


async def now() -> datetime:
    """The request's clock; tests override it with ``app.dependency_overrides[now]``."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(now)]


async def clock(request: Request) -> datetime:
    """``now`` as a plain call for the hot path, honouring the same ``dependency_overrides[now]``."""
    override = request.app.dependency_overrides.get(now)
    if override is None:
        return datetime.now(UTC)
    moment = override()
    return cast(datetime, await moment if inspect.isawaitable(moment) else moment)


def merchant_id(principal: Principal) -> str:
    assert principal.merchant_id is not None, "merchant keys always belong to a merchant"
    return principal.merchant_id


async def get_fences(runtime: RuntimeDep) -> FenceService:
    return runtime.fences


Fences = Annotated[FenceService, Depends(get_fences)]


async def get_offers(runtime: RuntimeDep) -> OfferService:
    return runtime.offers


Offers = Annotated[OfferService, Depends(get_offers)]
