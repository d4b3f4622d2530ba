"""Webhook subscriptions in SQL. Every read and delete takes the owner (an app key or a merchant), so one
tenant cannot reach another's subscription by its id; only the trigger worker reads them all. A change is
logged in the catalog's change log, so every worker learns who listens within its next sync."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from geotarget.catalog.model import as_utc
from geotarget.errors import NotFound
from geotarget.store import models
from geotarget.store.database import transaction
from geotarget.triggers.webhooks import EventType, OwnerKind, Subscription


class SubscriptionStore:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def add(self, subscription: Subscription) -> Subscription:
        with transaction(self._factory) as session:
            row = models.Webhook(
                id=subscription.id,
                owner=subscription.owner,
                owner_id=subscription.owner_id,
                url=subscription.url,
                events=list(subscription.events),
                geofence_ids=None if subscription.geofence_ids is None else list(subscription.geofence_ids),
                secret=subscription.secret,
            )
            session.add(row)
            _changed(session, subscription.id)
            session.flush()
            return _subscription(row)

    def owned(self, owner: OwnerKind, owner_id: str) -> list[Subscription]:
        query = select(models.Webhook).where(models.Webhook.owner == owner, models.Webhook.owner_id == owner_id)
        with self._factory() as session:
            return [_subscription(r) for r in session.scalars(query.order_by(models.Webhook.created_at))]

    def one(self, owner: OwnerKind, owner_id: str, subscription_id: str) -> Subscription:
        """The owner's subscription, or ``NotFound`` (also for another owner's: its existence is not told)."""
        with self._factory() as session:
            row = session.get(models.Webhook, subscription_id)
            if row is None or row.owner != owner or row.owner_id != owner_id:
                raise NotFound(f"no webhook {subscription_id!r}", "id")
            return _subscription(row)

    def delete(self, owner: OwnerKind, owner_id: str, subscription_id: str) -> None:
        with transaction(self._factory) as session:
            row = session.get(models.Webhook, subscription_id)
            if row is None or row.owner != owner or row.owner_id != owner_id:
                raise NotFound(f"no webhook {subscription_id!r}", "id")
            session.delete(row)
            _changed(session, subscription_id)

    def everyone(self) -> list[Subscription]:
        """Every subscription (the trigger worker's cache)."""
        with self._factory() as session:
            return [_subscription(r) for r in session.scalars(select(models.Webhook))]


def _changed(session: Session, subscription_id: str) -> None:
    """Logged with the catalog's changes: every worker then reads who listens to presence again."""
    session.add(models.Change(kind="webhook", entity_id=subscription_id, version=None))


def _subscription(row: models.Webhook) -> Subscription:
    return Subscription(
        id=row.id,
        owner=cast(OwnerKind, row.owner),
        owner_id=row.owner_id,
        url=row.url,
        events=tuple(cast(Sequence[EventType], row.events)),
        secret=row.secret,
        geofence_ids=None if row.geofence_ids is None else tuple(row.geofence_ids),
        created_at=as_utc(row.created_at) if row.created_at else None,
    )
