"""The one mapping between SQL rows and domain objects, both ways. It copies by field name, so a field declared
in ``geotarget.catalog.model`` and given a column in ``models.py`` needs nothing here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from sqlalchemy import Row

from geotarget.catalog.model import Fence, Merchant, Offer, as_utc
from geotarget.store import models

_FENCE_FIELDS = tuple(f.name for f in fields(Fence))
_MERCHANT_FIELDS = tuple(f.name for f in fields(Merchant))


def merchant_of(row: models.Merchant) -> Merchant:
    values = {name: getattr(row, name) for name in _MERCHANT_FIELDS}
    if values.get("created_at") is not None:
        values["created_at"] = as_utc(values["created_at"])  # SQLite hands it back without its zone
    return Merchant(**values)


def fence_of(row: models.Geofence | Row[Any]) -> Fence:
    values = _values(row, _FENCE_FIELDS)
    values["tags"] = tuple(values["tags"] or ())
    values["properties"] = dict(values["properties"] or {})
    return Fence(**values)


def fence_values(fence: Fence) -> dict[str, Any]:
    values = {name: getattr(fence, name) for name in _FENCE_FIELDS}
    values["tags"] = list(fence.tags)
    return values


def offer_of(row: models.Offer | Row[Any]) -> Offer:
    return Offer.model_validate(_values(row, Offer.model_fields))


def _values(row: object, names: Iterable[str]) -> dict[str, Any]:
    """A row's fields by name: a plain row (a worker's start reads every fence and offer so) by key, much
    cheaper than an ORM object's by attribute."""
    if isinstance(row, Row):
        mapping = row._mapping
        return {name: mapping[name] for name in names}
    return {name: getattr(row, name) for name in names}


def offer_values(offer: Offer) -> dict[str, Any]:
    """Column values: nested parts as the JSON they are stored as, timestamps as datetimes."""
    values = offer.model_dump(mode="python")
    values["geofence_ids"] = list(offer.geofence_ids)
    values["geofence_tags"] = list(offer.geofence_tags)
    values["goal"] = None if offer.goal is None else offer.goal.model_dump(mode="json")  # its days as text
    return values
