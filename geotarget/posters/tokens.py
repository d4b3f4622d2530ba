"""The token in a poster's link: it names an offer and a store (fence) and is signed, so a link cannot be forged,
altered or guessed from another (``/o/<token>``). It holds ids only: nothing secret, nothing about a person."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

_PURPOSE = b"geotarget poster link v1"
_MAC_BYTES = 12  # 96 bits: a forger's chance per try is 2^-96


@dataclass(frozen=True)
class PosterRef:
    offer_id: str
    fence_id: str


def _key(secret: str) -> bytes:
    """A key of its own, derived from the server's secret: a poster token never doubles as anything else."""
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, ref: PosterRef) -> str:
    """
    >>> token = sign("s", PosterRef("off_1", "fen_2"))
    >>> read("s", token)
    PosterRef(offer_id='off_1', fence_id='fen_2')
    >>> read("other secret", token) is None
    True
    """
    payload = f"{ref.offer_id}\n{ref.fence_id}".encode()
    mac = hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def read(secret: str, token: str) -> PosterRef | None:
    """The offer and store a genuine token names; None for anything else (forged, altered, truncated, junk)."""
    if len(token) > 400 or token.count(".") != 1:
        return None
    body, mac = token.split(".")
    try:
        payload, given = _unb64(body), _unb64(mac)
    except (binascii.Error, ValueError):
        return None
    good = hmac.new(_key(secret), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(good, given):
        return None
    offer_id, _, fence_id = payload.decode(errors="replace").partition("\n")
    return PosterRef(offer_id, fence_id) if offer_id and fence_id else None
