"""Settings from ``GEOTARGET_*`` environment variables or ``.env``. A class only: nothing is read at import time."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # each is imported where it is made: ``serve``'s launcher reads settings, and nothing else
    from geofences import FenceLimits
    from geofences.formats import UploadLimits
    from geotarget.bidding.reading import BidRules
    from geotarget.store.file_area import FileArea, S3Options
    from geotarget.store.report_engines import ReportEngine
    from geotarget.triggers.presence import PresenceRules
    from geotarget.triggers.webhooks import RetryPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GEOTARGET_", env_file=".env", extra="ignore", populate_by_name=True)

    admin_key: str | None = None
    data_dir: Path = Path(".geotarget")
    redis_url: str | None = None
    database_url: str | None = None
    events_url: str | None = Field(  # a folder or s3://bucket/prefix; EVENTS_PATH is its old name
        default=None, validation_alias=AliasChoices("GEOTARGET_EVENTS_URL", "GEOTARGET_EVENTS_PATH")
    )
    s3_endpoint_url: str | None = None  # any S3-compatible store (SeaweedFS, MinIO, R2...); AWS when unset
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str | None = None
    report_engine: Literal["duckdb", "spark"] = "duckdb"  # who runs reports, audiences and lift
    spark_master: str = "local[*]"  # or spark://host:7077
    device_secret: str | None = None
    index_res: int = Field(default=10, ge=4, le=15)
    report_min_devices: int = Field(default=10, ge=1)
    redis_timeout_ms: int = Field(default=50, ge=1)
    max_accuracy_m: float = Field(default=200.0, gt=0)
    triggers: bool = True  # move presence (enter / dwell / exit) for every ping seen
    exit_margin_m: float = Field(default=25.0, ge=0, le=1_000)
    max_clock_skew_s: int = Field(default=300, ge=0, le=86_400)  # a ping dated further ahead is refused
    presence_timeout_s: int = Field(default=1_800, ge=60, le=7 * 86_400)
    deliver_in_serve: bool = True  # serve runs the trigger and delivery loops (one process beside its workers)
    webhook_allow_private: bool = False  # let deliveries reach loopback and private addresses
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_base_s: float = Field(default=10.0, gt=0, le=3_600)  # first retry's wait (then doubling)
    webhook_give_up_s: float = Field(default=86_400.0, gt=0, le=7 * 86_400)
    webhook_parallel: int = Field(default=16, ge=1, le=256)  # deliveries in flight per delivery worker
    webhook_parallel_per_webhook: int = Field(default=8, ge=1, le=256)  # of those, at most this many to one webhook
    webhook_claim_idle_s: float = Field(default=60.0, ge=1, le=3_600)  # a taken entry this idle lost its worker
    max_fence_area_m2: float = Field(default=25_000_000.0, gt=0)
    max_fences_per_merchant: int = Field(default=100_000, ge=1)  # one key's share of the catalog
    max_fence_vertices: int = Field(default=10_000, ge=4)
    max_fence_cells: int = Field(default=10_000, ge=100)
    max_upload_unpacked_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_archive_members: int = Field(default=16, ge=1, le=1_000)
    cpu_workers: int = Field(default=1, ge=0, le=64)  # 0: in the request's thread
    cpu_queue: int = Field(default=8, ge=1, le=1_000)
    global_cap_per_device_per_hour: int | None = Field(default=None, ge=0)
    global_cap_per_device_per_day: int | None = Field(default=None, ge=0)
    retention_days: int = Field(default=90, ge=1)
    audience_refresh_s: int = Field(default=3_600, ge=0)  # 0: no scheduled refresh while serving
    audience_ttl_s: int = Field(default=3 * 86_400, ge=60)  # memberships not refreshed this long run out
    max_offers_per_merchant: int = Field(default=2, ge=1, le=20)
    consume_in_serve: bool = True
    rate_limit_serving: str = "20/second"  # per (app key, device), `limits` notation ("" = none): /v1/nearby
    rate_limit_serving_total: str = ""  # per key over every serving route (nearby, pings, interactions, bids)
    rate_limit_batches: str = "200/second"  # per key: pings, interactions, bids (their devices are in the body)
    rate_limit_writes: str = "20/second"  # every other /v1 route but reports
    rate_limit_reports: str = "5/second"
    rate_limit_public: str = "30/minute"  # per client address: poster pages (/o/…) and code images (/qr/…)
    tcf_vendor_id: int = Field(default=0, ge=0, le=65_535)  # our IAB TCF vendor id (0: none, so GDPR requests no-bid)
    bid_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")  # offers' bid_cpm and our bids are in it
    max_fix_age_s: int = Field(default=300, ge=0)  # an older device.geo.lastfix is a coarse position
    bid_hold_s: int = Field(default=300, ge=5, le=3_600)  # how long a bid holds its cap slot when imp.exp is unset
    bid_min_hold_s: int = Field(default=5, ge=1, le=3_600)  # the shortest hold, whatever imp.exp says
    max_bid_bytes: int = Field(default=256 * 1024, ge=1024)  # a bid request's body; larger is a 413 unread
    max_bid_imps: int = Field(default=20, ge=1, le=1_000)  # impression slots in one bid request
    public_url: str | None = None  # where phones and exchanges reach us (poster links, code QR images, notice URLs);
    # default: the request's own base URL
    consumer_batch_size: int = Field(default=5_000, ge=1, le=100_000)
    consumer_linger_ms: int = Field(default=2_000, ge=0, le=10_000)  # well under consumer_claim_idle_s
    consumer_claim_idle_s: float = Field(default=60.0, ge=0.5, le=3_600)  # then a dead consumer's entries move

    redis_prefix: str = Field(default="gt", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    shards: int = Field(default=1, ge=1, le=16_384)  # of devices' keys and streams (store.keys); fixed for a deployment
    sync_poll_s: float = Field(default=1.0, gt=0)
    migrate_on_start: bool = True
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    workers: int = Field(default=1, ge=1)  # worker processes of this server (`serve --workers` sets it)
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=600)  # a request's headers, from its first byte
    http_body_timeout_s: float = Field(default=60.0, gt=0, le=3_600)  # a request's body, from its headers
    log_format: Literal["json", "text"] = "json"
    tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"

    @field_validator(
        "rate_limit_serving",
        "rate_limit_serving_total",
        "rate_limit_batches",
        "rate_limit_writes",
        "rate_limit_reports",
        "rate_limit_public",
    )
    @classmethod
    def _limits_notation(cls, text: str) -> str:
        from geotarget.store.rate_limits import parse

        parse(text)  # ValueError: not the `limits` notation ("200/second", "10/minute; 500/hour")
        return text

    def rate_limits(self) -> dict[str, str]:
        """Each route class's limits (see api/rate_classes.py)."""
        return {
            "serving_total": self.rate_limit_serving_total,
            "batches": self.rate_limit_batches,
            "writes": self.rate_limit_writes,
            "reports": self.rate_limit_reports,
            "public": self.rate_limit_public,
        }

    def key_prefix(self) -> str:
        """Every Redis key's prefix; on a cluster (``redis+cluster://``) a hash tag: the deployment's slot (with
        several shards, devices' keys have their shards' own: ``store.keys``)."""
        from geotarget.store.redis_client import key_prefix

        return key_prefix(self.redis_url or "", self.redis_prefix)

    def sqlalchemy_url(self) -> str:
        """The configured database, or an SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'geotarget.db').resolve()}"

    def bid_rules(self) -> BidRules:
        from geotarget.bidding.reading import BidRules

        return BidRules(self.tcf_vendor_id, self.bid_currency, self.max_fix_age_s, self.bid_hold_s, self.bid_min_hold_s)

    def resolved_device_secret(self) -> str:
        """The configured secret, else one generated once into the data directory (shared by all workers)."""
        if self.device_secret:
            return self.device_secret
        from geotarget.measurement.devices import load_or_create_secret

        return load_or_create_secret(self.data_dir / "device.secret")

    def events_location(self) -> str:
        return self.events_url or str(self.data_dir / "events")

    def s3_options(self) -> S3Options:
        from geotarget.store.file_area import S3Options

        return S3Options(self.s3_endpoint_url, self.s3_access_key_id, self.s3_secret_access_key, self.s3_region)

    def reports_engine(self) -> Callable[[FileArea], ReportEngine]:
        """What runs report queries over the event files: DuckDB in process, or Spark at ``spark_master``."""
        if self.report_engine == "spark":
            from geotarget.store.spark_engine import SparkEngine  # sqlglot and Spark's client: only when asked for

            return functools.partial(SparkEngine, master=self.spark_master, s3=self.s3_options())
        from geotarget.store.report_engines import DuckDBEngine

        return DuckDBEngine

    def presence_rules(self) -> PresenceRules:
        from geotarget.triggers.presence import PresenceRules

        return PresenceRules(self.max_accuracy_m, self.exit_margin_m, self.presence_timeout_s)

    def retry_policy(self) -> RetryPolicy:
        from geotarget.triggers.webhooks import RetryPolicy

        return RetryPolicy(self.webhook_retry_base_s, min(3_600.0, self.webhook_give_up_s), self.webhook_give_up_s)

    def fence_limits(self) -> FenceLimits:
        from geofences import FenceLimits

        return FenceLimits(
            max_vertices=self.max_fence_vertices,
            max_area_m2=self.max_fence_area_m2,
            cover_res=self.index_res,
            max_cover_cells=self.max_fence_cells,
        )

    def upload_limits(self) -> UploadLimits:
        from geofences.archives import ArchiveLimits
        from geofences.formats import UploadLimits

        return UploadLimits(
            max_unpacked_bytes=self.max_upload_unpacked_bytes,
            archive=ArchiveLimits(
                max_members=self.max_archive_members, max_unpacked_bytes=self.max_upload_unpacked_bytes
            ),
        )
