"""Audiences in SQL: rules and what the last refresh found. Reads and deletes take the merchant, so one tenant
cannot reach another's audience by its id; the catalog and the scheduled refresh read them all. Every write logs
a change, so each worker's catalog learns the audience's new generation (and so its members) in order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from geotarget.audiences.model import RULE, Audience, Rule
from geotarget.catalog.model import as_utc
from geotarget.errors import Conflict, NotFound
from geotarget.store import models
from geotarget.store.database import transaction


class AudienceStore:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def add(self, audience: Audience) -> Audience:
        with transaction(self._factory) as session:
            if session.get(models.Merchant, audience.merchant_id) is None:
                raise NotFound(f"no merchant {audience.merchant_id!r}", "merchant_id")
            row = models.Audience(
                id=audience.id,
                merchant_id=audience.merchant_id,
                name=audience.name,
                rule=RULE.dump_python(audience.rule, mode="json", exclude_none=True),
                size=audience.size,
                suppressed=audience.suppressed,
                generation=audience.generation,
                refreshed_at=audience.refreshed_at,
                created_at=audience.created_at,
            )
            session.add(row)
            session.flush()
            session.add(models.Change(kind="audience", entity_id=row.id, version=row.generation))
            return _audience(row)

    def owned(self, merchant_id: str | None, ids: Sequence[str] | None = None) -> list[Audience]:
        """A merchant's audiences (every merchant's with ``None``), oldest first; only ``ids`` when given."""
        query = select(models.Audience)
        if merchant_id is not None:
            query = query.where(models.Audience.merchant_id == merchant_id)
        if ids is not None:
            query = query.where(models.Audience.id.in_(list(ids)))
        with self._factory() as session:
            return [_audience(r) for r in session.scalars(query.order_by(models.Audience.created_at))]

    def one(self, merchant_id: str, audience_id: str) -> Audience:
        with self._factory() as session:
            return _audience(_owned(session, merchant_id, audience_id))

    def delete(self, merchant_id: str, audience_id: str, used_by: Sequence[str]) -> None:
        """``used_by``: the merchant's offers that target it; an audience in use is not deleted."""
        if used_by:
            raise Conflict(f"offers {sorted(used_by)} target this audience; change them first", "id")
        with transaction(self._factory) as session:
            session.delete(_owned(session, merchant_id, audience_id))
            session.add(models.Change(kind="audience", entity_id=audience_id, version=None))

    def refreshed(self, audience_id: str, size: int | None, generation: int, at: datetime) -> Audience:
        """What a refresh found (``size`` None: under k devices, so suppressed); the new generation goes live."""
        with transaction(self._factory) as session:
            row = session.get(models.Audience, audience_id)
            if row is None:
                raise NotFound(f"no audience {audience_id!r}", "id")
            row.size, row.suppressed, row.refreshed_at = size, size is None, at
            row.generation = generation
            session.flush()
            session.add(models.Change(kind="audience", entity_id=row.id, version=row.generation))
            return _audience(row)


def _owned(session: Session, merchant_id: str, audience_id: str) -> models.Audience:
    row = session.get(models.Audience, audience_id)
    if row is None or row.merchant_id != merchant_id:
        raise NotFound(f"no audience {audience_id!r}", "id")
    return row


def _audience(row: models.Audience) -> Audience:
    rule: Rule = RULE.validate_python(row.rule)
    return Audience(
        id=row.id,
        merchant_id=row.merchant_id,
        name=row.name,
        rule=rule,
        size=row.size,
        suppressed=row.suppressed,
        generation=row.generation,
        refreshed_at=None if row.refreshed_at is None else as_utc(row.refreshed_at),
        created_at=as_utc(row.created_at),
    )
