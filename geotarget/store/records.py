"""The one mapping between SQL rows and domain objects, both ways. It copies by field name, so a field declared
in ``geotarget.catalog.model`` and given a column in ``models.py`` needs nothing here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from functools import cache
from typing import Any, get_args

from pydantic import BaseModel
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
    offer = Offer.model_validate(_values(row, Offer.model_fields))
    _share_field_names(offer)
    return offer


def offer_from_json(raw: bytes) -> Offer:
    """An offer kept as its JSON (a catalog snapshot)."""
    offer = Offer.model_validate_json(raw)
    _share_field_names(offer)
    return offer


_NAME_SETS: dict[frozenset[str], set[str]] = {}
_LAST_NAMES: dict[type[BaseModel], set[str]] = {}  # per model class, the set last shared: almost always the one


def _share_field_names(model: BaseModel) -> None:
    """A model read from a row is given every field, so each would keep its own copy of the same set of names
    (pydantic's ``model_fields_set``): 2.3 KB of an offer's 4.3, for 200,000 offers 460 MB in every worker.
    Models alike share one set instead (nested ones too, but not those in tuples: variants are few). Safe because
    offers are frozen: pydantic changes the set only on assignment, which a frozen model refuses, or on a copy
    (``model_copy``), which copies it first."""
    names = model.__pydantic_fields_set__
    shared = _LAST_NAMES.get(type(model))
    if shared is None or shared != names:
        shared = _LAST_NAMES[type(model)] = _NAME_SETS.setdefault(frozenset(names), names)
    object.__setattr__(model, "__pydantic_fields_set__", shared)
    for name in _nested_fields(type(model)):
        value = model.__dict__.get(name)
        if value is not None and hasattr(value, "__pydantic_fields_set__"):  # isinstance of a model costs more
            _share_field_names(value)


@cache
def _nested_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``cls`` that may hold a model (looked at by name: most of an offer's fields never do)."""
    return tuple(name for name, field in cls.model_fields.items() if _mentions_model(field.annotation))


def _mentions_model(annotation: object) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_mentions_model(a) for a in get_args(annotation))


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
