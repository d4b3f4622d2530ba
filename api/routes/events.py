"""Pings from apps, reach reports and heatmaps for merchants and ad ops, and erasure of a device."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, App, Now, Reader, RuntimeDep
from api.errors import ERROR_RESPONSES, NOT_FOUND
from api.schemas import ErasedOut, FeatureCollectionOut, PingRow, PingsOut, ReachOut, ScopesOut
from geotarget.errors import InvalidInput
from geotarget.measurement.pings import accept_pings
from geotarget.measurement.privacy import erase_device
from geotarget.measurement.reporting import ReportRequest, rows_to_csv
from geotarget.runtime import Runtime

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


def _iso_day(value: object) -> object:
    """Only ``YYYY-MM-DD`` from 1970 to 2999: pydantic would otherwise read ``0`` as 1970-01-01, and a window at
    the ends of the calendar cannot be shifted into another time zone."""
    if isinstance(value, str) and not re.fullmatch(r"(19[7-9]\d|2\d{3})-\d{2}-\d{2}", value):
        raise ValueError("a date must be written YYYY-MM-DD, between 1970-01-01 and 2999-12-31")
    return value


IsoDay = Annotated[date, BeforeValidator(_iso_day)]

_PINGS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "required": ["pings"],
                            "properties": {"pings": {"type": "array", "maxItems": 1000, "items": {}}},
                        },
                        {"type": "object", "description": "one ping: device_id, lat, lon, ts, accuracy_m?, lmt?"},
                    ]
                }
            }
        },
    }
}


@router.post("/pings", tags=["events"], response_model=PingsOut, openapi_extra=_PINGS_BODY)
async def post_pings(request: Request, _: App, runtime: RuntimeDep, at: Now) -> PingsOut:
    """One ping, or ``{"pings": [...]}`` (at most 1,000). Good rows are kept, bad ones reported by index.
    Only the body is read here; parsing, validation and the Redis append run in the thread pool."""
    return await run_in_threadpool(_accept, await request.body(), runtime, at)


def _accept(raw: bytes, runtime: Runtime, at: datetime) -> PingsOut:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", "body") from exc
    if isinstance(body, dict) and "pings" in body:
        rows = body["pings"]
        if not isinstance(rows, list):
            raise InvalidInput("pings must be a list", "pings")
    else:
        rows = [body]
    results = accept_pings(rows, runtime.server.sink, runtime.server.device_secret, runtime.settings.index_res, at)
    out = [
        PingRow(
            index=r.index,
            status="accepted" if r.error is None else "rejected",
            event_id=r.event_id,
            stored=r.stored,
            error=None
            if r.error is None
            else {"code": r.error.code, "message": r.error.message, "field": r.error.field},
        )
        for r in results
    ]
    accepted = sum(1 for r in out if r.status == "accepted")
    return PingsOut(accepted=accepted, rejected=len(out) - accepted, results=out)


@router.get(
    "/reports/reach",
    tags=["reports"],
    response_model=ReachOut,
    responses={**NOT_FOUND, 200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
def reach_report(
    principal: Reader,
    runtime: RuntimeDep,
    at: Now,
    offer_id: Annotated[str | None, Query(max_length=64)] = None,
    geofence_id: Annotated[str | None, Query(max_length=64)] = None,
    merchant_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[IsoDay | None, Query(alias="from", description="first day (default: 29 days before 'to')")] = None,
    to: Annotated[IsoDay | None, Query(description="last day, inclusive (default: today)")] = None,
    granularity: Literal["day", "week"] = "day",
    tz: Annotated[str | None, Query(max_length=64, description="calendar of the periods")] = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Impressions, reach, frequency, visitors, visits, visits after exposure, cap-blocked serves per period.
    Figures from fewer than k devices are null and named in ``suppressed``."""
    viewer = principal.merchant_id if principal.role == "merchant" else None
    request = ReportRequest(offer_id, geofence_id, merchant_id, from_, to, granularity, tz)
    report = runtime.reports.reach(request, viewer, at.date())
    if format == "csv":
        return PlainTextResponse(rows_to_csv(report["rows"]), media_type="text/csv")
    return report


@router.get("/reports/scopes", tags=["reports"], response_model=ScopesOut)
def report_scopes(principal: Reader, runtime: RuntimeDep) -> dict[str, Any]:
    """The merchants, fences and offers the caller may report on (ad ops: all; a merchant: its own)."""
    viewer = principal.merchant_id if principal.role == "merchant" else None
    return {"role": principal.role, **runtime.reports.scopes(viewer)}


@router.get("/reports/heatmap", tags=["reports"], response_model=FeatureCollectionOut, responses=NOT_FOUND)
def heatmap(
    principal: Reader,
    runtime: RuntimeDep,
    at: Now,
    geofence_id: Annotated[str, Query(max_length=64)],
    res: Annotated[int, Query(ge=5, le=15)] = 9,
    from_: Annotated[IsoDay | None, Query(alias="from")] = None,
    to: Annotated[IsoDay | None, Query()] = None,
) -> dict[str, Any]:
    """Pings, devices and visitors per H3 cell around a fence (cells under k devices are suppressed)."""
    viewer = principal.merchant_id if principal.role == "merchant" else None
    last = to or at.date()
    first = from_ or last.replace(day=1)
    if first > last:
        raise InvalidInput("'to' is before 'from'", "to")
    return runtime.reports.heatmap(geofence_id, viewer, first, last, res)


@router.delete("/devices/{device_id}", tags=["privacy"], response_model=ErasedOut)
def erase(device_id: str, _: Admin, runtime: RuntimeDep) -> Response | ErasedOut:
    """Erase everything held for a device: counters, queued events, stored events; later events are dropped.
    Redis is checked first, so with Redis away this is a 503 with nothing changed; should Redis fail half-way,
    the erasure is recorded (later events are dropped) and repeating the request completes it."""
    runtime.redis.ping()
    erased = erase_device(
        device_id,
        runtime.server.device_secret,
        runtime.factory,
        runtime.consumer.client,
        runtime.settings.redis_prefix,
        runtime.events,
    )
    return ErasedOut(
        device_key=erased.device_key,
        redis_keys=erased.redis_keys,
        stream_entries=erased.stream_entries,
        stored_events=erased.stored_events,
    )
