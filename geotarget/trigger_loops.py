"""Triggers wired to their stores: the trigger loop (transitions → deliveries and pushes) and the delivery loop
(deliveries → receivers), the webhook service the API uses, and their figures for /metrics. Part of
``Runtime``; ``geotarget deliver`` runs the loops on their own."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from sqlalchemy.orm import Session, sessionmaker

from geotarget.catalog.snapshot import Catalog
from geotarget.serving.server import OfferServer
from geotarget.settings import Settings
from geotarget.store.redis_client import connect_raw
from geotarget.store.redis_deliveries import RedisDeliveries
from geotarget.store.redis_presence import RedisPresence
from geotarget.store.subscriptions import SubscriptionStore
from geotarget.store.transports import Transports
from geotarget.triggers.delivering import Deliverer
from geotarget.triggers.dispatch import Dispatcher, SubscriptionCache
from geotarget.triggers.probes import Probes
from geotarget.triggers.service import WebhookService
from geotarget.triggers.tracker import PresenceTracker
from geotarget.triggers.webhooks import parse_target
from geotarget.triggers.workers import Every, LoopThread, consumer_name, delivery_lap, trigger_lap

BLOCK_MS = 1_000
LINGER_S = 0.1  # what a transition or delivery may wait for others to go along with it (workers.LoopThread)
log = logging.getLogger(__name__)


@dataclass
class TriggerLoops:
    client: redis.Redis
    feed: RedisPresence
    deliveries: RedisDeliveries
    subscriptions: SubscriptionStore
    cache: SubscriptionCache
    transports: Transports
    dispatcher: Dispatcher
    deliverer: Deliverer
    threads: list[LoopThread] = field(default_factory=list)
    tracker: PresenceTracker | None = None
    claims: Every = field(default_factory=lambda: Every(5.0))  # the trigger loop takes a dead worker's entries
    webhooks_seen: int = 0  # the catalog's webhooks_version last read
    announce: Callable[[], None] = field(default=lambda: None)  # tells the other workers to sync (runtime sets it)
    probes: Probes = field(default_factory=Probes)  # webhook test sends, on threads of their own

    @classmethod
    def open(
        cls, settings: Settings, redis_url: str, catalog: Catalog, sessions: sessionmaker[Session], server: OfferServer
    ) -> TriggerLoops:
        client = connect_raw(redis_url, socket_timeout_s=max(10.0, settings.webhook_timeout_s))
        idle_ms = int(settings.webhook_claim_idle_s * 1000)
        feed = RedisPresence(client, settings.key_prefix(), settings.presence_rules(), idle_ms, settings.shards)
        deliveries = RedisDeliveries(client, settings.key_prefix(), idle_ms)
        subscriptions = SubscriptionStore(sessions)
        cache = SubscriptionCache(subscriptions.everyone)
        transports = Transports(settings.webhook_allow_private, settings.webhook_timeout_s)

        def merchant_of(fence_id: str) -> str | None:
            meta = catalog.meta(fence_id)
            return None if meta is None else meta.merchant_id

        dispatcher = Dispatcher(merchant_of, cache, deliveries, server, lambda fired: fired.measured(catalog.index))
        deliverer = Deliverer(
            cache,
            transports,
            deliveries,
            settings.retry_policy(),
            settings.webhook_parallel,
            settings.webhook_parallel_per_webhook,
        )
        loops = cls(client, feed, deliveries, subscriptions, cache, transports, dispatcher, deliverer)
        loops.tracker = server.tracker
        loops.listen()
        return loops

    def listen(self, webhooks_version: int | None = None) -> None:
        """Tell presence who listens now: on every catalog sync (``webhooks_version`` moves on when another
        worker changed subscriptions: read them again at once), and after a subscription change here. With the
        database away it keeps what it knew."""
        if self.tracker is None:
            return
        if webhooks_version is not None and webhooks_version != self.webhooks_seen:
            self.webhooks_seen = webhooks_version
            self.cache.invalidate()
        try:
            subscriptions = self.cache.current()
        except Exception as exc:
            log.warning("subscriptions not read (%s); presence keeps its listeners", exc.__class__.__name__)
            return
        self.tracker.listen(subscriptions)

    def _subscriptions_changed(self) -> None:
        self.cache.invalidate()
        self.listen()
        self.announce()  # the other workers sync now rather than at their next poll

    def webhooks(self, catalog: Catalog) -> WebhookService:
        def fence_merchant(fence_id: str) -> str | None:
            meta = catalog.meta(fence_id)
            return None if meta is None else meta.merchant_id

        def check_address(url: str) -> None:
            self.transports.address(parse_target(url))

        return WebhookService(
            self.subscriptions,
            self.deliveries,
            self.transports,
            check_address,
            fence_merchant,
            self._subscriptions_changed,
            self.probes,
        )

    def start(self) -> None:
        """Run both loops in this process (any number of processes may)."""
        me = consumer_name()
        claim_every_s = min(5.0, self.feed.claim_idle_ms / 2000)  # a dead worker's entries: now and then
        self.claims, claim_deliveries = Every(claim_every_s), Every(claim_every_s)
        promote = Every(0.5)  # due retries back in line twice a second, not every lap
        self.threads = [
            LoopThread("trigger-loop", self.feed.ensure_group, lambda: self._trigger_lap(me), LINGER_S),
            LoopThread(
                "delivery-loop",
                self.deliveries.ensure_group,
                lambda: delivery_lap(self.deliveries, self.deliverer, me, BLOCK_MS, promote(), claim_deliveries()),
                LINGER_S,
            ),
        ]
        for thread in self.threads:
            thread.start()

    def _trigger_lap(self, me: str) -> int:
        """One lap of the trigger loop; while nothing is listened anywhere it reads nothing (no transition is
        made then) and waits as long as a read would have blocked."""
        if self.tracker is None or not self.tracker.listened():
            time.sleep(BLOCK_MS / 1000)
            return 0
        return trigger_lap(self.feed, self.dispatcher, me, BLOCK_MS, self.claims())

    def close(self) -> None:
        for thread in self.threads:
            thread.stop()
        self.deliverer.close()
        self.probes.close()
        self.transports.close()
        self.client.close()

    def metrics(self) -> list[tuple[str, str, float]]:
        """Delivery figures over every delivery worker (kept in Redis); none when Redis is away."""
        try:
            stats = self.deliveries.stats()
        except redis.RedisError:
            return []
        return [
            ("webhook_deliveries_delivered_total", "counter", stats.get("delivered", 0.0)),
            ("webhook_deliveries_retried_total", "counter", stats.get("retried", 0.0)),
            ("webhook_deliveries_failed_total", "counter", stats.get("failed", 0.0)),
            ("webhook_delivery_latency_ms_total", "counter", round(stats.get("latency_ms_sum", 0.0), 1)),
            ("webhook_deliveries_waiting_retry", "gauge", stats.get("retry_waiting", 0.0)),
        ]
