"""Which rate limit a request counts against (docs/operations.md#rate-limits): ``/v1/nearby`` per (app key,
device) and, when set, per key in total; pings, interactions and bids (their devices are in the body) per key as
"batches"; reports; and every other authenticated route ("writes": managing fences, offers, audiences,
webhooks, keys)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from geotarget.serving.device_limits import DeviceLimits, DeviceRefusal
from geotarget.store.rate_limits import RateLimits, Refusal

BATCH_ROUTES = frozenset({"send_pings", "send_interactions", "bid"})


def route_class(request: Request) -> str:
    route = request.scope.get("route")
    name = getattr(route, "operation_id", None) or getattr(route, "name", "")  # the operation id, as in /docs
    tags = getattr(route, "tags", ())
    if name == "nearby":
        return "serving"
    if name in BATCH_ROUTES:
        return "batches"
    return "reports" if "reports" in tags else "writes"


def count_request(request: Request, limits: RateLimits, devices: DeviceLimits, key_id: str) -> None:
    """Count this request against its limits; over one: 429 before anything else is touched."""
    route = route_class(request)
    if route == "serving":
        device_id = request.query_params.get("device_id")
        if device_id and (refused := devices.check(key_id, device_id)) is not None:
            _refuse("this device is over its serving rate limit", refused)
    if route in ("serving", "batches") and (refused_total := limits.check(key_id, "serving_total")) is not None:
        _refuse("this key is over its total serving rate limit", refused_total)
    if route != "serving" and (refused_key := limits.check(key_id, route)) is not None:
        _refuse(f"this key is over its {route} rate limit", refused_key)


def _refuse(what: str, refusal: Refusal | DeviceRefusal) -> None:
    raise HTTPException(
        429,
        f"{what} ({refusal.limit}); try again in {refusal.retry_after_s} s",
        headers={
            "Retry-After": str(refusal.retry_after_s),
            "RateLimit-Limit": str(refusal.amount),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(refusal.retry_after_s),
        },
    )
