"""Redemption codes, and redeeming one at the merchant's till (``POST /v1/redemptions``).

An offer's ``redemption`` is a static code (the same for everyone, redeemable any number of times) or unique:
then every impression carries its own code, 12 symbols of Crockford's base32 drawn from the OS's CSPRNG
(60 bits: one code says nothing of another, and a repeat among a million is about as likely as 4 in 10 million).
A unique code is recorded in SQL (code as primary key) by the event consumer, so it outlives Redis, and redeeming
it is one guarded update: the second time is a conflict.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from geotarget.catalog.model import Offer
from geotarget.errors import Conflict, NotFound

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
LENGTH = 12
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    """A unique-per-impression code, shown grouped in fours.

    >>> code = new_code(); len(code), code[4], code[9]
    (14, '-', '-')
    """
    bits = secrets.randbits(5 * LENGTH)
    symbols = "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in range(LENGTH))
    return f"{symbols[:4]}-{symbols[4:8]}-{symbols[8:]}"


def normalized(code: str) -> str:
    """As typed at a till: case, spaces and dashes do not matter; O reads as 0 and I or L as 1.

    >>> normalized(" abcd-efgh-jkmo ")
    'ABCDEFGHJKM0'
    """
    return "".join(code.split()).replace("-", "").upper().translate(_READ_AS)


@dataclass(frozen=True)
class IssuedCode:
    code: str  # normalized
    offer_id: str
    merchant_id: str
    impression_id: str
    issued_at: datetime
    redeemed_at: datetime | None = None


class CodeStore(Protocol):
    def redeem(self, code: str, merchant_id: str, at: datetime) -> IssuedCode:
        """Mark the merchant's unique code redeemed; ``NotFound`` (unknown or another merchant's), ``Conflict``
        (redeemed before)."""
        ...


@dataclass(frozen=True)
class Redeemed:
    offer: Offer
    impression_id: str | None  # None for a static code
    code: str
    at: datetime


def redeem(store: CodeStore, offers: list[Offer], merchant_id: str, code: str, at: datetime) -> Redeemed:
    """A unique code of the merchant's, else one of its offers' static codes."""
    wanted = normalized(code)
    try:
        issued = store.redeem(wanted, merchant_id, at)
    except NotFound:
        for offer in offers:
            if offer.redemption is not None and offer.redemption.code and normalized(offer.redemption.code) == wanted:
                return Redeemed(offer, None, offer.redemption.code, at)
        raise
    except Conflict:
        raise Conflict(f"code {code!r} was already redeemed", "code") from None
    found = next((o for o in offers if o.id == issued.offer_id), None)
    if found is None:
        raise NotFound(f"code {code!r} belongs to an offer that was deleted", "code")
    return Redeemed(found, issued.impression_id, code, at)
