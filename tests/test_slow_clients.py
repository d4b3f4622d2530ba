"""Slow clients are cut off: headers sent a byte at a time, or a declared body that never comes, no longer hold a
connection for ever (3,000 + 1,000 such connections were all still held after 20 s)."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_KEY
from tests.servers import serving


def held_open(connections: list[socket.socket]) -> int:
    """How many the server has not closed: what it sent is read past; a closed one then reads as end of file."""
    still = 0
    for connection in connections:
        connection.setblocking(False)
        try:
            while connection.recv(65536):
                pass
        except BlockingIOError:
            still += 1
        except OSError:
            pass
    return still


@pytest.mark.slow
def test_slow_headers_and_slow_bodies_are_closed_while_others_are_answered(tmp_path, redis_url):
    deadlines = {"http_header_timeout_s": "2", "http_body_timeout_s": "3"}
    with serving(tmp_path / "data", redis_url, ADMIN_KEY, workers=1, **deadlines) as [base]:
        port = int(base.rsplit(":", 1)[1])
        silent: list[socket.socket] = []
        dribbling: list[socket.socket] = []
        bodiless: list[socket.socket] = []
        try:
            app = httpx.post(f"{base}/v1/apps", json={"name": "app"}, headers=ADMIN).json()["api_key"]
            _hold(port, base, app, silent, dribbling, bodiless)
            assert (held_open(silent), held_open(dribbling), held_open(bodiless)) == (0, 0, 0)
        finally:
            for connection in silent + dribbling + bodiless:
                connection.close()


def _hold(port: int, base: str, app: str, silent: list, dribbling: list, bodiless: list) -> None:
    """100 connections of each kind, kept slow for 5 s while an ordinary client is answered."""
    for _ in range(100):
        silent.append(socket.create_connection(("127.0.0.1", port)))
        dribble = socket.create_connection(("127.0.0.1", port))
        dribble.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        dribbling.append(dribble)
        body = socket.create_connection(("127.0.0.1", port))
        head = f"POST /v1/pings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {app}\r\nContent-Length: 1000\r\n\r\n"
        body.sendall(head.encode() + b"{")  # the route waits for the other 999 bytes
        bodiless.append(body)
    started = time.monotonic()
    while time.monotonic() - started < 5:
        for dribble in dribbling:  # a header line a second: each byte re-arms uvicorn's own timer
            with contextlib.suppress(OSError):
                dribble.sendall(b"X-Slow: 1\r\n")
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        time.sleep(1)
