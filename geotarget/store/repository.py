"""The SQL catalogue behind one small interface: merchants, keys, fences, offers, the change log, notes and
erasures, read and written as domain objects (``records`` maps them).

Tenant isolation is a property of the signatures: every read that could cross tenants takes an ``owner``, a
merchant id or the explicit ``EVERYONE`` (ad ops, the catalog snapshot), so forgetting the merchant does not
type-check. Every write is one transaction: it commits whole or leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar

from sqlalchemy import Row, Select, String, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from geofences.index import Cover
from geotarget.catalog.model import Fence, Merchant, Offer, as_utc
from geotarget.errors import Conflict, NotFound
from geotarget.store import models
from geotarget.store.api_keys import KeyTable, StoredKey, key_row
from geotarget.store.audiences import AudienceStore
from geotarget.store.covers import CoverTable, cover_values, forget_reaches
from geotarget.store.database import transaction
from geotarget.store.records import fence_of, fence_values, merchant_of, offer_of, offer_values


class Everyone:
    """The owner of every record: for readers that see all tenants on purpose."""

    def __repr__(self) -> str:
        return "EVERYONE"


EVERYONE: Final = Everyone()
Owner = str | Everyone
_IDS_PER_QUERY = 10_000
_Row = TypeVar("_Row", models.Geofence, models.Offer)


@dataclass(frozen=True)
class Change:
    seq: int
    kind: Literal["fence", "offer", "merchant", "audience", "key", "webhook"]
    entity_id: str
    version: int | None  # None: deleted (a merchant change carries none)
    at: datetime | None = None  # when it was committed


OfferResolver = Callable[[Merchant, Mapping[str, Fence]], Offer]


class Repository:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self.audiences = AudienceStore(factory)
        self.keys = KeyTable(factory)
        self.covers = CoverTable(factory)

    # -- merchants and keys -----------------------------------------------------------------------------------

    def add_merchant(
        self, merchant: Merchant, key: StoredKey, key_hash: str, key_name: str, expires_at: datetime | None = None
    ) -> None:
        """The merchant and its first key, together."""
        with transaction(self._factory) as session:
            session.add(models.Merchant(**vars(merchant) | {"created_at": merchant.created_at or _now()}))
            session.flush()  # the merchant row must exist before its key row references it
            session.add(key_row(key, key_hash, key_name, expires_at))

    def merchant(self, owner: Owner, merchant_id: str) -> Merchant | None:
        with self._factory() as session:
            row = session.get(models.Merchant, merchant_id)
            return merchant_of(row) if row is not None and _sees(owner, row.id) else None

    def merchants(self, owner: Owner, ids: Sequence[str] | None = None) -> list[Merchant]:
        query = _owned(select(models.Merchant), models.Merchant.id, owner)
        if ids is not None:
            query = query.where(models.Merchant.id.in_(sorted(set(ids))))
        with self._factory() as session:
            rows = session.scalars(query.order_by(models.Merchant.name, models.Merchant.id)).all()
            return [merchant_of(r) for r in rows]

    def merchant_named(self, name: str) -> Merchant | None:
        with self._factory() as session:
            row = session.scalars(select(models.Merchant).where(models.Merchant.name == name).limit(1)).first()
            return None if row is None else merchant_of(row)

    def update_merchant(self, merchant_id: str, values: Mapping[str, Any]) -> Merchant:
        with transaction(self._factory) as session:
            row = session.get(models.Merchant, merchant_id)
            if row is None:
                raise NotFound(f"no merchant {merchant_id!r}", "id")
            for name, value in values.items():
                setattr(row, name, value)
            session.flush()
            _log(session, "merchant", merchant_id, None)  # workers reload the merchant's caps
            return merchant_of(row)

    # -- fences -----------------------------------------------------------------------------------------------

    def add_fences(
        self, merchant_id: str, fences: Sequence[Fence], covers: Sequence[Cover], max_total: int | None = None
    ) -> list[Fence]:
        """Many fences, their covers and change records in one flush (a 5,000-fence bulk is one round of
        inserts); all or none of them when the merchant would then hold more than ``max_total`` (``Conflict``,
        code ``quota``)."""
        with transaction(self._factory) as session:
            session.get(models.Merchant, merchant_id, with_for_update=True)  # one quota check at a time
            _require_merchant(session, merchant_id)
            if max_total is not None:
                held = session.scalar(
                    select(func.count()).select_from(models.Geofence).where(models.Geofence.merchant_id == merchant_id)
                )
                if (held or 0) + len(fences) > max_total:
                    left = max(0, max_total - (held or 0))
                    raise Conflict(
                        f"a merchant may hold at most {max_total:,} geofences (GEOTARGET_MAX_FENCES_PER_MERCHANT);"
                        f" you hold {held:,}, so {left:,} more fit and this request adds {len(fences):,}",
                        None,
                        code="quota",
                    )
            _refuse_taken_external_ids(session, merchant_id, {f.external_id: None for f in fences})
            owned = [replace(f, merchant_id=merchant_id) for f in fences]
            if owned:  # Core inserts, one statement per table: ORM objects cost more than the database here
                session.execute(insert(models.Geofence), [fence_values(f) for f in owned])
                covered = zip(owned, covers, strict=True)
                session.execute(insert(models.FenceCover), [cover_values(f.id, f.version, c) for f, c in covered])
                changes = [{"kind": "fence", "entity_id": f.id, "version": f.version} for f in owned]
                session.execute(insert(models.Change), changes)
            return owned

    def fences_by_external_id(self, merchant_id: str, external_ids: Sequence[str]) -> dict[str, str]:
        """External id -> fence id, for those of ``external_ids`` the merchant has stored."""
        g = models.Geofence
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(external_ids))
        with self._factory() as session:
            for start in range(0, len(unique), 1_000):
                part = unique[start : start + 1_000]
                query = select(g.external_id, g.id).where(g.merchant_id == merchant_id, g.external_id.in_(part))
                found.update({str(e): i for e, i in session.execute(query)})
        return found

    def fence(self, owner: Owner, fence_id: str) -> Fence | None:
        found = self.fences(owner, [fence_id])
        return found[0] if found else None

    def fences(self, owner: Owner, ids: Sequence[str] | None = None) -> list[Fence]:
        """The owner's fences (those of ``ids`` only, when given), oldest first."""
        return [fence_of(r) for r in self._listed(models.Geofence, owner, ids)]

    def fence_sample(self, merchant_id: str, most: int) -> list[tuple[str, str]]:
        """(id, time zone) of at most ``most`` of the merchant's fences, picked at random (all when it has no more):
        what a new fence's placement is weighed against, without reading a national chain's million fences."""
        g = models.Geofence
        query = select(g.id, g.timezone).where(g.merchant_id == merchant_id).order_by(func.random()).limit(most)
        with self._factory() as session:
            return [(fence_id, zone) for fence_id, zone in session.execute(query)]

    def replace_fence(self, fence: Fence, cover: Cover, seen_version: int) -> Fence:
        """Store a new state of ``fence`` and its cover unless someone changed it since ``seen_version``
        (``Conflict``)."""
        with transaction(self._factory) as session:
            row = _one(session, models.Geofence, fence.merchant_id, fence.id, "geofence")
            if row.version != seen_version:
                raise Conflict(f"geofence {fence.id!r} changed while this patch was checked; send it again", "id")
            _refuse_taken_external_ids(session, fence.merchant_id, {fence.external_id: fence.id})
            values = fence_values(fence) | {"version": row.version + 1, "created_at": row.created_at}
            stored = fence_of(_write(session, row, values, "fence"))
            session.merge(models.FenceCover(**cover_values(stored.id, stored.version, cover)))
            forget_reaches(session, stored.id)
            return stored

    def delete_fence(self, merchant_id: str, fence_id: str) -> None:
        """The fence goes; the merchant's offers stop pointing at it."""
        with transaction(self._factory) as session:
            row = _one(session, models.Geofence, merchant_id, fence_id, "geofence")
            for offer in _naming(session, merchant_id, fence_id):
                remaining = [f for f in offer.geofence_ids if f != fence_id]
                _write(session, offer, {"geofence_ids": remaining, "version": offer.version + 1}, "offer")
            session.delete(row)
            _log(session, "fence", fence_id, None)

    # -- offers -----------------------------------------------------------------------------------------------

    def save_offer(
        self, merchant_id: str, fence_ids: Sequence[str], resolve: OfferResolver, seen_version: int | None = None
    ) -> Offer:
        """Write the offer ``resolve`` makes from the merchant and its fences among ``fence_ids``, in one
        transaction. ``seen_version`` is given for an update: the stored offer must still be at that version."""
        with transaction(self._factory) as session:
            merchant = merchant_of(_require_merchant(session, merchant_id))
            rows = _owned_rows(session, models.Geofence, merchant_id, models.Geofence.id.in_(list(fence_ids)))
            offer = resolve(merchant, {r.id: fence_of(r) for r in rows})
            if seen_version is None:
                row = models.Offer(**offer_values(offer))
                session.add(row)
                session.flush()
                _log(session, "offer", row.id, row.version)
                return offer_of(row)
            current = _one(session, models.Offer, merchant_id, offer.id, "offer")
            if current.version != seen_version:
                raise Conflict(f"offer {offer.id!r} changed while this patch was checked; send it again", "id")
            values = offer_values(offer) | {"version": current.version + 1, "created_at": current.created_at}
            return offer_of(_write(session, current, values, "offer"))

    def add_offers(self, offers: Sequence[Offer]) -> None:
        """Offers already resolved and checked by their owner (bulk loads); one transaction."""
        with transaction(self._factory) as session:
            rows = [models.Offer(**offer_values(o)) for o in offers]
            session.add_all(rows)
            session.add_all([models.Change(kind="offer", entity_id=r.id, version=r.version) for r in rows])

    def offer(self, owner: Owner, offer_id: str) -> Offer | None:
        found = self.offers(owner, [offer_id])
        return found[0] if found else None

    def offers(self, owner: Owner, ids: Sequence[str] | None = None) -> list[Offer]:
        """The owner's offers (those of ``ids`` only, when given), oldest first."""
        return [offer_of(r) for r in self._listed(models.Offer, owner, ids)]

    def offers_naming(self, merchant_id: str, fence_id: str) -> list[Offer]:
        """The merchant's offers that name ``fence_id`` among their ``geofence_ids``."""
        with self._factory() as session:
            return [offer_of(r) for r in _naming(session, merchant_id, fence_id)]

    def delete_offer(self, merchant_id: str, offer_id: str) -> None:
        with transaction(self._factory) as session:
            session.delete(_one(session, models.Offer, merchant_id, offer_id, "offer"))
            _log(session, "offer", offer_id, None)

    def _listed(self, table: type[_Row], owner: Owner, ids: Sequence[str] | None) -> Sequence[Row[Any]]:
        """Plain rows, not ORM objects: a worker's start reads every fence and offer, and at 100,000 fences the
        ORM's objects cost it seconds and hundreds of megabytes."""
        query = _owned(select(*table.__table__.columns), table.merchant_id, owner).order_by(table.created_at, table.id)
        with self._factory() as session:  # on the connection: Core rows, without the ORM's row processing
            if ids is None:
                return session.connection().execute(query).all()
            wanted = list(ids)  # in chunks: a worker catching up on a bulk asks for 100,000s (SQLite takes 32,766)
            rows = [
                row
                for start in range(0, len(wanted), _IDS_PER_QUERY)
                for row in session.connection().execute(
                    query.where(table.id.in_(wanted[start : start + _IDS_PER_QUERY]))
                )
            ]
            return sorted(rows, key=lambda r: (r.created_at, r.id)) if len(wanted) > _IDS_PER_QUERY else rows

    # -- the change log, notes, erasures ----------------------------------------------------------------------

    def latest_change(self) -> int:
        with self._factory() as session:
            return int(session.scalar(select(func.coalesce(func.max(models.Change.seq), 0))) or 0)

    def change_mark(self, seq: int) -> str | None:
        """What tells this change from the change of the same number in another database (or an older copy of
        this one): its kind, entity and time."""
        with self._factory() as session:
            row = session.get(models.Change, seq)
            return None if row is None else f"{row.kind}:{row.entity_id}:{as_utc(row.at).isoformat() if row.at else ''}"

    def changes_since(self, seq: int) -> list[Change]:
        with self._factory() as session:
            rows = session.scalars(select(models.Change).where(models.Change.seq > seq).order_by(models.Change.seq))
            return [
                Change(r.seq, r.kind, r.entity_id, r.version, as_utc(r.at) if r.at else None)  # type: ignore[arg-type]
                for r in rows
            ]

    def note(self, key: str) -> str | None:
        with self._factory() as session:
            note = session.get(models.Note, key)
            return note.value if note else None

    def set_note(self, key: str, value: str) -> None:
        with transaction(self._factory) as session:
            session.merge(models.Note(key=key, value=value))

    def add_erasure(self, device_key: str) -> None:
        with transaction(self._factory) as session:
            session.merge(models.Erasure(device_key=device_key))

    def erased_devices(self) -> set[str]:
        with self._factory() as session:
            return set(session.scalars(select(models.Erasure.device_key)).all())


