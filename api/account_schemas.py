"""Accounts and keys on the wire: merchants, app and ad-ops keys, and a key's life (list, rotate, revoke)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from geotarget.catalog.keys import DEFAULT_GRACE_S

ExpiresAt = Annotated[
    AwareDatetime | None,
    Field(description="When the key stops working (ISO 8601 with a zone); null: until revoked."),
]


class MerchantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    timezone: str | None = Field(default=None, max_length=64, examples=["Europe/Lisbon"])
    cap_per_device_per_day: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Most impressions of all its offers per device per day."
    )
    expires_at: ExpiresAt = None


class MerchantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    cap_per_device_per_day: int | None = Field(default=None, ge=1, le=1_000_000, description="null: no cap")


class MerchantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    timezone: str | None
    cap_per_device_per_day: int | None
    created_at: datetime | None = None


class MerchantsOut(BaseModel):
    merchants: list[MerchantOut]


class AppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Literal["app", "adops", "exchange"] = "app"
    expires_at: ExpiresAt = None
    debug: bool = Field(default=False, description="an app key that may also ask GET /v1/explain (a dry run)")


class IssuedKeyOut(BaseModel):
    id: str
    api_key: str = Field(description="Shown once; only its hash is stored.")


class KeyOut(BaseModel):
    """A key as an admin sees it: never the key itself."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    role: str
    owner_id: str | None = Field(description="The merchant a merchant key belongs to; null for app and ad-ops keys.")
    name: str
    created_at: datetime
    last_used_at: datetime | None = Field(description="Accurate to about a minute.")
    expires_at: datetime | None
    revoked: bool


class KeysOut(BaseModel):
    keys: list[KeyOut]


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace_s: int = Field(
        default=DEFAULT_GRACE_S, ge=0, le=30 * 86_400, description="How long the old key keeps working; 0: not at all."
    )
    expires_at: ExpiresAt = None


class RotatedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str = Field(description="The key's id, unchanged by a rotation.")
    api_key: str = Field(description="The new key: shown once; only its hash is stored.")
    previous_valid_until: datetime
