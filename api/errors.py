"""Every error leaves as ``{"error": {"code", "message", "field"}}`` with a 4xx/5xx status; no stack traces."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schemas import ErrorBody
from geofences import FenceError
from geotarget.errors import Busy, Conflict, GeotargetError, InvalidInput, NotFound, TooManyAtOnce

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed request",
        401: "Missing, unknown, expired or revoked API key",
        403: "The key's role may not do this",
        413: "Body too large",
        422: "A value breaks a rule; `field` says which",
        429: "Over the key's rate limit; `Retry-After` says when to retry",
        503: "A dependency is unavailable",
    }.items()
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such thing for this key"}}


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}}, status, headers=headers)


def _field(loc: Sequence[Any], body: Any = None) -> str:
    parts = [str(p) for p in _without_tags(loc, body) if p not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or ".".join(str(p) for p in loc)


def _without_tags(loc: Sequence[Any], body: Any) -> list[Any]:
    """``loc`` without the tags pydantic puts in for a union's member (``rule.regulars.days`` is the rule's
    ``days``, its kind being regulars; ``expr.any-of.any[0]`` is ``expr.any[0]``): a tag is a step on the way
    (never the last: that may be a missing key) that is no key of the object it is taken in."""
    kept: list[Any] = []
    node = {"body": body} if body is not None else None
    for at, part in enumerate(loc):
        if at < len(loc) - 1 and isinstance(node, dict) and part not in node:
            continue
        kept.append(part)
        node = node.get(part) if isinstance(node, dict) else _item(node, part)
    return kept


def _item(node: Any, part: Any) -> Any:
    return node[part] if isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node) else None


def _plain(message: Any) -> str:
    """Pydantic's prefix for a rule's own ValueError says nothing to the person reading it."""
    text = str(message)
    return text.removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names the first route's methods only; a path may have several
            headers = {**(headers or {}), "Allow": allowed_methods(app, request.url.path, headers)}
        return error_response(exc.status_code, _CODES.get(exc.status_code, "error"), detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(ValidationError)
    async def _validation(_: Request, exc: RequestValidationError | ValidationError) -> JSONResponse:
        """A request that breaks the schema, or a merged PATCH that breaks the model: the first problem."""
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # FastAPI names the character offset as if it were a field
            return error_response(422, "invalid", f"the body is not valid JSON ({first.get('msg')})", "body")
        field = _field(first.get("loc", ()), getattr(exc, "body", None))
        message = f"{field}: {_plain(first.get('msg'))}" if field else _plain(first.get("msg"))
        return error_response(422, "invalid", message, field or None)

    @app.exception_handler(FenceError)
    async def _fence(_: Request, exc: FenceError) -> JSONResponse:
        return error_response(422, exc.code, exc.message, exc.field)

    @app.exception_handler(Busy)
    async def _busy(_: Request, exc: Busy) -> JSONResponse:
        status = 429 if isinstance(exc, TooManyAtOnce) else 503
        return error_response(status, exc.code, exc.message, exc.field, headers={"Retry-After": "2"})

    @app.exception_handler(GeotargetError)
    async def _domain(_: Request, exc: GeotargetError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 422
        code = exc.code if isinstance(exc, InvalidInput | NotFound | Conflict) else "error"
        return error_response(status, code, exc.message, exc.field)

    @app.exception_handler(OperationalError)
    async def _database(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return error_response(
            503,
            "database_unavailable",
            "the database is unavailable; try again shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(redis.RedisError)
    async def _redis(_: Request, exc: redis.RedisError) -> JSONResponse:
        return error_response(
            503, "redis_unavailable", "Redis is unavailable; try again shortly", headers={"Retry-After": "5"}
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal", "an unexpected error occurred; it has been logged")


def allowed_methods(app: FastAPI, path: str, headers: Mapping[str, str] | None) -> str:
    """Every method that some route of ``path`` answers, as the router picks them (the first route whose path
    and method match): what a 405's ``Allow`` must list. A route marked ``refuses_methods`` takes its methods
    away (it answers them with this 405)."""
    allowed = {m.strip() for m in (headers or {}).get("Allow", "").split(",") if m.strip()}
    claimed: set[str] = set()
    for route in _flat(app.router.routes):
        if isinstance(route, Route) and route.path_regex.match(path):
            for method in (route.methods or set()) - claimed:
                claimed.add(method)
                if not getattr(route.endpoint, "refuses_methods", False):
                    allowed.add(method)
    return ", ".join(sorted(allowed))


def _flat(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """Routes in the order the router tries them, through included routers (FastAPI wraps those)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _flat(inner.routes) if inner is not None else (route,)


class BodyLimit:
    """Refuses bodies over ``max_bytes`` (or the smaller limit of a path in ``path_limits``) with 413, whether or
    not the client sent Content-Length: an oversized body is never read to the end, let alone parsed."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(413, "too_large", _too_large(limit))(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> str:
    return f"the body is larger than {limit:,} bytes"
