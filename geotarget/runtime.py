"""Everything one process needs, opened from ``Settings`` and closed again: database engine (migrated), Redis
(configured, or a private embedded server), the fence catalog and the worker that keeps it in step."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from geotarget.catalog import FenceCatalog
from geotarget.fences import FenceService
from geotarget.settings import Settings
from geotarget.store import database
from geotarget.store.embedded_redis import EmbeddedRedis
from geotarget.store.fence_sync import FenceFollower, RedisFenceNotifier
from geotarget.store.redis_client import connect

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    redis_url: str
    redis: redis.Redis
    catalog: FenceCatalog
    fences: FenceService
    notifier: RedisFenceNotifier
    follower: FenceFollower | None = None
    embedded: EmbeddedRedis | None = field(default=None, repr=False)

    @classmethod
    def open(cls, settings: Settings, *, follow: bool = True) -> Runtime:
        embedded = None
        redis_url = settings.redis_url
        if not redis_url:
            embedded = EmbeddedRedis(settings.data_dir.resolve() / "redis")
            redis_url = embedded.start()
            log.info("no GEOTARGET_REDIS_URL: started an embedded Redis at %s", redis_url)
        engine = database.make_engine(settings.sqlalchemy_url())
        if settings.migrate_on_start:
            database.migrate(engine)
        factory = database.session_factory(engine)
        client = connect(redis_url, settings.redis_timeout_ms)
        catalog = FenceCatalog(settings.index_res)
        catalog.load_all(factory)
        notifier = RedisFenceNotifier(connect(redis_url, max(settings.redis_timeout_ms, 500)), settings.redis_prefix)
        service = FenceService(settings, factory, catalog, notifier)
        runtime = cls(settings, engine, factory, redis_url, client, catalog, service, notifier, embedded=embedded)
        if follow:
            runtime.follower = FenceFollower(
                redis_url, settings.redis_prefix, lambda: catalog.sync(factory), poll_s=settings.sync_poll_s
            )
            runtime.follower.start()
        return runtime

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.redis.close()
        self.notifier.client.close()
        self.engine.dispose()
        if self.embedded is not None:
            self.embedded.stop()

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
