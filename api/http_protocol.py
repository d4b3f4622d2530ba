"""The HTTP/1.1 protocol ``geotarget serve`` runs: uvicorn's (httptools), with deadlines it lacks.

uvicorn only times out a connection that sits idle *between* requests, and any byte re-arms even that. So a
client that sends its headers a byte at a time, or declares a body and never sends it, holds a connection (and
for a body, a request task) for ever: 3,000 such connections were all still held after 20 s. Here a request's
headers must be complete within ``GEOTARGET_HTTP_HEADER_TIMEOUT_S`` (10 s) of its first byte (or of the
connection, for a client that sends nothing), and its body within ``GEOTARGET_HTTP_BODY_TIMEOUT_S`` (60 s) of
the headers; past either, the connection is closed. A reverse proxy in front (docs/operations.md) should keep
its own, tighter, limits.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from geotarget.settings import Settings


@functools.cache
def deadlines_s() -> tuple[float, float]:
    """(headers, body), read once per worker process from the settings."""
    settings = Settings()
    return settings.http_header_timeout_s, settings.http_body_timeout_s


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(deadlines_s()[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(deadlines_s()[0])

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(deadlines_s()[1])

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
