"""Merchants, apps and API keys. Keys are random, shown once, and stored only as SHA-256 hashes (they carry 192
bits of entropy, so a fast hash is enough and lookups stay O(1))."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from geotarget.catalog.model import Merchant
from geotarget.catalog.timezones import check_timezone
from geotarget.errors import InvalidInput
from geotarget.store.repository import Repository, StoredKey

Role = Literal["admin", "merchant", "app", "adops"]
ROLES: tuple[Role, ...] = ("admin", "merchant", "app", "adops")


@dataclass(frozen=True)
class Principal:
    role: Role
    key_id: str
    merchant_id: str | None = None


@dataclass(frozen=True)
class IssuedKey:
    id: str
    api_key: str


def new_id(prefix: str) -> str:
    """Short, URL-safe, prefixed ids (``fen_3kq…``) that say what they name in logs and URLs."""
    return f"{prefix}_{secrets.token_hex(10)}"


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def _new_key(role: str) -> str:
    return f"gt_{role}_{secrets.token_urlsafe(24)}"


def create_merchant(
    repository: Repository, name: str, timezone: str | None = None, cap_per_device_per_day: int | None = None
) -> IssuedKey:
    if timezone is not None:
        check_timezone(timezone)
    if not name.strip():
        raise InvalidInput("name must not be empty", "name")
    merchant = Merchant(new_id("mer"), name.strip(), timezone, cap_per_device_per_day)
    plain = _new_key("merchant")
    key = StoredKey(new_id("key"), "merchant", merchant.id)
    repository.add_merchant(merchant, key, hash_key(plain), merchant.name)
    return IssuedKey(merchant.id, plain)


def update_merchant(repository: Repository, merchant_id: str, changes: dict[str, Any]) -> Merchant:
    """Rename, move to another time zone, or set or clear (``None``) the per-device daily cap."""
    if changes.get("timezone") is not None:
        check_timezone(changes["timezone"])
    if "name" in changes:
        if changes["name"] is None or not str(changes["name"]).strip():
            raise InvalidInput("name must not be empty", "name")
        changes = {**changes, "name": str(changes["name"]).strip()}
    return repository.update_merchant(merchant_id, changes)


def issue_merchant_key(repository: Repository, merchant_id: str) -> str:
    """Another key for an existing merchant (the demo prints fresh ones on every start)."""
    plain = _new_key("merchant")
    repository.add_key(StoredKey(new_id("key"), "merchant", merchant_id), hash_key(plain), "issued")
    return plain


def create_app_key(repository: Repository, name: str, role: Role = "app") -> IssuedKey:
    if role not in ("app", "adops"):
        raise InvalidInput("role must be 'app' or 'adops'", "role")
    if not name.strip():
        raise InvalidInput("name must not be empty", "name")
    key = StoredKey(new_id(role), role, None)
    plain = _new_key(role)
    repository.add_key(key, hash_key(plain), name.strip())
    return IssuedKey(key.id, plain)


class KeyCache:
    """Recently seen keys (by hash) and their principals, so a hot path does not query SQL per request.
    Known keys live ``ttl_s`` seconds. Unknown keys are remembered for ``miss_ttl_s`` (short, so a key just
    issued by another worker works within seconds), so repeating a wrong key costs no SQL lookup."""

    def __init__(self, ttl_s: float = 30.0, miss_ttl_s: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.miss_ttl_s = miss_ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def missed(self, key_hash: str) -> bool:
        """True when this key was looked up very recently and is unknown."""
        entry = self._entries.get(key_hash)
        return entry is not None and entry[1] is None and entry[0] >= time.monotonic()

    def put(self, key_hash: str, principal: Principal | None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        ttl_s = self.ttl_s if principal is not None else self.miss_ttl_s
        self._entries[key_hash] = (time.monotonic() + ttl_s, principal)


def known_principal(plain: str, admin_key: str | None, cache: KeyCache) -> Principal | None:
    """The principal when no storage is needed (the admin key, or a key seen recently), else None."""
    if admin_key and hmac.compare_digest(plain.encode(), admin_key.encode()):
        return Principal("admin", "admin")
    return cache.get(hash_key(plain))


def surely_unknown(plain: str, cache: KeyCache) -> bool:
    """A key that cannot be one we issued (wrong shape), or one found unknown moments ago: no SQL needed."""
    return _KEY_SHAPE.fullmatch(plain) is None or cache.missed(hash_key(plain))


_KEY_SHAPE = re.compile(r"gt_(merchant|app|adops)_[A-Za-z0-9_-]{32}")


def authenticate(
    repository: Repository, plain: str, admin_key: str | None, cache: KeyCache | None = None
) -> Principal | None:
    """The principal behind a bearer key, or None for an unknown key."""
    if admin_key and hmac.compare_digest(plain.encode(), admin_key.encode()):
        return Principal("admin", "admin")
    key_hash = hash_key(plain)
    if cache is not None and (known := cache.get(key_hash)) is not None:
        return known
    row = repository.find_key(key_hash)
    principal = Principal(row.role, row.id, row.merchant_id) if row is not None and row.role in ROLES else None
    if cache is not None:
        cache.put(key_hash, principal)
    return principal
