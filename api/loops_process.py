"""``serve``'s trigger and delivery loops, in one process beside the serving workers (``geotarget deliver``).

Run inside each worker, the loops' threads (one per webhook send in flight) took the GIL from requests at every
answer: with a webhook listening to every fence, a worker spent more CPU per request on switching than on
sending. One process of their own, started and restarted by ``serve`` and ended with it, sends the same
deliveries for the whole server (any number may run: they share the streams' consumer groups). It starts once
the workers answer ``/readyz``: it loads the catalog too, and three processes loading it at once on two cores
kept the workers from serving for a third longer (transitions wait in their Redis streams meanwhile).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request

from geotarget.store.embedded_redis import end_process

log = logging.getLogger(__name__)


class LoopsProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self.restarts = 0

    def start(self, ready_url: str | None = None, most_s: float = 600.0) -> None:
        """Start it once ``ready_url`` answers 200 (at once without one, and after ``most_s`` whatever it
        answers), and again within a second whenever it dies, until ``stop()``."""

        def run() -> None:
            if ready_url is not None:
                _wait_ready(ready_url, most_s, self._stopped)
            if not self._stopped.is_set():
                self._process = self._spawn()
                self._watch()

        threading.Thread(target=run, name="loops-supervisor", daemon=True).start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "api", "deliver", "--parent-pid", str(os.getpid())]
        return subprocess.Popen(command, env=self._env)

    def _watch(self) -> None:
        while not self._stopped.wait(1.0):
            process = self._process
            if process is None or process.poll() is None:
                continue
            log.warning("the trigger and delivery loops had stopped (exit %s); starting them again", process.returncode)
            self._process = self._spawn()
            self.restarts += 1

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopped.set()
        process, self._process = self._process, None
        if process is not None:
            end_process(process, timeout_s)


def _wait_ready(url: str, most_s: float, stopped: threading.Event) -> None:
    deadline = time.monotonic() + most_s
    while time.monotonic() < deadline and not stopped.wait(0.2):
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:  # not listening yet, or 503 while it opens (HTTPError is an OSError)
            continue


def exit_with_parent(parent: int, every_s: float = 1.0) -> threading.Event:
    """In the loops process: an event set as soon as the ``serve`` that started it is gone, even while it is
    still starting (a SIGKILLed ``serve`` runs no shutdown, and its loops would go on sending alone)."""
    stop = threading.Event()

    def watch() -> None:
        while os.getppid() == parent and not stop.is_set():  # an orphan's parent becomes another process
            time.sleep(every_s)
        stop.set()  # seen while still starting too: it closes what it opened once open

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
    return stop
