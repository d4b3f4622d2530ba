"""Request and response shapes, as the OpenAPI document shows them.

GeoJSON bodies are deliberately loose here (any geometry object): ``geofences.validate`` gives far more precise
messages (which ring, which vertex) than a schema could.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from api.report_schemas import VariantRow
from geofences import FenceError
from geotarget.catalog.fences import BulkResult
from geotarget.catalog.model import Offer
from geotarget.errors import GeotargetError
from geotarget.serving.answers import NearbyAnswer, shown


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_geometry"])
    message: str = Field(examples=["ring 0 intersects itself near [24.94, 60.17]"])
    field: str | None = Field(default=None, examples=["geometry.coordinates[0]"])

    @classmethod
    def of(cls, error: GeotargetError | FenceError) -> ErrorDetail:
        return cls(code=error.code, message=error.message, field=error.field)


class ErrorBody(BaseModel):
    error: ErrorDetail


def _judged_later(schema: dict[str, Any]) -> Any:
    """A field documented with ``schema`` but taken as sent: the fence validator judges it, with the same codes
    (``bad_name``, ``bad_radius``, ``bad_coordinates``…) for one fence as for a bulk upload."""
    return WithJsonSchema(schema)


class Geometry(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Annotated[Any, _judged_later({"type": "string", "examples": ["Polygon"]})]
    coordinates: Annotated[
        Any,
        _judged_later({"examples": [[[[-9.1305, 38.711], [-9.1298, 38.711], [-9.1298, 38.7115], [-9.1305, 38.711]]]]}),
    ] = None


class FenceProperties(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[Any, _judged_later({"type": ["string", "null"], "maxLength": 200})] = None
    radius_m: Annotated[
        Any,
        _judged_later(
            {
                "type": ["number", "null"],
                "minimum": 5,
                "maximum": 5000,
                "description": "Required for a Point (circle), 5 to 5,000 m (and at most the maximum area).",
            }
        ),
    ] = None
    tags: Annotated[Any, _judged_later({"type": ["array", "null"], "items": {"type": "string"}})] = None
    timezone: Annotated[
        Any,
        _judged_later({"type": ["string", "null"], "description": "IANA zone; derived from the location when absent."}),
    ] = None
    purpose: Annotated[
        Any,
        _judged_later(
            {
                "enum": ["serve", "audience"],
                "description": "'serve' (default) or 'audience': only feeds audiences (e.g. around a competitor), "
                "never served.",
            }
        ),
    ] = None


def _feature_schema(schema: dict[str, Any]) -> None:
    """A fence is a circle (a Point and ``properties.radius_m``) or a Polygon/MultiPolygon: said as precisely as a
    schema can say it, so clients and generated tests send the right shape (``geofences.validate`` says the rest)."""
    position = {"type": "array", "items": {"type": "number", "minimum": -180, "maximum": 180}, "minItems": 2}
    base = {k: v for k, v in schema.items() if k not in ("required", "properties")}
    properties = schema["properties"]
    schema.clear()
    schema.update(base)
    circle_properties = {"$ref": "#/components/schemas/FenceProperties"}
    schema["oneOf"] = [
        {
            "type": "object",
            "title": "CircleFeature",
            "required": ["type", "geometry", "properties"],
            "properties": {
                "type": properties["type"],
                "geometry": {
                    "type": "object",
                    "required": ["type", "coordinates"],
                    "properties": {
                        "type": {"type": "string", "const": "Point"},
                        "coordinates": {**position, "maxItems": 3},
                    },
                },
                "properties": circle_properties,  # radius_m required: the validator says so (bad_radius)
            },
        },
        {
            "type": "object",
            "title": "PolygonFeature",
            "required": ["type", "geometry"],
            "properties": {
                "type": properties["type"],
                "geometry": {
                    "type": "object",
                    "required": ["type", "coordinates"],
                    "properties": {
                        "type": {"type": "string", "enum": ["Polygon", "MultiPolygon"]},
                        "coordinates": {"type": "array", "items": {}},  # rings (Polygon) or polygons (Multi)
                    },
                },
                "properties": circle_properties,
            },
        },
    ]


class FeatureIn(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra=_feature_schema)
    type: Annotated[Any, _judged_later({"type": "string", "const": "Feature"})] = None
    geometry: Geometry | None = None
    properties: FenceProperties | None = None


class FencePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    geometry: Geometry | None = None
    properties: dict[str, Any] | None = None


class FeatureOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: dict[str, Any]
    properties: dict[str, Any]
    warnings: list[ErrorDetail] | None = Field(
        default=None, description="On a new fence only: why its place looks unlikely (lat/lon swapped?); it is kept."
    )


class FeatureCollectionOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[dict[str, Any]]


class BulkRow(BaseModel):
    index: int
    status: Literal["created", "existing", "rejected"] = Field(
        description="existing: its properties.external_id already names one of your fences (left as it is)"
    )
    id: str | None = None
    error: ErrorDetail | None = None


class BulkOut(BaseModel):
    created: int
    existing: int = Field(description="features whose external_id was already stored: a page sent again")
    rejected: int
    results: list[BulkRow]


def bulk_out(results: list[BulkResult]) -> BulkOut:
    rows = [
        BulkRow(index=r.index, status="rejected", error=ErrorDetail.of(r.error))
        if r.error is not None
        else BulkRow(index=r.index, status="existing" if r.existing else "created", id=r.id)
        for r in results
    ]
    counted = {status: sum(1 for r in rows if r.status == status) for status in ("created", "existing", "rejected")}
    return BulkOut(**counted, results=rows)


class ContainingFence(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    inside: bool
    distance_m: float


class ContainsOut(BaseModel):
    fences: list[ContainingFence]


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}


class ReadyOut(HealthOut):
    redis_persistence: Literal["aof", "rdb", "none", "unknown"] | None = Field(
        default=None,
        description="How Redis keeps cap counters across its own restart; 'none' means caps reset with it.",
    )


class OffersOut(BaseModel):
    offers: list[Offer]


class NearbyOffer(BaseModel):
    offer_id: str
    merchant_id: str
    title: str
    body: str
    url: str | None
    image_url: str | None
    special: bool
    geofence_id: str
    inside: bool
    distance_m: float
    impression_id: str = Field(description="Quote it in POST /v1/interactions (click, redeem, dismiss).")
    redemption_code: str | None = Field(
        default=None, description="Show it at the till: the offer's code, or one unique to this impression."
    )
    redemption_qr: str | None = Field(
        default=None, description="The code as a QR image (SVG) the till can scan: GET it when showing the code."
    )
    variant_id: str | None = Field(default=None, description="The creative variant shown (its title, text, image).")


class NearbyParams(BaseModel):
    """The query string of ``GET /v1/nearby``."""

    model_config = ConfigDict(extra="ignore")

    lat: float = Field(
        ge=-90, le=90, allow_inf_nan=False, description="Latitude of the device, WGS84 degrees, north positive."
    )
    lon: float = Field(
        ge=-180,
        le=180,
        allow_inf_nan=False,
        description="Longitude of the device, WGS84 degrees, east positive (GeoJSON puts it first: [lon, lat]).",
    )
    device_id: str = Field(min_length=1, max_length=200, description="Hashed before any use.")
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)
    limit: int = Field(default=5, ge=1, le=20)
    lmt: bool = Field(default=False, description="Limit ad tracking: answer now, keep no history.")
    age: int | None = Field(default=None, ge=0, le=130)
    gender: str | None = Field(default=None, max_length=32)
    interests: str | None = Field(default=None, max_length=1000, description="Comma-separated.")
    os: str | None = Field(default=None, max_length=32)
    language: str | None = Field(default=None, max_length=35, description="BCP 47, e.g. pt-PT")
    explain: bool = Field(default=False, description="admin or merchant key: why each offer is shown or not (dry run)")


class NearbyOut(BaseModel):
    offers: list[NearbyOffer]
    cell: str = Field(description="The H3 cell of the ping at the index resolution.")
    degraded: str | None = Field(default=None, description='"caps unavailable" when capped offers were withheld')
    warnings: list[ErrorDetail] | None = Field(
        default=None, description="On an empty answer only: the point is near no fence, but swapped it would be."
    )

    @classmethod
    def of(cls, answer: NearbyAnswer, base: str = "") -> NearbyOut:
        offers = [  # from the catalog's own checked records: nothing to validate
            NearbyOffer.model_construct(**shown(s, base), impression_id=s.impression_id) for s in answer.offers
        ]
        warnings = None
        if answer.swapped:
            warnings = [ErrorDetail(code="lat_lon_swapped", message=answer.swapped, field="lat")]
        return cls.model_construct(offers=offers, cell=answer.cell, degraded=answer.degraded, warnings=warnings)


class ReachRow(BaseModel):
    period: str
    impressions: int | None
    pushes: int | None = Field(description="Of the impressions, those pushed by a trigger.")
    reach: int | None
    avg_frequency: float | None
    frequency: dict[str, int | None]
    visitors: int | None
    visits: int | None
    visits_after_exposure: int | None
    cap_blocked: int | None
    clicks: int | None = Field(description="Impressions clicked (POST /v1/interactions), each counted once.")
    redemptions: int | None = Field(description="Codes redeemed at the till (POST /v1/redemptions).")
    scans: int | None = Field(description="Scans of the offer's posters (their QR codes), at the poster's store.")
    scan_redemptions: int | None = Field(description="Of the redemptions, unique codes a poster's page handed out.")
    ctr: float | None = Field(description="clicks ÷ impressions")
    bids: int | None = Field(description="Bids made on exchanges (POST /v1/openrtb2/bid).")
    wins: int | None = Field(description="Of the impressions, bids won on exchanges (win or billing notice).")
    spend: float | None = Field(description="Sum of the won bids' clearing prices ÷ 1,000, in the bid currency.")
    suppressed: list[str]


class LiftArm(BaseModel):
    devices: int | None
    visitors: int | None
    rate: float | None


class LiftOut(BaseModel):
    offer_id: str
    from_: str = Field(alias="from")
    to: str
    window_days: int
    holdout_pct: int
    k: int
    exposed: LiftArm
    control: LiftArm
    lift_abs: float | None = Field(description="exposed rate − control rate")
    lift_rel: float | None = Field(description="lift_abs ÷ control rate")
    ci95: list[float] | None = Field(description="95 % interval of lift_abs (Newcombe's hybrid score)")
    p_value: float | None
    in_words: str
    suppressed: bool


class ReachOut(BaseModel):
    scope: dict[str, str]
    timezone: str
    from_: str = Field(alias="from")
    to: str
    granularity: Literal["day", "week"]
    k: int
    rows: list[ReachRow]
    totals: ReachRow = Field(
        description="The whole window as one period: reach and visitors count each device once (period 'from/to')."
    )
    variants: list[VariantRow] | None = Field(
        default=None, description="An offer's creative variants over the window; all null when one is under k."
    )


class ErasedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    device_key: str
    redis_keys: int
    stream_entries: int
    stored_events: int


class ScopeMerchant(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    timezone: str | None


class ScopeFence(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    merchant_id: str
    timezone: str


class ScopeOffer(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    title: str
    merchant_id: str
    geofence_ids: list[str] = Field(description="the fences it is on now: by id, by tag or all of them")
    status: str


class ScopesOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    role: Literal["merchant", "adops"]
    merchants: list[ScopeMerchant]
    geofences: list[ScopeFence] = Field(validation_alias="fences")
    offers: list[ScopeOffer]
