"""Audiences as a merchant manages them, and their refresh: members found in the event store (DuckDB), written
to Redis under a new generation, then the generation goes live through the SQL change log (every worker's
catalog follows it).

Under ``k`` members an audience is suppressed: its size is not told, no members are published and it matches
nobody (so a rule narrow enough to single out a few people is useless for targeting them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from geotarget.audiences.model import Audience, Rule
from geotarget.catalog.accounts import new_id
from geotarget.catalog.model import Fence
from geotarget.catalog.snapshot import Catalog
from geotarget.errors import InvalidInput
from geotarget.store.repository import Repository

log = logging.getLogger(__name__)
MembersQuery = Callable[[Rule, Mapping[str, str], datetime, Collection[str]], list[str]]


class Memberships(Protocol):
    def publish(self, audience_id: str, generation: int, device_keys: Sequence[str], ttl_s: int) -> int: ...

    def lead(self, seconds: int) -> bool:
        """True for the one process that refreshes audiences on schedule for the next ``seconds``."""
        ...

    def close(self) -> None: ...


class AudienceService:
    def __init__(
        self,
        repository: Repository,
        catalog: Catalog,
        members: MembersQuery,
        memberships: Memberships,
        notify: Callable[[], None],
        k: int,
        ttl_s: int,
    ) -> None:
        self.repository = repository
        self.store = repository.audiences
        self.catalog = catalog
        self.members = members
        self.memberships = memberships
        self.notify = notify
        self.k = k
        self.ttl_s = ttl_s

    def create(self, merchant_id: str, name: str, rule: Rule, now: datetime | None = None) -> Audience:
        """Stored, then refreshed at once, so the answer tells its size."""
        self._check_fences(merchant_id, rule)
        at = now or datetime.now(UTC)
        made = Audience(new_id("aud"), merchant_id, name, rule, None, True, 0, None, at)
        return self.refresh(self.store.add(made), at)

    def listed(self, merchant_id: str) -> list[Audience]:
        return self.store.owned(merchant_id)

    def get(self, merchant_id: str, audience_id: str) -> Audience:
        return self.store.one(merchant_id, audience_id)

    def delete(self, merchant_id: str, audience_id: str) -> None:
        """Refused (``Conflict``) while an offer targets it; its memberships run out with their TTL."""
        self.store.one(merchant_id, audience_id)
        users = [o.id for o in self.repository.offers(merchant_id) if audience_id in o.targeting.audience_ids]
        self.store.delete(merchant_id, audience_id, users)
        self._changed()

    def refresh_one(self, merchant_id: str, audience_id: str, now: datetime | None = None) -> Audience:
        return self.refresh(self.store.one(merchant_id, audience_id), now)

    def refresh(self, audience: Audience, now: datetime | None = None) -> Audience:
        at = now or datetime.now(UTC)
        zones = {f.id: f.timezone for f in self._fences(audience)}
        found = self.members(audience.rule, zones, at, self.repository.erased_devices())
        if len(found) < self.k:
            done = self.store.refreshed(audience.id, None, audience.generation, at)
        else:
            generation = audience.generation + 1
            self.memberships.publish(audience.id, generation, found, self.ttl_s)
            done = self.store.refreshed(audience.id, len(found), generation, at)
        self._changed()
        return done

    def refresh_all(self, merchant_id: str | None = None, now: datetime | None = None) -> list[Audience]:
        """Every audience (of one merchant, when given); one that fails is logged and the rest go on."""
        done = []
        for audience in self.store.owned(merchant_id):
            try:
                done.append(self.refresh(audience, now))
            except Exception:
                log.exception("could not refresh audience %s", audience.id)
        return done

    def refresh_if_leading(self, every_s: int) -> list[Audience]:
        """The scheduled refresh: only the process that takes the lead for this period refreshes."""
        return self.refresh_all() if self.memberships.lead(every_s) else []

    def _fences(self, audience: Audience) -> list[Fence]:
        rule = audience.rule
        if rule.geofence_ids is not None:
            return self.repository.fences(audience.merchant_id, rule.geofence_ids)
        tags = set(rule.tags or ())
        return [f for f in self.repository.fences(audience.merchant_id) if tags & set(f.tags)]

    def _check_fences(self, merchant_id: str, rule: Rule) -> None:
        if rule.geofence_ids is None:
            return
        owned = {f.id for f in self.repository.fences(merchant_id, rule.geofence_ids)}
        for i, fence_id in enumerate(rule.geofence_ids):
            if fence_id not in owned:
                raise InvalidInput(f"no geofence {fence_id!r} of yours", f"rule.geofence_ids[{i}]", "unknown_fence")

    def _changed(self) -> None:
        self.catalog.sync(self.repository)
        self.notify()
