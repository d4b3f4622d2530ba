"""Queries over the SQL tables. Every fence read takes the owning merchant, so tenant isolation is a property of
the query, not something a caller must remember."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from geotarget.store.models import ApiKey, Change, Erasure, Geofence, Merchant, Note, Offer


def add_merchant(session: Session, merchant_id: str, name: str, timezone: str | None) -> Merchant:
    merchant = Merchant(id=merchant_id, name=name, timezone=timezone)
    session.add(merchant)
    session.flush()  # the merchant row must exist before its key rows reference it
    return merchant


def get_merchant(session: Session, merchant_id: str) -> Merchant | None:
    return session.get(Merchant, merchant_id)


def all_merchants(session: Session) -> Sequence[Merchant]:
    return session.scalars(select(Merchant).order_by(Merchant.name, Merchant.id)).all()


def find_merchant_by_name(session: Session, name: str) -> Merchant | None:
    return session.scalars(select(Merchant).where(Merchant.name == name).limit(1)).first()


def add_api_key(session: Session, key_id: str, key_hash: str, role: str, name: str, merchant_id: str | None) -> None:
    session.add(ApiKey(id=key_id, key_hash=key_hash, role=role, name=name, merchant_id=merchant_id))


def find_api_key(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def add_fence(session: Session, values: dict[str, Any]) -> Geofence:
    [fence] = add_fences(session, [values])
    return fence


def add_fences(session: Session, rows: Sequence[dict[str, Any]]) -> list[Geofence]:
    """Many fences and their change records in one flush (a 5,000-fence bulk is one round of inserts)."""
    fences = [Geofence(**values) for values in rows]
    session.add_all(fences)
    session.add_all([Change(kind="fence", entity_id=f.id, version=f.version) for f in fences])
    session.flush()
    return fences


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
    record_change(session, "fence", fence.id, fence.version)
    return fence


def delete_fence(session: Session, fence: Geofence) -> None:
    session.delete(fence)
    record_change(session, "fence", fence.id, None)


def record_change(session: Session, kind: str, entity_id: str, version: int | None) -> None:
    session.add(Change(kind=kind, entity_id=entity_id, version=version))


def latest_change(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(Change.seq), 0))) or 0)


def changes_since(session: Session, seq: int) -> Sequence[Change]:
    return session.scalars(select(Change).where(Change.seq > seq).order_by(Change.seq)).all()


def add_offer(session: Session, values: dict[str, Any]) -> Offer:
    offer = Offer(**values)
    session.add(offer)
    session.flush()
    record_change(session, "offer", offer.id, offer.version)
    return offer


def get_offer(session: Session, merchant_id: str, offer_id: str) -> Offer | None:
    return session.scalars(select(Offer).where(Offer.id == offer_id, Offer.merchant_id == merchant_id)).first()


def list_offers(session: Session, merchant_id: str) -> Sequence[Offer]:
    return session.scalars(
        select(Offer).where(Offer.merchant_id == merchant_id).order_by(Offer.created_at, Offer.id)
    ).all()


def offers_by_ids(session: Session, offer_ids: Sequence[str]) -> Sequence[Offer]:
    return session.scalars(select(Offer).where(Offer.id.in_(offer_ids))).all()


def all_offers(session: Session) -> Sequence[Offer]:
    return session.scalars(select(Offer)).all()


def update_offer(session: Session, offer: Offer, values: dict[str, Any]) -> Offer:
    for key, value in values.items():
        setattr(offer, key, value)
    offer.version += 1
    session.flush()
    record_change(session, "offer", offer.id, offer.version)
    return offer


def delete_offer(session: Session, offer: Offer) -> None:
    session.delete(offer)
    record_change(session, "offer", offer.id, None)


def get_note(session: Session, key: str) -> str | None:
    note = session.get(Note, key)
    return note.value if note else None


def set_note(session: Session, key: str, value: str) -> None:
    session.merge(Note(key=key, value=value))


def delete_merchant_data(session: Session, merchant_id: str) -> None:
    """Remove a merchant and everything it owns (used by tests and the demo reset)."""
    for fence_id in session.scalars(select(Geofence.id).where(Geofence.merchant_id == merchant_id)).all():
        record_change(session, "fence", fence_id, None)
    for offer_id in session.scalars(select(Offer.id).where(Offer.merchant_id == merchant_id)).all():
        record_change(session, "offer", offer_id, None)
    session.execute(delete(Offer).where(Offer.merchant_id == merchant_id))
    session.execute(delete(Geofence).where(Geofence.merchant_id == merchant_id))
    session.execute(delete(ApiKey).where(ApiKey.merchant_id == merchant_id))
    session.execute(delete(Merchant).where(Merchant.id == merchant_id))


def merchant_caps(session: Session, merchant_ids: set[str]) -> dict[str, int | None]:
    if not merchant_ids:
        return {}
    rows = session.execute(
        select(Merchant.id, Merchant.cap_per_device_per_day).where(Merchant.id.in_(sorted(merchant_ids)))
    ).all()
    return {merchant_id: cap for merchant_id, cap in rows}


def add_erasure(session: Session, device_key: str) -> None:
    session.merge(Erasure(device_key=device_key))


def erased_devices(session: Session) -> set[str]:
    return set(session.scalars(select(Erasure.device_key)).all())
