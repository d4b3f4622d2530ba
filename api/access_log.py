"""The access log: method, route template, status, latency and key id, one line a request.

Never the raw path or query string: those carry device ids and exact positions (``/v1/nearby?lat=…&device_id=…``,
``/v1/devices/{device_id}``), which docs/privacy.md promises are not kept. A path that matched no route is logged
as ``-``. uvicorn's own access log is turned off by ``geotarget serve``.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geotarget.metrics import HTTP_REQUESTS, HTTP_SECONDS

log = logging.getLogger("geotarget.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = getattr(scope.get("route"), "path", None) or "-"
            key_id = scope.get("state", {}).get("key_id", "-")
            elapsed_s = time.perf_counter() - started
            HTTP_SECONDS.labels(scope["method"], route).observe(elapsed_s)
            HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            log.info(
                "%s %s %d %.1fms key=%s",
                scope["method"],
                route,
                status,
                elapsed_s * 1000,
                key_id,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "latency_ms": round(elapsed_s * 1000, 2),
                    "key_id": key_id,
                },
            )


__all__ = ["AccessLog"]
