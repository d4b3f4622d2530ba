"""A worker's background round: a daemon thread that does one job every so often until stopped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``work`` at once, then every ``every_s`` seconds (on the clock's multiples of it when ``aligned``:
    a minute's job at the turn of the minute). A round that raises is logged; what it would have set stands
    until the next round."""

    def __init__(self, name: str, every_s: float, work: Callable[[], None], aligned: bool = False) -> None:
        self.name, self.every_s, self.work, self.aligned = name, every_s, work, aligned
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            try:
                self.work()
            except Exception as exc:  # Redis or the event store away: the next round tries again
                log.warning("%s round failed: %s", self.name, exc.__class__.__name__)
            wait = self.every_s - time.time() % self.every_s if self.aligned else self.every_s
            if self._stop.wait(wait):
                return
