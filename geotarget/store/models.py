"""SQL tables. Geometry is kept as GeoJSON text so SQLite and PostgreSQL store the same thing; what is derived
from it (H3 covers, reach covers) is stored beside it when it is written, so a worker starting never re-covers
a fence. ``changes`` is an ordered log of fence and offer writes that lets workers
catch up even when Redis notifications were missed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    cap_per_device_per_day: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """A key keeps its id through rotations (an app's id names its impressions and webhooks); the replaced
    hash stays valid until ``previous_valid_until``."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    merchant_id: Mapped[str | None] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    previous_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    previous_valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    debug: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Geofence(Base):
    __tablename__ = "geofences"
    __table_args__ = (
        Index("ix_geofences_merchant", "merchant_id"),
        Index("ux_geofences_external_id", "merchant_id", "external_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(16))
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    radius_m: Mapped[float | None] = mapped_column(Float)
    timezone: Mapped[str] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    area_m2: Mapped[float] = mapped_column(Float)
    external_id: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class FenceCover(Base):
    """A fence's H3 cover at the index resolution, for the fence's version it was computed from. Cells are
    packed little-endian uint64 (``geotarget.store.covers``)."""

    __tablename__ = "fence_covers"

    fence_id: Mapped[str] = mapped_column(ForeignKey("geofences.id", ondelete="CASCADE"), primary_key=True)
    fence_version: Mapped[int] = mapped_column(Integer)
    res: Mapped[int] = mapped_column(Integer)
    interior: Mapped[bytes] = mapped_column(LargeBinary)  # compacted
    boundary: Mapped[bytes] = mapped_column(LargeBinary)


class ReachCover(Base):
    """The cells reaching ``nearby_m`` around a fence (``geofences.reach``), for one version of the fence and
    the finest resolution it was made for."""

    __tablename__ = "reach_covers"

    fence_id: Mapped[str] = mapped_column(ForeignKey("geofences.id", ondelete="CASCADE"), primary_key=True)
    nearby_m: Mapped[float] = mapped_column(Float, primary_key=True)
    fence_version: Mapped[int] = mapped_column(Integer)
    finest_res: Mapped[int] = mapped_column(Integer)
    cells: Mapped[bytes] = mapped_column(LargeBinary)


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (Index("ix_offers_merchant", "merchant_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(2000))
    image_url: Mapped[str | None] = mapped_column(String(2000))
    geofence_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    geofence_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    all_geofences: Mapped[bool] = mapped_column(Boolean, default=False)
    nearby_m: Mapped[float] = mapped_column(Float, default=0.0)
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    special: Mapped[bool] = mapped_column(default=False)
    caps: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=50)
    targeting: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    daily_budget: Mapped[int | None] = mapped_column(Integer)
    pacing: Mapped[str] = mapped_column(String(16), default="asap", server_default="asap")
    goal: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    holdout_pct: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    redemption: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    bid_cpm: Mapped[float | None] = mapped_column(Float)
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, server_default="[]")
    rotation: Mapped[str] = mapped_column(String(16), default="even", server_default="even")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Change(Base):
    __tablename__ = "changes"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))  # "fence", "offer", "merchant", "audience", "key" or "webhook"
    entity_id: Mapped[str] = mapped_column(String(40))
    version: Mapped[int | None] = mapped_column(Integer)  # None: deleted

    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Note(Base):
    """Small key/value facts the deployment keeps about itself (e.g. that the demo city was loaded)."""

    __tablename__ = "notes"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Erasure(Base):
    """Devices erased on request: their events are dropped wherever they still arrive from."""

    __tablename__ = "erasures"

    device_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Webhook(Base):
    """A webhook subscription. ``secret`` signs its deliveries, so it is kept as given (not hashed)."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_owner", "owner", "owner_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(16))  # "app" or "merchant"
    owner_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    geofence_ids: Mapped[list[str] | None] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Audience(Base):
    """A merchant's audience: its rule, and what its last refresh found (members live in Redis)."""

    __tablename__ = "audiences"
    __table_args__ = (Index("ix_audiences_merchant", "merchant_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    size: Mapped[int | None] = mapped_column(Integer)
    suppressed: Mapped[bool] = mapped_column(default=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RedemptionCode(Base):
    """A unique redemption code an impression carried (written by the event consumer); redeemed once."""

    __tablename__ = "redemption_codes"
    __table_args__ = (Index("ix_redemption_codes_merchant", "merchant_id"),)

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(40))
    merchant_id: Mapped[str] = mapped_column(String(40))
    impression_id: Mapped[str] = mapped_column(String(40))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
