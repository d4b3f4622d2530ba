"""Everything one process needs, opened from ``Settings`` and closed again: database engine (migrated), Redis
(configured, or a private embedded server), the catalog and the worker that keeps it in step, and services."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pyarrow as pa
import redis
from sqlalchemy import Engine

from geofences import LatLng
from geotarget.audiences.schedule import AudienceRefresher
from geotarget.audiences.service import AudienceService
from geotarget.bidding.bidder import Bidder
from geotarget.bidding.notices import notice_key
from geotarget.catalog import accounts
from geotarget.catalog.fences import FenceService
from geotarget.catalog.keys import KeyCache, RotatedKey, revoke_key, rotate_key
from geotarget.catalog.model import Merchant
from geotarget.catalog.offers import OfferService
from geotarget.catalog.snapshot import Catalog
from geotarget.catalog.starting import COMPACT_EVERY_S, compact_when_behind, open_catalog
from geotarget.cpu import CpuPool
from geotarget.measurement.events import Event
from geotarget.measurement.interactions import InteractionResult, judge, parse_interactions_body
from geotarget.measurement.pings import PingResult, accept_pings, fences_inside, flag_swapped, parse_pings_body
from geotarget.measurement.privacy import Erased, apply_retention, erase_device
from geotarget.measurement.redemptions import Redeemed, normalized, redeem
from geotarget.measurement.reporting import ReportService
from geotarget.metrics import count, observe_catalog, render
from geotarget.periodic import Periodic
from geotarget.posters.landing import PosterDesk
from geotarget.serving.caps import GlobalCaps
from geotarget.serving.device_limits import DeviceLimits
from geotarget.serving.pacing_loop import EVERY_S as PACE_EVERY_S
from geotarget.serving.pacing_loop import pace_once
from geotarget.serving.rotation_loop import EVERY_S as LEARN_EVERY_S
from geotarget.serving.rotation_loop import learn_once
from geotarget.serving.server import OfferServer
from geotarget.serving.swapped import swapped_hint
from geotarget.settings import Settings
from geotarget.store import database
from geotarget.store.embedded_redis import EmbeddedRedis
from geotarget.store.event_store import ParquetEventStore
from geotarget.store.event_stream import RedisStreamSink
from geotarget.store.fence_sync import FenceFollower, RedisFenceNotifier
from geotarget.store.rate_limits import RateLimits
from geotarget.store.redemption_codes import CodeTable, issued_codes
from geotarget.store.redis_audiences import RedisMemberships
from geotarget.store.redis_caps import RedisCapper
from geotarget.store.redis_client import close, connect, connect_blocking, persistence
from geotarget.store.redis_devices import RedisDeviceData
from geotarget.store.redis_presence import RedisPresence
from geotarget.store.report_queries import audience_members, variant_counts
from geotarget.store.repository import Repository
from geotarget.store.stream_consumer import ConsumerThread, StreamConsumer
from geotarget.tally import Tally
from geotarget.trigger_loops import TriggerLoops
from geotarget.triggers.service import WebhookService
from geotarget.triggers.tracker import Fix, PresenceTracker

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    repository: Repository
    redis_url: str
    redis: redis.Redis
    catalog: Catalog
    fences: FenceService
    offers: OfferService
    server: OfferServer
    notifier: RedisFenceNotifier
    events: ParquetEventStore
    consumer: StreamConsumer
    reports: ReportService
    webhooks: WebhookService
    triggers: TriggerLoops
    audiences: AudienceService
    codes: CodeTable
    rate_limits: RateLimits
    bidder: Bidder
    follower: FenceFollower | None = None
    periodic: list[Periodic] = field(default_factory=list)  # pacing and rotation; compaction with the loops
    consumer_thread: ConsumerThread | None = None
    refresher: AudienceRefresher | None = None

    embedded: EmbeddedRedis | None = field(default=None, repr=False)
    device_limits: DeviceLimits = field(default_factory=lambda: DeviceLimits(""))

    @property
    def keys(self) -> KeyCache:
        return self.catalog.keys

    @property
    def posters(self) -> PosterDesk:
        return PosterDesk(self.repository, self.server)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        follow: bool = True,
        consume: bool | None = None,
        deliver: bool = False,
        load_catalog: bool = True,
    ) -> Runtime:
        """``deliver``: run the trigger and delivery loops here (a serving worker asks for them when
        ``deliver_in_serve`` is set; ``geotarget deliver`` always). ``load_catalog=False`` leaves the catalog
        empty: for a command that only writes (an import), a million fences need not be read first."""
        embedded = None
        redis_url = settings.redis_url
        if not redis_url:
            embedded = EmbeddedRedis(settings.data_dir.resolve() / "redis")
            redis_url = embedded.start()
            embedded.supervise()
            log.info("no GEOTARGET_REDIS_URL: started an embedded Redis at %s", redis_url)
        engine = database.make_engine(settings.sqlalchemy_url())
        if settings.migrate_on_start:
            database.migrate(engine)
        repository = Repository(database.session_factory(engine))
        client = connect(redis_url, settings.redis_timeout_ms)
        catalog = Catalog(settings.index_res)
        if load_catalog:  # from this machine's newest snapshot, else from SQL
            open_catalog(catalog, repository, settings.data_dir.resolve() / "catalog")
        observe_catalog(len(catalog.index), catalog.seq, None)
        notifier = RedisFenceNotifier(connect(redis_url, max(settings.redis_timeout_ms, 500)), settings.key_prefix())
        pool = CpuPool(settings.cpu_workers, settings.cpu_queue)
        fences = FenceService(settings, repository, catalog, notifier, pool)
        offers = OfferService(repository, catalog, fences.notify_others)
        rules = settings.presence_rules()
        presence = RedisPresence(client, settings.key_prefix(), rules, shards=settings.shards)
        tracker = PresenceTracker(catalog, presence, rules) if settings.triggers else None
        server = OfferServer(
            catalog,
            RedisCapper(client, settings.key_prefix(), presence, settings.shards),
            RedisStreamSink(client, settings.key_prefix(), settings.shards),
            settings.resolved_device_secret(),
            GlobalCaps(settings.global_cap_per_device_per_hour, settings.global_cap_per_device_per_day),
            settings.max_accuracy_m,
            settings.max_offers_per_merchant,
            tracker,
        )
        server.public_url = (settings.public_url or "").rstrip("/")
        server.pacer.workers = settings.workers
        events = ParquetEventStore(settings.events_location(), settings.s3_options(), settings.reports_engine())
        codes = CodeTable(database.session_factory(engine))
        consumer = StreamConsumer(
            connect_blocking(redis_url),
            settings.key_prefix(),
            events,
            lambda batch: _fences_inside(catalog, repository, batch),
            repository.erased_devices,
            settings.consumer_batch_size,
            stored=lambda table: codes.record(issued_codes(table)),
            claim_idle_ms=int(settings.consumer_claim_idle_s * 1000),
            shards=settings.shards,
        )

        reports = ReportService(repository, events, settings.report_min_devices)
        audiences = AudienceService(
            repository,
            catalog,
            partial(audience_members, events),
            RedisMemberships(connect_blocking(redis_url, 10.0), settings.key_prefix(), settings.shards),
            fences.notify_others,
            settings.report_min_devices,
            settings.audience_ttl_s,
        )
        triggers = TriggerLoops.open(settings, redis_url, catalog, database.session_factory(engine), server)
        triggers.announce = fences.notify_others
        server.stats.sink = count
        if tracker is not None:
            tracker.stats.sink = count
        runtime = cls(
            settings,
            engine,
            repository,
            redis_url,
            client,
            catalog,
            fences,
            offers,
            server,
            notifier,
            events,
            consumer,
            reports,
            triggers.webhooks(catalog),
            triggers,
            audiences,
            codes,
            RateLimits(
                client, settings.key_prefix(), settings.rate_limits(), redis_url, settings.redis_timeout_ms / 1000
            ),
            Bidder(server, settings.bid_rules(), notice_key(server.device_secret), Tally("bidding", count)),
            embedded=embedded,
            device_limits=DeviceLimits(settings.rate_limit_serving, settings.workers),
        )
        if follow:
            runtime.follower = FenceFollower(
                redis_url, settings.key_prefix(), runtime.sync_catalog, poll_s=settings.sync_poll_s
            )
            runtime.follower.start()
            counts = partial(variant_counts, events)
            runtime.periodic += [
                Periodic("pacing", PACE_EVERY_S, lambda: pace_once(server, datetime.now(UTC)), True),
                Periodic("rotation", LEARN_EVERY_S, lambda: learn_once(server, counts, datetime.now(UTC))),
            ]
        if settings.consume_in_serve if consume is None else consume:

            def housekeeping() -> None:
                RedisDeviceData(
                    consumer.client, settings.key_prefix(), settings.shards
                ).index_devices()  # once per deployment
                apply_retention(events, settings.retention_days, datetime.now(UTC).date())
                events.compact(consumer.erased())
                events.roll(datetime.now(UTC).date())  # after both: they change the raw files a rollup stands for

            sweep = None if tracker is None else lambda: tracker.sweep(datetime.now(UTC))
            runtime.consumer_thread = ConsumerThread(
                consumer, housekeeping, linger_ms=settings.consumer_linger_ms, sweep=sweep
            )

            runtime.consumer_thread.start()
            if settings.audience_refresh_s:
                runtime.refresher = AudienceRefresher(audiences, settings.audience_refresh_s)
                runtime.refresher.start()
        if deliver:
            triggers.start()
            snapshots = settings.data_dir.resolve() / "catalog"
            compact = partial(compact_when_behind, catalog, repository, snapshots)
            runtime.periodic.append(Periodic("compaction", COMPACT_EVERY_S, compact))
        for task in runtime.periodic:
            task.start()
        return runtime

    def close(self) -> None:
        try:
            self.keys.flush_usage(self.repository, force=True)
        except Exception:  # a database away at shutdown: the last minute of key use is not stamped
            log.warning("could not record the keys' last use", exc_info=True)
        if self.follower is not None:
            self.follower.stop()
        for task in self.periodic:
            task.stop()
        if self.consumer_thread is not None:
            self.consumer_thread.stop()
        if self.refresher is not None:
            self.refresher.stop()
        self.triggers.close()
        close(self.consumer.client)
        self.audiences.memberships.close()
        close(self.redis)
        self.rate_limits.close()
        close(self.notifier.client)
        self.engine.dispose()
        self.events.engine.close()
        self.fences.pool.close()
        self.catalog.close()
        if self.embedded is not None:
            self.embedded.stop()

    def rotate_key(self, key_id: str, grace_s: int, expires_at: datetime | None, by_admin: bool = False) -> RotatedKey:
        rotated = rotate_key(self.repository, key_id, grace_s, expires_at, by_admin)
        self._keys_changed()
        return rotated

    def revoke_key(self, key_id: str) -> None:
        revoke_key(self.repository, key_id)
        self._keys_changed()

    def _keys_changed(self) -> None:
        """This worker forgets the key now; the others when the notice (or their next poll) makes them sync."""
        self.catalog.sync(self.repository)
        self.fences.notify_others()

    def sync_catalog(self) -> None:
        """On every change notice and poll: the catalog (keys included) and who listens to presence catch up;
        keys' last uses are written."""
        if self.catalog.sync(self.repository):
            applied_at = self.catalog.applied_at
            delay_s = None if applied_at is None else (datetime.now(UTC) - applied_at).total_seconds()
            observe_catalog(len(self.catalog.index), self.catalog.seq, delay_s)
        self.triggers.listen(self.catalog.webhooks_version)  # subscriptions other workers made or removed
        self.keys.flush_usage(self.repository)

    def health(self) -> dict[str, str]:
        """'ok' or the reason each dependency is not ready."""
        checks: dict[str, str] = {}
        try:
            self.redis.ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"unavailable: {exc.__class__.__name__}"
        try:
            database.ping(self.engine)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {exc.__class__.__name__}"
        return checks

    def update_merchant(self, merchant_id: str, changes: dict[str, Any]) -> Merchant:
        """Change a merchant; every worker picks up its new cap from the change log."""
        merchant = accounts.update_merchant(self.repository, merchant_id, changes)
        self.catalog.sync(self.repository)
        self.fences.notify_others()
        return merchant

    def accept_pings(self, body: bytes, now: datetime, app: str = "") -> list[PingResult]:
        """``POST /v1/pings``: one ping or ``{"pings": [...]}``, each row judged on its own; the kept ones move
        their devices' presence."""
        secret, res, tracker = self.server.device_secret, self.settings.index_res, self.server.tracker
        moved = None if tracker is None else partial(_move_presence, tracker, app)
        rows = parse_pings_body(body)
        results = accept_pings(rows, self.server.sink, secret, res, now, moved, self.settings.max_clock_skew_s)
        return flag_swapped(results, rows, partial(swapped_hint, self.catalog.index))

    def accept_interactions(self, body: bytes, now: datetime, app: str) -> list[InteractionResult]:
        """``POST /v1/interactions``: rows judged one by one, the good ones appended together. Redis away: the
        request fails whole (503) and nothing is kept, so the app sends it again (idempotent)."""
        events, results = judge(parse_interactions_body(body), self.server.device_secret, app, now)
        if events:
            self.server.sink.append(events)
        return results

    def redeem(self, merchant_id: str, code: str, now: datetime) -> Redeemed:
        """A code typed at the merchant's till; the redemption is an event like any conversion."""
        done = redeem(self.codes, self.repository.offers(merchant_id), merchant_id, code, now)
        unique = done.impression_id is not None
        event_id = f"r:{normalized(code)}" if unique else f"r:{uuid.uuid4().hex}"  # a static code: each time
        event = Event(
            kind="redemption",
            event_id=event_id,
            at=now,
            device_key="",
            lat=0.0,
            lon=0.0,
            cell="",
            offer_id=done.offer.id,
            merchant_id=merchant_id,
            ref=done.impression_id or "",
        )
        try:
            self.server.sink.append([event])
        except Exception:  # the code is redeemed (SQL); only the report misses it
            log.warning("could not append the redemption of %s", done.offer.id, exc_info=True)
        return done

    def move_presence_bulk(self, table: pa.Table, raw_ids: Sequence[str], app: str = "") -> None:
        """Presence moved by stored bulk pings (``geotarget ingest --presence``), one device at a time in
        timestamp order; ``app`` is the app key whose webhooks hear of these devices ("": merchants' only)."""
        tracker = self.server.tracker
        if tracker is None:
            return
        columns = table.select(["device_key", "ts", "lat", "lon", "accuracy_m"]).to_pydict()
        rows = zip(raw_ids, *columns.values(), strict=True)
        tracker.seen_each(
            app, ((key, str(raw), Fix(LatLng(lat, lon), at, acc)) for raw, key, at, lat, lon, acc in rows)
        )

    def erase_device(self, device_id: str) -> Erased:
        """Everything held for a device, gone (see ``measurement.privacy``); Redis away: nothing changes."""
        redis_data = RedisDeviceData(
            self.consumer.client, self.settings.key_prefix(), self.settings.shards
        )  # no 50 ms serving timeout
        return erase_device(device_id, self.server.device_secret, self.repository, redis_data, self.events)

    def metrics_text(self) -> bytes:
        """``/metrics``: every worker's figures (this one's catalog as of now), and the webhook figures kept in
        Redis, the same whichever worker is asked."""
        observe_catalog(len(self.catalog.index), self.catalog.seq, None)
        return render(self.triggers.metrics())

    def redis_persistence(self) -> str:
        """``aof``/``rdb``: cap counters survive a Redis restart; ``none``: they are lost with it."""
        try:
            return persistence(self.redis)
        except redis.RedisError:
            return "unknown"


def _move_presence(tracker: PresenceTracker, app: str, kept: list[tuple[str, Event]]) -> None:
    tracker.seen_each(app, ((e.device_key, raw, Fix(LatLng(e.lat, e.lon), e.at, e.accuracy_m)) for raw, e in kept))


def _fences_inside(catalog: Catalog, repository: Repository, batch: pa.Table) -> list[list[str]]:
    catalog.sync(repository)  # the consumer may run in its own process: see the newest fences first
    return fences_inside(catalog.index, batch)
