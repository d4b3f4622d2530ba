"""Webhook subscriptions as their owners manage them: subscribe (the secret is shown once), list, delete, read
deliveries, and send a signed test event now. Tenant rules live here: an app key owns its subscriptions and
hears its own devices; a merchant key owns its own and may name only its own fences."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import orjson

from geotarget.catalog.model import iso_utc
from geotarget.errors import InvalidInput
from geotarget.triggers.delivering import Sender
from geotarget.triggers.probes import Probes
from geotarget.triggers.webhooks import (
    Delivery,
    EventType,
    OwnerKind,
    Subscription,
    TargetError,
    event_id,
    parse_target,
    signed_headers,
)

MAX_PER_OWNER = 50


@dataclass(frozen=True)
class Owner:
    kind: OwnerKind
    id: str  # the app key's id or the merchant's id


@dataclass(frozen=True)
class TestResult:
    delivered: bool
    status: int | None
    error: str | None
    latency_ms: float
    event: dict[str, object]


class SubscriptionRepo(Protocol):
    def add(self, subscription: Subscription) -> Subscription: ...
    def owned(self, owner: OwnerKind, owner_id: str) -> list[Subscription]: ...
    def one(self, owner: OwnerKind, owner_id: str, subscription_id: str) -> Subscription: ...
    def delete(self, owner: OwnerKind, owner_id: str, subscription_id: str) -> None: ...


class DeliveryList(Protocol):
    def listed(self, subscription_id: str, status: str | None, limit: int = 100) -> list[Delivery]: ...


class WebhookService:
    def __init__(
        self,
        repo: SubscriptionRepo,
        deliveries: DeliveryList,
        sender: Sender,
        check_address: Callable[[str], None],
        fence_merchant: Callable[[str], str | None],
        changed: Callable[[], None] = lambda: None,
        probes: Probes | None = None,
    ) -> None:
        self.repo = repo
        self.deliveries = deliveries
        self.sender = sender
        self.check_address = check_address  # raises TargetError when the url's host may not be reached
        self.fence_merchant = fence_merchant
        self.changed = changed  # this process's trigger worker reads subscriptions again (others within seconds)
        self.probes = probes or Probes()

    def subscribe(
        self, owner: Owner, url: str, events: Sequence[EventType], geofence_ids: Sequence[str] | None
    ) -> Subscription:
        try:
            parse_target(url)
            self.check_address(url)
        except TargetError as exc:
            raise InvalidInput(str(exc), "url", "bad_url") from None
        if geofence_ids is not None:
            self._check_fences(owner, geofence_ids)
        if len(self.repo.owned(owner.kind, owner.id)) >= MAX_PER_OWNER:
            raise InvalidInput(f"at most {MAX_PER_OWNER} webhooks per key or merchant", "url", "too_many")
        subscription = Subscription(
            id=f"whk_{secrets.token_hex(10)}",
            owner=owner.kind,
            owner_id=owner.id,
            url=url,
            events=tuple(dict.fromkeys(events)),
            secret=f"whsec_{secrets.token_urlsafe(32)}",
            geofence_ids=None if geofence_ids is None else tuple(dict.fromkeys(geofence_ids)),
        )
        made = self.repo.add(subscription)
        self.changed()
        return made

    def _check_fences(self, owner: Owner, geofence_ids: Sequence[str]) -> None:
        for i, fence_id in enumerate(geofence_ids):
            merchant = self.fence_merchant(fence_id)
            if merchant is None or (owner.kind == "merchant" and merchant != owner.id):
                raise InvalidInput(f"no geofence {fence_id!r}", f"geofence_ids.{i}", "unknown_fence")

    def listed(self, owner: Owner) -> list[Subscription]:
        return self.repo.owned(owner.kind, owner.id)

    def delete(self, owner: Owner, subscription_id: str) -> None:
        self.repo.delete(owner.kind, owner.id, subscription_id)
        self.changed()

    def deliveries_of(self, owner: Owner, subscription_id: str, status: str | None, limit: int) -> list[Delivery]:
        self.repo.one(owner.kind, owner.id, subscription_id)  # NotFound for anyone else's
        return self.deliveries.listed(subscription_id, status, limit)

    def test_soon(self, owner: Owner, subscription_id: str) -> Future[TestResult]:
        """``test`` on a probe thread (never a request thread), one at a time per owner: ``TooManyAtOnce`` else."""
        return self.probes.submit(f"{owner.kind}:{owner.id}", lambda: self.test(owner, subscription_id))

    def test(self, owner: Owner, subscription_id: str) -> TestResult:
        """Send a signed ``test`` event now and say what came back (it is not queued, retried or listed)."""
        sub = self.repo.one(owner.kind, owner.id, subscription_id)
        now = datetime.now(UTC)
        event: dict[str, object] = {"id": event_id("test", sub.id, now.isoformat()), "type": "test", "at": iso_utc(now)}
        body = orjson.dumps(event)
        sent = self.sender.send(
            sub.url, signed_headers(sub.secret, str(event["id"]), "test", int(now.timestamp()), body), body
        )
        return TestResult(sent.delivered, sent.status, sent.error or None, round(sent.latency_ms, 1), event)
