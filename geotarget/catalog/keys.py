"""Checking a bearer key on every request without SQL on the hot path, and a key's life after it is issued:
rotation with a grace period, revocation, expiry, last use.

A worker remembers the keys it has seen (``KeyCache``). A rotation or revocation logs a change; the worker's
catalog sync (every ``sync_poll_s``, at once on the Redis notification) makes the cache forget that key, so the
next request looks it up again: revocation reaches every worker within a second. Expiry needs no sync: a cached
key carries the moment it stops being valid."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from geotarget.catalog.accounts import ROLES, Principal, check_expiry, hash_key, new_key
from geotarget.errors import InvalidInput, NotFound
from geotarget.store.api_keys import KeyMatch
from geotarget.store.repository import Repository

DEFAULT_GRACE_S = 86_400
USAGE_FLUSH_S = 60.0  # last_used_at is written at most this often per worker: accurate to a minute


@dataclass(frozen=True)
class RotatedKey:
    id: str
    api_key: str
    previous_valid_until: datetime


@dataclass(frozen=True)
class _Entry:
    cached_until: float  # monotonic
    principal: Principal | None
    valid_until: float | None  # epoch seconds; None: until revoked


class KeyCache:
    """Recently seen keys (by hash) and their principals, so a hot path does not query SQL per request.
    Known keys live ``ttl_s`` seconds (or until a change to them is synced). Unknown keys are remembered for
    ``miss_ttl_s`` (short, so a key just issued by another worker works within seconds), so repeating a wrong
    key costs no SQL lookup. It also collects each key's last use, for ``flush_usage``."""

    def __init__(self, ttl_s: float = 30.0, miss_ttl_s: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.miss_ttl_s = miss_ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._used: dict[str, float] = {}
        self._flushed_at = time.monotonic()

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry.cached_until < time.monotonic():
            return None
        if entry.valid_until is not None and entry.valid_until <= time.time():
            del self._entries[key_hash]
            return None
        return entry.principal

    def missed(self, key_hash: str) -> bool:
        """True when this key was looked up very recently and is unknown."""
        entry = self._entries.get(key_hash)
        return entry is not None and entry.principal is None and entry.cached_until >= time.monotonic()

    def put(self, key_hash: str, match: KeyMatch | None) -> Principal | None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        principal = None
        if match is not None and match.key.role in ROLES:
            principal = Principal(match.key.role, match.key.id, match.key.merchant_id, match.key.debug)
        ttl_s = self.ttl_s if principal is not None else self.miss_ttl_s
        valid_until = None if match is None or match.valid_until is None else match.valid_until.timestamp()
        self._entries[key_hash] = _Entry(time.monotonic() + ttl_s, principal, valid_until)
        return principal

    def forget(self, key_ids: Iterable[str]) -> None:
        """Drop these keys (rotated or revoked elsewhere): their next use is looked up again."""
        gone = set(key_ids)
        for key_hash, entry in list(self._entries.items()):
            if entry.principal is not None and entry.principal.key_id in gone:
                self._entries.pop(key_hash, None)

    def used(self, key_id: str) -> None:
        self._used[key_id] = time.time()

    def flush_usage(self, repository: Repository, force: bool = False) -> None:
        """Write the last uses collected since the last flush, once a ``USAGE_FLUSH_S`` has passed."""
        if not self._used or (not force and time.monotonic() - self._flushed_at < USAGE_FLUSH_S):
            return
        used, self._used, self._flushed_at = self._used, {}, time.monotonic()
        repository.keys.record_use({k: datetime.fromtimestamp(at, UTC) for k, at in used.items() if k != "admin"})


def known_principal(plain: str, admin_key: str | None, cache: KeyCache) -> Principal | None:
    """The principal when no storage is needed (the admin key, or a key seen recently), else None."""
    if admin_key and hmac.compare_digest(plain.encode(), admin_key.encode()):
        return Principal("admin", "admin")
    return cache.get(hash_key(plain))


def surely_unknown(plain: str, cache: KeyCache) -> bool:
    """A key that cannot be one we issued (wrong shape), or one found unknown moments ago: no SQL needed."""
    return _KEY_SHAPE.fullmatch(plain) is None or cache.missed(hash_key(plain))


_KEY_SHAPE = re.compile(r"gt_(merchant|app|adops|exchange)_[A-Za-z0-9_-]{32}")


def authenticate(repository: Repository, plain: str, admin_key: str | None, cache: KeyCache) -> Principal | None:
    """The principal behind a bearer key, or None for an unknown, revoked or expired key (remembered either way)."""
    if (known := known_principal(plain, admin_key, cache)) is not None:
        return known
    key_hash = hash_key(plain)
    return cache.put(key_hash, repository.keys.find(key_hash, datetime.now(UTC)))


def rotate_key(
    repository: Repository,
    key_id: str,
    grace_s: int = DEFAULT_GRACE_S,
    expires_at: datetime | None = None,
    by_admin: bool = False,
) -> RotatedKey:
    """A new key for the same id (an app keeps its impressions and webhooks); the old one works ``grace_s`` more
    seconds (0: stops at once). A rotation never outlives the key's end: the new key keeps the old ``expires_at``
    (a key rotating itself may only bring it closer; the admin may set another), and the grace ends by then."""
    if key_id == "admin":
        raise InvalidInput("the admin key is set by GEOTARGET_ADMIN_KEY; change it there", "id")
    check_expiry(expires_at)
    record = next(iter(repository.keys.records(key_id)), None)
    if record is None:
        raise NotFound(f"no key {key_id!r}", "id")
    plain = new_key(record.role)
    until = rotation_grace_end(datetime.now(UTC), grace_s, record.expires_at)
    new_end = rotated_key_end(record.expires_at, expires_at, by_admin)
    repository.keys.rotate(key_id, hash_key(plain), until, new_end)
    return RotatedKey(key_id, plain, until)


def rotation_grace_end(now: datetime, grace_s: int, key_end: datetime | None) -> datetime:
    """When the replaced key stops: after its grace, and never after the key's own end.

    >>> end = datetime(2026, 1, 1, 12, 0, 20, tzinfo=UTC)
    >>> rotation_grace_end(datetime(2026, 1, 1, 12, tzinfo=UTC), 2_592_000, end) == end
    True
    """
    until = now + timedelta(seconds=grace_s)
    return until if key_end is None else min(until, key_end)


def rotated_key_end(key_end: datetime | None, asked: datetime | None, by_admin: bool) -> datetime | None:
    """The new key's end: the old one's, unless the admin sets another or the key asks for an earlier one.

    >>> old = datetime(2026, 1, 1, tzinfo=UTC)
    >>> rotated_key_end(old, None, by_admin=False) == old
    True
    >>> rotated_key_end(old, datetime(2027, 1, 1, tzinfo=UTC), by_admin=False) == old
    True
    """
    if asked is None:
        return key_end
    if by_admin or key_end is None:
        return asked
    return min(asked, key_end)


def revoke_key(repository: Repository, key_id: str) -> None:
    if key_id == "admin":
        raise InvalidInput("the admin key is set by GEOTARGET_ADMIN_KEY; change it there", "id")
    repository.keys.revoke(key_id, datetime.now(UTC))
