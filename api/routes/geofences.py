"""A merchant's geofences. Every route is scoped to the caller's merchant: another merchant's id is a 404."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import Fences, Merchant, merchant_id
from api.errors import ERROR_RESPONSES, NOT_FOUND
from api.features import cells_collection, collection_of, feature_of
from api.openapi import created_links
from api.schemas import (
    BulkOut,
    ContainingFence,
    ContainsOut,
    ErrorBody,
    FeatureCollectionOut,
    FeatureIn,
    FeatureOut,
    FencePatch,
    bulk_out,
)
from geofences import LatLng
from geofences.formats import UploadLimits
from geotarget.errors import InvalidInput

router = APIRouter(prefix="/v1/geofences", tags=["geofences"], responses=ERROR_RESPONSES)

Repair = Annotated[bool, Query(description="Fix self-intersections with make_valid instead of refusing them.")]
FenceId = Annotated[str, Path(max_length=64)]
MAX_BULK = UploadLimits.max_features

_BULK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["type", "features"],
                    "properties": {
                        "type": {"type": "string", "enum": ["FeatureCollection"]},
                        "features": {
                            "type": "array",
                            "maxItems": MAX_BULK,
                            "items": {},
                            "description": "GeoJSON Features; each is judged on its own",
                        },
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "GeoJSON, KML, zipped Shapefile or GeoParquet",
                        }
                    },
                }
            },
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=FeatureOut,
    responses=created_links("fence_id", "get_fence", "patch_fence", "delete_fence", "fence_cells"),
)
def create_fence(body: FeatureIn, principal: Merchant, fences: Fences, repair: Repair = False) -> dict[str, Any]:
    return feature_of(fences.create(merchant_id(principal), body.model_dump(exclude_unset=True), repair=repair))


@router.post(
    "/bulk",
    response_model=BulkOut,
    openapi_extra=_BULK_BODY,
    responses={415: {"model": ErrorBody, "description": "Neither JSON nor a multipart upload"}},
)
async def create_fences_in_bulk(
    request: Request, principal: Merchant, fences: Fences, repair: Repair = False
) -> BulkOut:
    """A FeatureCollection as JSON, or a file upload. Valid features are stored, invalid ones reported.
    Parsing, validation and covering run in the CPU pool, never on this event loop."""
    owner = merchant_id(principal)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        data, filename = await _uploaded_file(request)
        results = await run_in_threadpool(fences.import_file, owner, data, filename, repair=repair)
    elif "json" in content_type:
        results = await run_in_threadpool(fences.import_collection, owner, await request.body(), repair=repair)
    else:
        raise HTTPException(415, "send application/json (a FeatureCollection) or multipart/form-data (a file)")
    return bulk_out(results)


async def _uploaded_file(request: Request) -> tuple[bytes, str | None]:
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("upload the fence file in a form field named 'file'", "file")
        return await upload.read(), upload.filename


@router.get("", response_model=FeatureCollectionOut)
def list_fences(principal: Merchant, fences: Fences) -> dict[str, Any]:
    return collection_of(fences.collection(merchant_id(principal)))


@router.get("/contains", response_model=ContainsOut)
def fences_containing(
    principal: Merchant,
    fences: Fences,
    lat: Annotated[float, Query(ge=-90, le=90, description="Latitude, WGS84 degrees, north positive.")],
    lon: Annotated[float, Query(ge=-180, le=180, description="Longitude, WGS84 degrees, east positive.")],
    within_m: Annotated[float, Query(ge=0, le=5_000, description="Also fences this close (metres).")] = 0,
) -> ContainsOut:
    """The caller's fences that contain the point, or lie within ``within_m`` — the matcher's own index."""
    found = fences.contains(merchant_id(principal), LatLng(lat=lat, lon=lon), within_m)
    return ContainsOut(fences=[ContainingFence.model_validate(f) for f in found])


@router.get("/{fence_id}", response_model=FeatureOut, responses=NOT_FOUND, operation_id="get_fence")
def get_fence(fence_id: FenceId, principal: Merchant, fences: Fences) -> dict[str, Any]:
    return feature_of(fences.get(merchant_id(principal), fence_id))


@router.patch("/{fence_id}", response_model=FeatureOut, responses=NOT_FOUND, operation_id="patch_fence")
def patch_fence(
    fence_id: FenceId, body: FencePatch, principal: Merchant, fences: Fences, repair: Repair = False
) -> dict[str, Any]:
    patch = body.model_dump(exclude_unset=True)
    return feature_of(fences.update(merchant_id(principal), fence_id, patch, repair=repair))


@router.delete("/{fence_id}", status_code=204, responses=NOT_FOUND, operation_id="delete_fence")
def delete_fence(fence_id: FenceId, principal: Merchant, fences: Fences) -> Response:
    fences.delete(merchant_id(principal), fence_id)
    return Response(status_code=204)


@router.get("/{fence_id}/cells", response_model=FeatureCollectionOut, responses=NOT_FOUND, operation_id="fence_cells")
def fence_cells(
    fence_id: FenceId,
    principal: Merchant,
    fences: Fences,
    res: Annotated[int | None, Query(ge=1, le=15, description="H3 resolution; the index's by default.")] = None,
) -> dict[str, Any]:
    """The fence's H3 cover, each cell marked ``interior`` (no geometry test needed) or ``boundary``."""
    return cells_collection(fences.cells(merchant_id(principal), fence_id, res))


__all__ = ["router"]
