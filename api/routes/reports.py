"""Reach reports and heatmaps, for merchants (their own) and ad ops (everyone's)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BeforeValidator

from api.deps import Now, Reader, RuntimeDep, Viewer
from api.errors import ERROR_RESPONSES, NOT_FOUND
from api.report_schemas import VariantsOut
from api.schemas import FeatureCollectionOut, LiftOut, ReachOut, ScopesOut
from geotarget.measurement.reporting import ReportRequest, rows_to_csv

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=ERROR_RESPONSES)


def _iso_day(value: object) -> object:
    """Only ``YYYY-MM-DD`` from 1970 to 2999: pydantic would otherwise read ``0`` as 1970-01-01, and a window at
    the ends of the calendar cannot be shifted into another time zone."""
    if isinstance(value, str) and not re.fullmatch(r"(19[7-9]\d|2\d{3})-\d{2}-\d{2}", value):
        raise ValueError("a date must be written YYYY-MM-DD, between 1970-01-01 and 2999-12-31")
    return value


IsoDay = Annotated[date, BeforeValidator(_iso_day)]


@router.get(
    "/reach",
    response_model=ReachOut,
    responses={**NOT_FOUND, 200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
def reach_report(
    viewer: Viewer,
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
    request = ReportRequest(offer_id, geofence_id, merchant_id, from_, to, granularity, tz)
    report = runtime.reports.reach(request, viewer, at.date())
    if format == "csv":
        return PlainTextResponse(rows_to_csv(report["rows"], report["variants"]), media_type="text/csv")
    return report


@router.get("/lift", response_model=LiftOut, responses=NOT_FOUND, operation_id="lift_report")
def lift_report(
    viewer: Viewer,
    runtime: RuntimeDep,
    at: Now,
    offer_id: Annotated[str, Query(max_length=64)],
    from_: Annotated[IsoDay | None, Query(alias="from", description="first day (default: 29 days before 'to')")] = None,
    to: Annotated[IsoDay | None, Query(description="last day, inclusive (default: today)")] = None,
    window_days: Annotated[int, Query(ge=1, le=30, description="a visit counts this long after exposure")] = 7,
) -> dict[str, Any]:
    """Visit rate of devices shown the offer against devices held out (``holdout_pct``): absolute and relative
    lift, a 95 % interval (Newcombe) and a p-value; null when an arm has fewer than k devices or visitors."""
    return runtime.reports.lift(offer_id, viewer, from_, to, window_days, at.date())


@router.get("/variants", response_model=VariantsOut, responses=NOT_FOUND, operation_id="variants_report")
def variants_report(
    viewer: Viewer,
    runtime: RuntimeDep,
    at: Now,
    offer_id: Annotated[str, Query(max_length=64)],
    days: Annotated[int, Query(ge=1, le=30, description="the figures' window: the last this many days")] = 7,
) -> dict[str, Any]:
    """An offer's creative variants now: the share of new impressions each gets (optimized rotation moves it
    towards clicks) with its impressions, reach, clicks and click rate over the window."""
    return runtime.reports.variants(offer_id, viewer, at, days, runtime.server.rotation.shares)


@router.get("/scopes", response_model=ScopesOut)
def report_scopes(principal: Reader, viewer: Viewer, runtime: RuntimeDep) -> ScopesOut:
    """The merchants, fences and offers the caller may report on (ad ops: all; a merchant: its own)."""
    return ScopesOut.model_validate({"role": principal.role, **vars(runtime.reports.scopes(viewer))})


@router.get("/heatmap", response_model=FeatureCollectionOut, responses=NOT_FOUND, operation_id="heatmap_report")
def heatmap(
    viewer: Viewer,
    runtime: RuntimeDep,
    at: Now,
    geofence_id: Annotated[str, Query(max_length=64)],
    res: Annotated[int, Query(ge=5, le=15)] = 9,
    from_: Annotated[IsoDay | None, Query(alias="from")] = None,
    to: Annotated[IsoDay | None, Query()] = None,
    format_: Annotated[Literal["geojson"], Query(alias="format", description="GeoJSON only (CSV: reach)")] = "geojson",
) -> dict[str, Any]:
    """Pings, devices and visitors per H3 cell around a fence (cells under k devices are suppressed)."""
    return runtime.reports.heatmap(geofence_id, viewer, from_, to, res, at.date())
