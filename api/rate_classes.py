"""Which rate limit a route counts against (docs/operations.md#rate-limits): serving routes, reports, and every
other authenticated route ("writes": managing fences, offers, audiences, webhooks, keys)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from geotarget.store.rate_limits import RateLimits

SERVING_ROUTES = frozenset({"nearby", "send_pings", "send_interactions", "bid"})


def route_class(request: Request) -> str:
    route = request.scope.get("route")
    name, tags = getattr(route, "name", ""), getattr(route, "tags", ())
    if name in SERVING_ROUTES:
        return "serving"
    return "reports" if "reports" in tags else "writes"


def count_request(request: Request, limits: RateLimits, key_id: str) -> None:
    """Count this request against its key's limit; over it: 429 before anything else is touched."""
    route = route_class(request)
    refusal = limits.check(key_id, route)
    if refusal is not None:
        raise HTTPException(
            429,
            f"this key is over its {route} rate limit ({refusal.limit}); try again in {refusal.retry_after_s} s",
            headers={
                "Retry-After": str(refusal.retry_after_s),
                "RateLimit-Limit": str(refusal.amount),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(refusal.retry_after_s),
            },
        )
