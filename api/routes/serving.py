"""What apps call: the offers around a device, now.

The product's hot path, so it takes its query string and key without FastAPI's per-request dependency solving
(a third of an answer's cost): ``NearbyParams`` validates the query in one pydantic call and documents it,
``authorize`` applies the same key rules as every other route, and ``clock`` reads the time as the ``now``
dependency does (tests override it the same way)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import cast

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import authorize, clock
from api.errors import ERROR_RESPONSES
from api.explain_schemas import ExplainOut
from api.openapi import query_parameters
from api.schemas import NearbyOut, NearbyParams
from geofences import LatLng
from geotarget.runtime import Runtime
from geotarget.serving.answers import NearbyQuery
from geotarget.serving.explain import explain
from geotarget.serving.types import Attributes

router = APIRouter(prefix="/v1", tags=["serving"], responses=ERROR_RESPONSES)


@router.get("/nearby", response_model=NearbyOut, openapi_extra=query_parameters(NearbyParams))
async def nearby(request: Request) -> Response:
    """The best offers for a device at (lat, lon), best first, each counted against its caps. With
    ``explain=true`` (an admin or merchant key): the dry run of ``GET /v1/explain`` instead."""
    if request.query_params.get("explain") in ("true", "1"):
        return await explain_offers(request)
    principal = await authorize(request, "app")
    at = await clock(request)
    query = _query(NearbyParams.model_validate(dict(request.query_params)), at, principal.key_id)
    server = cast(Runtime, request.app.state.runtime).server
    # Inline on the event loop while Redis answers quickly (a thread hop costs more than the call); on threads
    # after a fault or a slow answer, so a slow Redis holds up this request, not the whole worker.
    answer = server.nearby(query) if server.quick else await run_in_threadpool(server.nearby, query)
    # built and checked once here; handing FastAPI the model would validate and encode it a second time
    base = ""  # code QR links are absolute: GEOTARGET_PUBLIC_URL, else the address the app called
    if any(s.redemption_code for s in answer.offers):
        base = server.public_url or str(request.base_url).rstrip("/")
    return Response(NearbyOut.of(answer, base).model_dump_json(), media_type="application/json")


def _query(params: NearbyParams, at: datetime, app: str) -> NearbyQuery:
    wants = {i.strip() for i in (params.interests or "").split(",") if i.strip()}
    attributes = Attributes(
        age=params.age, gender=params.gender, interests=frozenset(wants), os=params.os, language=params.language
    )
    point = LatLng(lat=params.lat, lon=params.lon)
    return NearbyQuery(point, params.device_id, at, params.accuracy_m, params.limit, params.lmt, attributes, app)


@router.get("/explain", response_model=ExplainOut, openapi_extra=query_parameters(NearbyParams))
async def explain_offers(request: Request) -> Response:
    """Why each offer within 1 km is or is not shown to this device here now: a dry run of ``/v1/nearby``
    (nothing counted, logged or moved). Admin: every offer, for the device given. A merchant: its own offers; an
    app key made with ``debug: true``: every offer; both for a device that has seen nothing (the ``device_id``
    given is not used: a device's caps, audiences and holdout group are not theirs to read)."""
    principal = await authorize(request, "admin", "merchant", "app")
    if principal.role == "app" and not principal.debug:
        raise HTTPException(403, "the explainer needs an admin or merchant key, or an app key made with debug: true")
    merchant = principal.merchant_id if principal.role == "merchant" else None
    params = NearbyParams.model_validate(dict(request.query_params))
    if principal.role != "admin":
        params = params.model_copy(update={"device_id": f"explain:{secrets.token_hex(16)}"})
    query = _query(params, await clock(request), principal.key_id)
    runtime = cast(Runtime, request.app.state.runtime)
    found = await run_in_threadpool(explain, runtime.server, query, merchant)
    return Response(ExplainOut.model_validate(found).model_dump_json(), media_type="application/json")
