"""Offers as a merchant manages them: create, read, patch, delete, scoped to the merchant.

An offer's fences must be the merchant's own. Its time zone (for cap windows) is given, or the merchant's, or its
first fence's. The fields and their rules are declared once, in ``geotarget.catalog.model``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from geotarget.catalog.accounts import new_id
from geotarget.catalog.model import OFFER_FIELDS, Fence, Merchant, Offer, OfferFields
from geotarget.catalog.snapshot import Catalog
from geotarget.catalog.timezones import check_timezone
from geotarget.errors import InvalidInput, NotFound
from geotarget.store.repository import Repository


class OfferService:
    def __init__(self, repository: Repository, catalog: Catalog, notify: Callable[[], None]) -> None:
        self.repository = repository
        self.catalog = catalog
        self.notify = notify

    def create(self, merchant_id: str, fields: OfferFields) -> Offer:
        now = datetime.now(UTC)
        stamp = {"id": new_id("off"), "merchant_id": merchant_id, "created_at": now, "updated_at": now}
        return self._save(merchant_id, fields, stamp, None)

    def update(self, merchant_id: str, offer_id: str, patch: dict[str, Any]) -> Offer:
        """Any subset of the fields; the merged offer is validated as a whole."""
        current = self.get(merchant_id, offer_id)
        if not patch:
            return current  # nothing to change: no new version
        merged = OfferFields.model_validate({**current.model_dump(include=set(OFFER_FIELDS)), **patch})
        stamp = {"id": offer_id, "merchant_id": merchant_id, "created_at": current.created_at}
        return self._save(merchant_id, merged, stamp | {"updated_at": datetime.now(UTC)}, current.version)

    def delete(self, merchant_id: str, offer_id: str) -> None:
        self.repository.delete_offer(merchant_id, offer_id)
        self._changed()

    def get(self, merchant_id: str, offer_id: str) -> Offer:
        offer = self.repository.offer(merchant_id, offer_id)
        if offer is None:
            raise NotFound(f"no offer {offer_id!r}", "id")
        return offer

    def list(self, merchant_id: str) -> list[Offer]:
        return self.repository.offers(merchant_id)

    def _save(self, merchant_id: str, fields: OfferFields, stamp: dict[str, Any], seen_version: int | None) -> Offer:
        fence_ids = tuple(dict.fromkeys(fields.geofence_ids))
        if fields.timezone is not None:
            check_timezone(fields.timezone, "timezone")
        self._check_audiences(merchant_id, fields)

        def resolve(merchant: Merchant, fences: Mapping[str, Fence]) -> Offer:
            for i, fence_id in enumerate(fence_ids):
                if fence_id not in fences:
                    raise InvalidInput(f"no geofence {fence_id!r} of yours", f"geofence_ids[{i}]", code="unknown_fence")
                if fences[fence_id].audience_only:
                    raise InvalidInput(
                        f"geofence {fence_id!r} only feeds audiences (purpose 'audience'): offers are not served there",
                        f"geofence_ids[{i}]",
                        code="audience_fence",
                    )
            zone = fields.timezone or merchant.timezone or (fences[fence_ids[0]].timezone if fence_ids else None)
            if zone is None:
                raise InvalidInput(
                    "give the offer a timezone: it names no fence by id, and the merchant has no time zone", "timezone"
                )
            tags = tuple(dict.fromkeys(fields.geofence_tags))
            values = fields.model_dump(include=set(OFFER_FIELDS))
            values |= {"geofence_ids": fence_ids, "geofence_tags": tags, "timezone": zone}
            return Offer.model_validate(values | stamp)

        offer = self.repository.save_offer(merchant_id, fence_ids, resolve, seen_version)
        self._changed()
        return offer

    def _check_audiences(self, merchant_id: str, fields: OfferFields) -> None:
        """Audiences an offer targets, listed or in ``targeting.expr``, are the merchant's own."""
        chosen = fields.targeting.audiences
        listed = [] if chosen is None else [
            (f"targeting.audiences.{side}[{i}]", audience_id)
            for side in ("include", "exclude")
            for i, audience_id in enumerate(getattr(chosen, side))
        ]  # fmt: skip
        wanted = [*listed, *fields.targeting.expr_audiences]
        if not wanted:
            return
        owned = {a.id for a in self.repository.audiences.owned(merchant_id, [a for _, a in wanted])}
        for field, audience_id in wanted:
            if audience_id not in owned:
                raise InvalidInput(f"no audience {audience_id!r} of yours", field, code="unknown_audience")

    def _changed(self) -> None:
        self.catalog.sync(self.repository)
        self.notify()
