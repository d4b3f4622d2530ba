"""The FastAPI application: ``create_app(settings)``; the lifespan opens and closes the runtime.

Nothing is created at import time. ``create_app_from_env`` is the factory uvicorn workers call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api import errors
from api.access_log import AccessLog
from api.openapi import hoist_variants
from api.routes import (
    accounts,
    audiences,
    devices,
    geofences,
    health,
    keys,
    measurement,
    offers,
    openrtb,
    pages,
    pings,
    posters,
    reports,
    serving,
    webhooks,
)
from geotarget.runtime import Runtime
from geotarget.settings import Settings


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the app; pass an open ``runtime`` to share one (tests), else the lifespan opens its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = runtime is None
        app.state.runtime = runtime or Runtime.open(settings, deliver=settings.deliver_in_serve)
        try:
            yield
        finally:
            if own:
                app.state.runtime.close()

    app = FastAPI(
        title="geotarget",
        version="0.1.0",
        description="Location-aware offers: exact H3 geofences, daily specials, frequency caps, reach reports.",
        lifespan=lifespan,
        docs_url=None,  # /docs is served by api/routes/pages.py from the vendored Swagger UI (no CDN)
        redoc_url=None,
        generate_unique_id_function=_operation_id,
    )
    if runtime is not None:
        app.state.runtime = runtime
    errors.install(app)
    bid_limit = {"/v1/openrtb2/bid": settings.max_bid_bytes}  # one exchange key must not stall a worker
    app.add_middleware(errors.BodyLimit, max_bytes=settings.max_body_bytes, path_limits=bid_limit)
    app.add_middleware(AccessLog)
    hot_first = (serving, openrtb, health, accounts, geofences, offers, audiences, pings, measurement, reports, devices)
    routers = (*hot_first, posters, webhooks, keys, pages)
    for module in routers:
        app.include_router(module.router)
    app.mount("/static", pages.static, name="static")
    document = app.openapi
    app.openapi = lambda: app.openapi_schema or hoist_variants(document())  # type: ignore[method-assign]
    return app


def _operation_id(route: APIRoute) -> str:
    """Operation ids are the handlers' names (``create_fence``, ``nearby``): what a generated client calls its
    functions, stable as long as the handler keeps its name (tests/test_openapi_contract.py)."""
    return route.name


def create_app_from_env() -> FastAPI:
    return create_app(Settings())
