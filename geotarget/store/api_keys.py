"""API keys in SQL: found by hash (the current one, or the one replaced by a rotation while its grace lasts),
listed without their hashes, rotated, revoked, and stamped with their last use. Rotations and revocations log a
change, so every worker's key cache forgets the key at its next sync (within a second)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from geotarget.catalog.model import as_utc
from geotarget.errors import Conflict, NotFound
from geotarget.store import models
from geotarget.store.database import transaction


@dataclass(frozen=True)
class StoredKey:
    id: str
    role: str
    merchant_id: str | None
    debug: bool = False  # an app key that may ask the decision explainer


@dataclass(frozen=True)
class KeyMatch:
    """A key found by its hash, valid until ``valid_until`` (None: until revoked)."""

    key: StoredKey
    valid_until: datetime | None


@dataclass(frozen=True)
class KeyRecord:
    """What an admin sees of a key: never the key or its hash."""

    id: str
    role: str
    owner_id: str | None
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked: bool


class KeyTable:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def add(self, key: StoredKey, key_hash: str, name: str, expires_at: datetime | None = None) -> None:
        with transaction(self._factory) as session:
            session.add(key_row(key, key_hash, name, expires_at))

    def find(self, key_hash: str, now: datetime) -> KeyMatch | None:
        """The key behind a hash, if it is neither revoked, nor expired, nor a replaced hash past its grace."""
        table = models.ApiKey
        with self._factory() as session:
            row = session.scalars(
                select(table).where(or_(table.key_hash == key_hash, table.previous_hash == key_hash))
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        ends = [as_utc(row.expires_at)] if row.expires_at is not None else []
        if row.key_hash != key_hash:
            ends.append(as_utc(row.previous_valid_until) if row.previous_valid_until else now)
        valid_until = min(ends, default=None)
        if valid_until is not None and valid_until <= now:
            return None
        return KeyMatch(StoredKey(row.id, row.role, row.merchant_id, bool(row.debug)), valid_until)

    def records(self, key_id: str | None = None) -> list[KeyRecord]:
        query = select(models.ApiKey).order_by(models.ApiKey.created_at, models.ApiKey.id)
        if key_id is not None:
            query = query.where(models.ApiKey.id == key_id)
        with self._factory() as session:
            return [_record(row) for row in session.scalars(query)]

    def rotate(
        self, key_id: str, new_hash: str, previous_valid_until: datetime, expires_at: datetime | None
    ) -> KeyRecord:
        """A new hash for the key; the current one stays valid until ``previous_valid_until`` (an older
        replaced hash is dropped: one grace at a time)."""
        with transaction(self._factory) as session:
            row = _live(session, key_id)
            row.previous_hash, row.previous_valid_until = row.key_hash, previous_valid_until
            row.key_hash, row.expires_at = new_hash, expires_at
            _changed(session, key_id)
            return _record(row)

    def revoke(self, key_id: str, now: datetime) -> None:
        """Refused from now on, on every worker once it has synced; revoking twice changes nothing."""
        with transaction(self._factory) as session:
            row = session.get(models.ApiKey, key_id)
            if row is None:
                raise NotFound(f"no key {key_id!r}", "id")
            if row.revoked_at is None:
                row.revoked_at, row.previous_hash, row.previous_valid_until = now, None, None
                _changed(session, key_id)

    def record_use(self, last_used: Mapping[str, datetime]) -> None:
        """Stamp each key's last use, never moving one back (workers flush at different times)."""
        with transaction(self._factory) as session:
            for key_id, moment in last_used.items():
                table = models.ApiKey
                stale = or_(table.last_used_at.is_(None), table.last_used_at < moment)
                session.execute(update(table).where(table.id == key_id, stale).values(last_used_at=moment))


def key_row(key: StoredKey, key_hash: str, name: str, expires_at: datetime | None = None) -> models.ApiKey:
    return models.ApiKey(
        id=key.id,
        key_hash=key_hash,
        role=key.role,
        name=name,
        merchant_id=key.merchant_id,
        expires_at=expires_at,
        debug=key.debug,
    )


def _live(session: Session, key_id: str) -> models.ApiKey:
    row = session.get(models.ApiKey, key_id)
    if row is None:
        raise NotFound(f"no key {key_id!r}", "id")
    if row.revoked_at is not None:
        raise Conflict(f"key {key_id!r} is revoked; issue a new one", "id")
    return row


def _changed(session: Session, key_id: str) -> None:
    session.add(models.Change(kind="key", entity_id=key_id, version=None))


def _record(row: models.ApiKey) -> KeyRecord:
    def utc(moment: datetime | None) -> datetime | None:
        return None if moment is None else as_utc(moment)

    return KeyRecord(
        id=row.id,
        role=row.role,
        owner_id=row.merchant_id,
        name=row.name,
        created_at=as_utc(row.created_at or datetime.now(UTC)),
        last_used_at=utc(row.last_used_at),
        expires_at=utc(row.expires_at),
        revoked=row.revoked_at is not None,
    )
