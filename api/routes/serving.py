"""What apps call: the offers around a device, now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import App, Now, RuntimeDep
from api.errors import ERROR_RESPONSES
from api.schemas import NearbyOut
from geofences import LatLng
from geotarget.serving.server import NearbyQuery
from geotarget.serving.types import Attributes

router = APIRouter(prefix="/v1", tags=["serving"], responses=ERROR_RESPONSES)


@router.get("/nearby", response_model=NearbyOut)
def nearby(
    _: App,
    runtime: RuntimeDep,
    at: Now,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
    device_id: Annotated[str, Query(min_length=1, max_length=200, description="Hashed before any use.")],
    accuracy_m: Annotated[float | None, Query(ge=0, le=100_000)] = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
    lmt: Annotated[bool, Query(description="Limit ad tracking: answer now, keep no history.")] = False,
    age: Annotated[int | None, Query(ge=0, le=130)] = None,
    gender: Annotated[str | None, Query(max_length=32)] = None,
    interests: Annotated[str | None, Query(max_length=1000, description="Comma-separated.")] = None,
    os: Annotated[str | None, Query(max_length=32)] = None,
    language: Annotated[str | None, Query(max_length=35, description="BCP 47, e.g. pt-PT")] = None,
) -> Response:
    """The best offers for a device at (lat, lon), best first, each counted against its caps."""
    wants = {i.strip() for i in (interests or "").split(",") if i.strip()}
    attributes = Attributes(age=age, gender=gender, interests=frozenset(wants), os=os, language=language)
    query = NearbyQuery(LatLng(lat=lat, lon=lon), device_id, at, accuracy_m, limit, lmt, attributes)
    # built and checked once here; handing FastAPI the model would validate and encode it a second time
    return Response(NearbyOut.of(runtime.server.nearby(query)).model_dump_json(), media_type="application/json")
