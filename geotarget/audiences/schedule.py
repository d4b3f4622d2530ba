"""The scheduled refresh while serving: every worker runs this thread, and each period the one that takes the
lead in Redis refreshes every audience (so memberships stay fresh and never outlive their TTL)."""

from __future__ import annotations

import logging
import threading

from geotarget.audiences.service import AudienceService

log = logging.getLogger(__name__)


class AudienceRefresher:
    def __init__(self, audiences: AudienceService, every_s: int, check_s: float = 60.0) -> None:
        self.audiences = audiences
        self.every_s = every_s
        self.check_s = min(check_s, every_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audience-refresh", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.audiences.refresh_if_leading(self.every_s)
                if done:
                    log.info("refreshed %d audience(s)", len(done))
            except Exception:  # Redis or the database away: the next check tries again
                log.warning("scheduled audience refresh failed", exc_info=True)
            self._stop.wait(self.check_s)
