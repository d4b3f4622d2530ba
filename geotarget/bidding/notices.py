"""Win, billing and loss notice URLs, signed so only the exchange we answered can settle a bid.

Each URL names the bid, the notice kind and our bid price, and carries an HMAC of the three: a notice for
another bid, another kind (a loss made from a win URL) or a higher price is refused. The exchange fills in
``${AUCTION_PRICE}`` (the clearing price, CPM) and, in loss URLs, ``${AUCTION_LOSS}`` (its loss reason code).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Literal
from urllib.parse import urlencode

NoticeKind = Literal["win", "bill", "loss"]
NOTICE_KINDS: tuple[NoticeKind, ...] = ("win", "bill", "loss")
AUCTION_PRICE = "${AUCTION_PRICE}"
AUCTION_LOSS = "${AUCTION_LOSS}"


class InvalidNotice(ValueError):
    """A notice whose signature does not match: not ours, or altered."""


def notice_key(secret: str) -> bytes:
    """The notices' own key, derived from the deployment's secret (never the secret itself)."""
    return hmac.new(secret.encode(), b"openrtb-notices", hashlib.sha256).digest()


def signature(key: bytes, kind: NoticeKind, bid_id: str, bid_price: str) -> str:
    return hmac.new(key, f"{kind}:{bid_id}:{bid_price}".encode(), hashlib.sha256).hexdigest()[:32]


def notice_url(base_url: str, key: bytes, kind: NoticeKind, bid_id: str, bid_price: float) -> str:
    """``base_url`` is where exchanges reach geotarget (``GEOTARGET_PUBLIC_URL``, else the request's own)."""
    price = f"{bid_price:.6f}".rstrip("0").rstrip(".")  # never an exponent: the route's pattern for bp
    query = urlencode({"bid": bid_id, "bp": price, "sig": signature(key, kind, bid_id, price)})
    macros = f"&price={AUCTION_PRICE}" + (f"&reason={AUCTION_LOSS}" if kind == "loss" else "")
    return f"{base_url.rstrip('/')}/v1/openrtb2/{kind}?{query}{macros}"


def verify(key: bytes, kind: NoticeKind, bid_id: str, bid_price: str, sig: str) -> float:
    """The bid's price, once the signature is checked."""
    if not hmac.compare_digest(signature(key, kind, bid_id, bid_price).encode(), sig.encode()):
        raise InvalidNotice("the notice's signature does not match its bid")
    return float(bid_price)


def clearing_price(text: str | None, bid_price: float) -> float:
    """The price the exchange says we paid, CPM. A macro the exchange left unfilled (or no price) means our bid
    price; a price above our bid is cut to it (we never pay more than we bid), a malformed one is refused."""
    if text is None or text in ("", AUCTION_PRICE):
        return bid_price
    try:
        price = float(text)
    except ValueError:
        raise ValueError("price must be a number (the exchange's ${AUCTION_PRICE})") from None
    if not math.isfinite(price) or price < 0:
        raise ValueError("price must be a finite number >= 0")
    return min(price, bid_price)
