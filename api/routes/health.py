"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from api.deps import RuntimeDep
from api.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up (no dependency checks: restarting would not fix them)."""
    return HealthOut(status="ok")


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(runtime: RuntimeDep) -> str:
    """Prometheus text format. Counters are per worker process (scrape each worker, or sum them)."""
    stats = runtime.server.stats
    lines = [
        "# TYPE geotarget_nearby_requests_total counter",
        f"geotarget_nearby_requests_total {stats.requests}",
        "# TYPE geotarget_offers_served_total counter",
        f"geotarget_offers_served_total {stats.served}",
        "# TYPE geotarget_offers_cap_blocked_total counter",
        f"geotarget_offers_cap_blocked_total {stats.cap_blocked}",
        "# TYPE geotarget_nearby_degraded_total counter",
        f"geotarget_nearby_degraded_total {stats.degraded}",
        "# TYPE geotarget_event_append_failures_total counter",
        f"geotarget_event_append_failures_total {stats.event_failures}",
        "# TYPE geotarget_fences gauge",
        f"geotarget_fences {len(runtime.catalog.index)}",
        "# TYPE geotarget_catalog_change_seq gauge",
        f"geotarget_catalog_change_seq {runtime.catalog.seq}",
    ]
    return "\n".join(lines) + "\n"


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Redis and the database answer; 503 names the one that does not. ``redis_persistence`` says whether cap
    counters would survive a Redis restart (it does not decide readiness)."""
    checks = runtime.health()
    ready = all(v == "ok" for v in checks.values())
    persistence = runtime.redis_persistence() if checks.get("redis") == "ok" else None
    body = ReadyOut(status="ok" if ready else "unavailable", checks=checks, redis_persistence=persistence)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
