"""Queries over the SQL tables. Every fence read takes the owning merchant, so tenant isolation is a property of
the query, not something a caller must remember."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from geotarget.store.models import ApiKey, FenceChange, Geofence, Merchant, Note


def add_merchant(session: Session, merchant_id: str, name: str, timezone: str | None) -> Merchant:
    merchant = Merchant(id=merchant_id, name=name, timezone=timezone)
    session.add(merchant)
    session.flush()  # the merchant row must exist before its key rows reference it
    return merchant


def get_merchant(session: Session, merchant_id: str) -> Merchant | None:
    return session.get(Merchant, merchant_id)


def find_merchant_by_name(session: Session, name: str) -> Merchant | None:
    return session.scalars(select(Merchant).where(Merchant.name == name).limit(1)).first()


def add_api_key(session: Session, key_id: str, key_hash: str, role: str, name: str, merchant_id: str | None) -> None:
    session.add(ApiKey(id=key_id, key_hash=key_hash, role=role, name=name, merchant_id=merchant_id))


def find_api_key(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def add_fence(session: Session, values: dict[str, Any]) -> Geofence:
    fence = Geofence(**values)
    session.add(fence)
    session.flush()
    session.add(FenceChange(fence_id=fence.id, version=fence.version))
    return fence


def get_fence(session: Session, merchant_id: str, fence_id: str) -> Geofence | None:
    return session.scalars(select(Geofence).where(Geofence.id == fence_id, Geofence.merchant_id == merchant_id)).first()


def list_fences(session: Session, merchant_id: str) -> Sequence[Geofence]:
    return session.scalars(
        select(Geofence).where(Geofence.merchant_id == merchant_id).order_by(Geofence.created_at, Geofence.id)
    ).all()


def fences_by_ids(session: Session, fence_ids: Sequence[str]) -> Sequence[Geofence]:
    return session.scalars(select(Geofence).where(Geofence.id.in_(fence_ids))).all()


def all_fences(session: Session) -> Sequence[Geofence]:
    return session.scalars(select(Geofence)).all()


def update_fence(session: Session, fence: Geofence, values: dict[str, Any]) -> Geofence:
    for key, value in values.items():
        setattr(fence, key, value)
    fence.version += 1
    session.flush()
    session.add(FenceChange(fence_id=fence.id, version=fence.version))
    return fence


def delete_fence(session: Session, fence: Geofence) -> None:
    session.delete(fence)
    session.add(FenceChange(fence_id=fence.id, version=None))


def latest_change(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(FenceChange.seq), 0))) or 0)


def changes_since(session: Session, seq: int) -> Sequence[FenceChange]:
    return session.scalars(select(FenceChange).where(FenceChange.seq > seq).order_by(FenceChange.seq)).all()


def get_note(session: Session, key: str) -> str | None:
    note = session.get(Note, key)
    return note.value if note else None


def set_note(session: Session, key: str, value: str) -> None:
    session.merge(Note(key=key, value=value))


def delete_merchant_data(session: Session, merchant_id: str) -> None:
    """Remove a merchant and everything it owns (used by tests and the demo reset)."""
    fence_ids = session.scalars(select(Geofence.id).where(Geofence.merchant_id == merchant_id)).all()
    for fence_id in fence_ids:
        session.add(FenceChange(fence_id=fence_id, version=None))
    session.execute(delete(Geofence).where(Geofence.merchant_id == merchant_id))
    session.execute(delete(ApiKey).where(ApiKey.merchant_id == merchant_id))
    session.execute(delete(Merchant).where(Merchant.id == merchant_id))
