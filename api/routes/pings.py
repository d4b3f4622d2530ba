"""Pings sent by apps, one or up to 1,000 at a time."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api.deps import App, Now, RuntimeDep
from api.errors import ERROR_RESPONSES
from api.measurement_schemas import PingsOut, pings_out
from api.openapi import one_or_many
from geotarget.measurement.pings import MAX_PINGS

router = APIRouter(prefix="/v1", tags=["events"], responses=ERROR_RESPONSES)

_PINGS_BODY = one_or_many("pings", MAX_PINGS, {"description": "one ping: device_id, lat, lon, ts, accuracy_m?, lmt?"})


@router.post("/pings", response_model=PingsOut, openapi_extra=_PINGS_BODY, operation_id="send_pings")
async def post_pings(request: Request, app: App, runtime: RuntimeDep, at: Now) -> PingsOut:
    """One ping, or ``{"pings": [...]}`` (at most 1,000). Good rows are kept, bad ones reported by index.
    Only the body is read here; parsing, validation and the Redis append run in the thread pool."""
    return pings_out(await run_in_threadpool(runtime.accept_pings, await request.body(), at, app.key_id))