def _now() -> datetime:
    return datetime.now(UTC)


def _sees(owner: Owner, merchant_id: str) -> bool:
    return isinstance(owner, Everyone) or _merchant(owner) == merchant_id


def _owned(query: Select[Any], column: Any, owner: Owner) -> Select[Any]:
    return query if isinstance(owner, Everyone) else query.where(column == _merchant(owner))


def _merchant(owner: Owner) -> str:
    """An owner that is neither a merchant id nor ``EVERYONE`` (say, ``None`` from an unchecked caller) is a
    bug to stop, not an empty answer to hide."""
    if not isinstance(owner, str) or not owner:
        raise TypeError(f"an owner is a merchant id or EVERYONE, not {owner!r}")
    return owner


def _refuse_taken_external_ids(session: Session, merchant_id: str, wanted: Mapping[str | None, str | None]) -> None:
    """``Conflict`` when one of the external ids (-> the fence that may keep it, or None) names another of the
    merchant's fences. The unique index stays the last word when two writers race."""
    given = [e for e in wanted if e is not None]
    if not given:
        return
    g = models.Geofence
    query = select(g.external_id, g.id).where(g.merchant_id == merchant_id, g.external_id.in_(given))
    for external_id, fence_id in session.execute(query):
        if wanted.get(external_id) != fence_id:
            raise Conflict(
                f"external_id {external_id!r} already names your geofence {fence_id!r}",
                "properties.external_id",
                code="duplicate_external_id",
            )


