"""Merchants, apps and their API keys. Keys are random, shown once, and stored only as SHA-256 hashes (they carry
192 bits of entropy, so a fast hash is enough and lookups stay O(1)); ``keys`` checks, rotates and revokes them."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from geotarget.catalog.model import Merchant
from geotarget.catalog.timezones import check_timezone
from geotarget.errors import InvalidInput
from geotarget.store.api_keys import StoredKey
from geotarget.store.repository import Repository

Role = Literal["admin", "merchant", "app", "adops", "exchange"]
ROLES: tuple[Role, ...] = ("admin", "merchant", "app", "adops", "exchange")
UNOWNED_ROLES: tuple[Role, ...] = ("app", "adops", "exchange")  # keys made by POST /v1/apps


@dataclass(frozen=True)
class Principal:
    role: Role
    key_id: str
    merchant_id: str | None = None
    debug: bool = False  # an app key created with debug: true (it may ask the decision explainer)


@dataclass(frozen=True)
class IssuedKey:
    id: str
    api_key: str


def new_id(prefix: str) -> str:
    """Short, URL-safe, prefixed ids (``fen_3kq…``) that say what they name in logs and URLs."""
    return f"{prefix}_{secrets.token_hex(10)}"


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def new_key(role: str) -> str:
    return f"gt_{role}_{secrets.token_urlsafe(24)}"


def create_merchant(
    repository: Repository,
    name: str,
    timezone: str | None = None,
    cap_per_device_per_day: int | None = None,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """A merchant and its first key (``expires_at``: the key's end, if it has one)."""
    check_expiry(expires_at)
    if timezone is not None:
        check_timezone(timezone)
    if not name.strip():
        raise InvalidInput("name must not be empty", "name")
    merchant = Merchant(new_id("mer"), name.strip(), timezone, cap_per_device_per_day)
    plain = new_key("merchant")
    key = StoredKey(new_id("key"), "merchant", merchant.id)
    repository.add_merchant(merchant, key, hash_key(plain), merchant.name, expires_at)
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
    plain = new_key("merchant")
    repository.keys.add(StoredKey(new_id("key"), "merchant", merchant_id), hash_key(plain), "issued")
    return plain


def create_app_key(
    repository: Repository, name: str, role: Role = "app", expires_at: datetime | None = None, debug: bool = False
) -> IssuedKey:
    check_expiry(expires_at)
    if role not in UNOWNED_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(UNOWNED_ROLES)}", "role")
    if not name.strip():
        raise InvalidInput("name must not be empty", "name")
    if debug and role != "app":
        raise InvalidInput("only an app key may be a debug key", "debug")
    key = StoredKey(new_id(role), role, None, debug)
    plain = new_key(role)
    repository.keys.add(key, hash_key(plain), name.strip(), expires_at)
    return IssuedKey(key.id, plain)


def check_expiry(expires_at: datetime | None, field: str = "expires_at") -> None:
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInput(f"{field} must be in the future", field)
