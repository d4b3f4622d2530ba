"""Keeps every worker's fence catalog in step: Redis says *that* something changed, SQL says *what*.

A writer bumps the version key and publishes on the channel. Each worker runs ``FenceFollower`` in a daemon
thread: it wakes on a message, or every ``poll_s`` to compare the version key, and then applies the SQL change
log. With Redis away it still re-reads the SQL log every ``sql_every_s``, so changes arrive late, never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from geotarget.store import keys
from geotarget.store.redis_client import connect_blocking

log = logging.getLogger(__name__)


class RedisFenceNotifier:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def changed(self) -> None:
        """Two calls, not a pipeline: a cluster client refuses PUBLISH in one (writes are rare)."""
        self.client.incr(keys.fences_version(self.prefix))
        self.client.publish(keys.fences_channel(self.prefix), "changed")


class FenceFollower:
    """Calls ``apply`` whenever the fence log may have grown; stop with ``stop()``."""

    def __init__(
        self,
        url: str,
        prefix: str,
        apply: Callable[[], object],
        poll_s: float = 1.0,
        sql_every_s: float = 5.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.apply = apply
        self.poll_s = poll_s
        self.sql_every_s = sql_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fence-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        last_sql = time.monotonic()
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:
                log.warning("fence follower lost Redis; falling back to reading SQL", exc_info=True)
            if time.monotonic() - last_sql >= self.sql_every_s:
                self._apply()
                last_sql = time.monotonic()
            self._stop.wait(self.poll_s)

    def _follow(self) -> None:
        client = connect_blocking(self.url, socket_timeout_s=self.poll_s + 5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
        try:
            pubsub.subscribe(keys.fences_channel(self.prefix))
            seen = client.get(keys.fences_version(self.prefix))
            self._apply()
            last_sql = time.monotonic()
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=self.poll_s)
                version = client.get(keys.fences_version(self.prefix))
                if message is not None or version != seen or time.monotonic() - last_sql >= self.sql_every_s:
                    seen = version
                    self._apply()
                    last_sql = time.monotonic()
        finally:
            pubsub.close()
            client.close()

    def _apply(self) -> None:
        try:
            self.apply()
        except Exception:
            log.warning("could not apply fence changes from SQL; will retry", exc_info=True)
