"""Start real ``geotarget serve`` processes for tests that need a server over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

GEOTARGET = [sys.executable, "-m", "api"]  # the `geotarget` command, run by this interpreter

UNLIMITED = {f"rate_limit_{kind}": "1000000/second" for kind in ("serving", "batches", "writes", "reports", "public")}
"""Rate limits no test reaches: tests send bursts from one key; tests/test_rate_limits.py sets its own."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(condition: Callable[[], object], timeout_s: float = 30, every_s: float = 0.1) -> None:
    """Poll ``condition`` until it is true; fail with what it last returned after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (last := condition()):
        assert time.monotonic() < deadline, f"still not true after {timeout_s} s: {last!r}"
        time.sleep(every_s)


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server at {base} exited with {process.returncode}"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server at {base} did not become ready")


@contextmanager
def serving(
    data_dir: Path,
    redis_url: str,
    admin_key: str,
    count: int = 1,
    workers: int = 1,
    log: Path | None = None,
    database_url: str | None = None,
    **settings: str,
) -> Iterator[list[str]]:
    """``count`` servers (each with ``workers`` processes) sharing one data directory (SQLite, unless a
    ``database_url`` is given) and one Redis; yields their base URLs. ``log`` collects what they print. Their
    trigger and delivery loops run only when asked (``deliver_in_serve="true"``)."""

    env = {
        **os.environ,
        "GEOTARGET_REDIS_URL": redis_url,
        "GEOTARGET_ADMIN_KEY": admin_key,
        "GEOTARGET_DATA_DIR": str(data_dir),
        "GEOTARGET_REDIS_PREFIX": f"srv{os.getpid()}{time.time_ns() % 10**6}",
        "GEOTARGET_DELIVER_IN_SERVE": "false",  # a process loading the catalog beside every test server; on if asked
        **{f"GEOTARGET_{name.upper()}": value for name, value in UNLIMITED.items()},
    }
    env.update({f"GEOTARGET_{k.upper()}": v for k, v in settings.items()})
    env.pop("GEOTARGET_DATABASE_URL", None)
    if database_url is not None:
        env["GEOTARGET_DATABASE_URL"] = database_url
    processes, bases = [], []
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    for _ in range(count):
        port = free_port()
        processes.append(
            subprocess.Popen(
                [*GEOTARGET, "serve", "--port", str(port), "--workers", str(workers)],
                env=env,
                stdout=output,
                stderr=output,
            )
        )
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for base, process in zip(bases, processes, strict=True):
            wait_ready(base, process)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
        if log is not None:
            output.close()


def unconfigured(
    command: str, data_dir: Path, port: int, output: int = subprocess.DEVNULL, **settings: str
) -> subprocess.Popen[str]:
    """``geotarget <command>`` as on a fresh machine: no ``GEOTARGET_*`` setting but the data directory (and
    ``settings``), so it brings its own embedded Redis and SQLite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOTARGET_")}
    env |= {"GEOTARGET_DATA_DIR": str(data_dir), **{f"GEOTARGET_{k.upper()}": v for k, v in settings.items()}}
    return subprocess.Popen(
        [*GEOTARGET, command, "--port", str(port)],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output == subprocess.PIPE else output,
        text=True,
    )
