"""Webhook subscriptions and what is sent to them: who hears which transition, the event body, its signature,
when a failed delivery is tried again, and which addresses a delivery may never reach.

No I/O here: the store keeps subscriptions (SQL) and deliveries (Redis); ``geotarget.store.transports`` sends.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

EventType = Literal["enter", "dwell", "exit", "push"]
EVENT_TYPES: tuple[EventType, ...] = ("enter", "dwell", "exit", "push")
OwnerKind = Literal["app", "merchant"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
BROKER_SCHEMES = ("nats", "mqtt", "amqp")
SCHEMES = ("http", "https", *BROKER_SCHEMES)
DEFAULT_PORTS = {"http": 80, "https": 443, "nats": 4222, "mqtt": 1883, "amqp": 5672}


@dataclass(frozen=True)
class Subscription:
    """An app key hears its own devices' transitions (with their ids); a merchant key its fences' (without)."""

    id: str
    owner: OwnerKind
    owner_id: str  # the app key's id, or the merchant's id
    url: str
    events: tuple[EventType, ...]
    secret: str
    geofence_ids: tuple[str, ...] | None = None  # None: every fence it may hear of
    created_at: datetime | None = None

    def hears(self, event_type: str, fence_id: str, fence_merchant: str, app: str) -> bool:
        if event_type not in self.events:
            return False
        if self.geofence_ids is not None and fence_id not in self.geofence_ids:
            return False
        return self.owner_id == (app if self.owner == "app" else fence_merchant)


@dataclass(frozen=True)
class Delivery:
    """One event for one subscription, as listed by ``GET /v1/webhooks/{id}/deliveries``."""

    id: str
    subscription_id: str
    event_id: str
    type: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    event: Mapping[str, object] = field(default_factory=dict)  # the body sent, without the device id
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    response_status: int | None = None
    error: str | None = None
    latency_ms: float | None = None


@dataclass(frozen=True)
class Queued:
    """One event for one webhook, to be queued (once per delivery id). ``event`` may hold the raw device id: it
    stays only in the pending body; the listed copy never has it."""

    delivery_id: str
    subscription_id: str
    event: Mapping[str, Any]
    device_key: str


@dataclass(frozen=True)
class Settled:
    """How one attempt of a delivery ended: ``delivered``, ``retry`` (at ``next_at``) or ``failed``."""

    pending: PendingDelivery
    outcome: str
    at: datetime
    next_at: datetime | None = None
    status: int | None = None
    error: str = ""
    latency_ms: float = 0.0


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery taken from the queue to be sent now: the exact body, as queued."""

    entry_id: str  # its place in the delivery stream
    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    body: bytes
    created_ms: int
    attempts: int
    device_key: str


@dataclass(frozen=True)
class Sent:
    """How one attempt went."""

    delivered: bool
    status: int | None = None  # the HTTP status, when one came back
    error: str = ""
    latency_ms: float = 0.0


def event_id(*parts: object) -> str:
    """Stable for the same transition (or push), so a transition handled twice is still one event to receivers."""
    return "evt_" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


def delivery_id(subscription_id: str, event: str) -> str:
    """One delivery per event and subscription: enqueueing it again changes nothing."""
    return "dlv_" + hashlib.sha256(f"{subscription_id}|{event}".encode()).hexdigest()[:24]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``Geotarget-Signature``: HMAC-SHA256 of ``"<timestamp>.<body>"`` with the subscription's secret."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def signed_headers(secret: str, event: str, event_type: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Geotarget-Event-Id": event,
        "Geotarget-Event-Type": event_type,
        "Geotarget-Timestamp": str(timestamp),
        "Geotarget-Signature": signature(secret, timestamp, body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now_s: float, tolerance_s: int = 300) -> bool:
    """What a receiver does (docs/triggers.md has it as a standalone example): the signature matches and the
    timestamp is recent, so a captured delivery cannot be replayed later."""
    try:
        timestamp = int(headers["Geotarget-Timestamp"])
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), headers.get("Geotarget-Signature", ""))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: the n-th retry waits ``base_s · 2^(n-1)`` (at most ``cap_s``), scaled by
    a random factor in [0.5, 1.0] so receivers that came back are not hit by every sender at once; after
    ``give_up_s`` since the event, the delivery is failed."""

    base_s: float = 10.0
    cap_s: float = 3_600.0
    give_up_s: float = 86_400.0

    def delay_s(self, attempts: int, rng: random.Random | None = None) -> float:
        """Wait before the next try, after ``attempts`` failed ones."""
        exponent = min(max(attempts - 1, 0), 30)
        ceiling = min(self.cap_s, self.base_s * 2**exponent)
        return float(ceiling * (0.5 + 0.5 * (rng or random).random()))

    def gives_up(self, created_s: float, next_try_s: float) -> bool:
        return next_try_s - created_s > self.give_up_s


class TargetError(ValueError):
    """A subscription URL that may not be used."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # http(s): the path and query; brokers: the subject, topic or exchange

    @property
    def broker(self) -> bool:
        return self.scheme in BROKER_SCHEMES


def parse_target(url: str) -> Target:
    """The parts of a subscription URL, or ``TargetError`` naming what is wrong."""
    if len(url) > 2000:
        raise TargetError("the url is longer than 2,000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError as exc:
        raise TargetError(f"the url cannot be read: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise TargetError(f"the url must start with one of {', '.join(s + '://' for s in SCHEMES)}")
    if not hostname:
        raise TargetError("the url has no host")
    check_host(hostname)
    if scheme in BROKER_SCHEMES:
        path = parts.path.strip("/")
        if not path:
            noun = {"nats": "subject", "mqtt": "topic", "amqp": "exchange"}[scheme]
            raise TargetError(f"a {scheme}:// url names its {noun} as the path, e.g. {scheme}://host/geotarget")
    else:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, hostname, port or DEFAULT_PORTS[scheme], path)


def masked_url(url: str) -> str:
    """The url as shown back to its owner: a password in it is never repeated.

    >>> masked_url("amqp://shop:s3cret@broker.example.com/events")
    'amqp://shop:****@broker.example.com/events'
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc or ":" not in parts.netloc.rsplit("@", 1)[0]:
        return url
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    return parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:****@{hostport}").geturl()


def check_host(host: str) -> None:
    """A host is an IP address or a DNS name of dot-separated labels (1–63 letters, digits or hyphens, in
    IDNA form, 253 at most in all); anything else is refused here rather than by a resolver's exception."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise TargetError("the url's host is not a valid name") from None
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > 253 or any(not _LABEL.fullmatch(label) for label in labels):
        raise TargetError("the url's host is not a valid name: labels of 1 to 63 letters, digits or hyphens")


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix: the IPv4 address is the last 32 bits
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # a network's own translator: private by definition


def refusal(address: str, allow_private: bool) -> str | None:
    """Why a delivery may not go to this IP address (server-side request forgery), or None when it may. The
    reason names the kind of address only: it is shown to the subscriber, who must not learn our DNS answers."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return "not a routable address"
    if allow_private:
        return None
    local = isinstance(ip, ipaddress.IPv6Address) and (ip.is_site_local or ip in _LOCAL_NAT64)
    if ip.is_loopback or ip.is_private or ip.is_link_local or local or not ip.is_global:
        return "a loopback, private or link-local address (GEOTARGET_WEBHOOK_ALLOW_PRIVATE allows it)"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and routes to (mapped, 6to4, NAT64, the old compatible form)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (int(ip) >> 32 == 0 and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