def _owned_rows(session: Session, table: type[_Row], merchant_id: str, *where: Any) -> Sequence[_Row]:
    return session.scalars(select(table).where(table.merchant_id == merchant_id, *where)).all()


def _naming(session: Session, merchant_id: str, fence_id: str) -> list[models.Offer]:
    """Offers naming a fence, found by the JSON text of their ids in SQL and checked here: a chain's merchant has
    millions of offers, which loaded as rows took minutes for one fence. (Fence ids are ``fen_<hex>``: their JSON
    text is the id between quotes.)"""
    quoted = models.Offer.geofence_ids.cast(String).contains(f'"{fence_id}"', autoescape=True)
    return [o for o in _owned_rows(session, models.Offer, merchant_id, quoted) if fence_id in o.geofence_ids]


def _one(session: Session, table: type[_Row], merchant_id: str, entity_id: str, noun: str) -> _Row:
    row = session.get(table, entity_id)
    if row is None or getattr(row, "merchant_id", None) != merchant_id:
        raise NotFound(f"no {noun} {entity_id!r}", "id")
    return row


def _require_merchant(session: Session, merchant_id: str) -> models.Merchant:
    row = session.get(models.Merchant, merchant_id)
    if row is None:
        raise NotFound(f"no merchant {merchant_id!r}", "merchant_id")
    return row


def _write(session: Session, row: _Row, values: Mapping[str, Any], kind: Literal["fence", "offer"]) -> _Row:
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()
    _log(session, kind, row.id, values.get("version", getattr(row, "version", None)))
    return row


def _log(session: Session, kind: str, entity_id: str, version: int | None) -> None:
    session.add(models.Change(kind=kind, entity_id=entity_id, version=version))


__all__ = ["EVERYONE", "Change", "Everyone", "Owner", "Repository", "StoredKey"]
