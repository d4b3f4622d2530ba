"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import RuntimeDep
from api.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up (no dependency checks: restarting would not fix them)."""
    return HealthOut(status="ok")


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format, for every worker of this server whichever answers (docs/operations.md#metrics).
    Not async: the webhook delivery figures are a Redis read."""
    return Response(runtime.metrics_text(), media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Redis and the database answer; 503 names the one that does not. ``redis_persistence`` says whether cap
    counters would survive a Redis restart (it does not decide readiness)."""
    checks = runtime.health()
    ready = all(v == "ok" for v in checks.values())
    persistence = runtime.redis_persistence() if checks.get("redis") == "ok" else None
    body = ReadyOut(status="ok" if ready else "unavailable", checks=checks, redis_persistence=persistence)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
