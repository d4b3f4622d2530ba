"""Unique redemption codes in SQL: recorded by the event consumer from the impressions it stores (so a code
outlives Redis), redeemed once by a guarded update (two tills redeeming one code at once: one wins, one 409)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from geotarget.catalog.model import as_utc
from geotarget.errors import Conflict, NotFound
from geotarget.measurement.redemptions import IssuedCode, normalized
from geotarget.store import models
from geotarget.store.database import transaction


class CodeTable:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def record(self, issued: Sequence[IssuedCode]) -> int:
        """Add codes not recorded yet (a batch the consumer writes again after a crash adds nothing)."""
        fresh = {normalized(i.code): i for i in issued}
        if not fresh:
            return 0
        with transaction(self._factory) as session:
            known = set(
                session.scalars(select(models.RedemptionCode.code).where(models.RedemptionCode.code.in_(list(fresh))))
            )
            rows = [
                models.RedemptionCode(
                    code=code,
                    offer_id=i.offer_id,
                    merchant_id=i.merchant_id,
                    impression_id=i.impression_id,
                    issued_at=i.issued_at,
                )
                for code, i in fresh.items()
                if code not in known
            ]
            session.add_all(rows)
            return len(rows)

    def redeem(self, code: str, merchant_id: str, at: datetime) -> IssuedCode:
        with transaction(self._factory) as session:
            done = session.execute(
                update(models.RedemptionCode)
                .where(
                    models.RedemptionCode.code == code,
                    models.RedemptionCode.merchant_id == merchant_id,
                    models.RedemptionCode.redeemed_at.is_(None),
                )
                .values(redeemed_at=at)
            )
            row = session.get(models.RedemptionCode, code)
            if row is None or row.merchant_id != merchant_id:
                raise NotFound(f"no code {code!r} of yours", "code")
            if done.rowcount == 0:  # type: ignore[attr-defined]
                raise Conflict(f"code {code!r} was already redeemed", "code")
            return IssuedCode(row.code, row.offer_id, row.merchant_id, row.impression_id, as_utc(row.issued_at), at)


def issued_codes(table: pa.Table) -> list[IssuedCode]:
    """The unique codes that the impressions of a stored batch carried (``SCHEMA`` rows)."""
    if "code" not in table.column_names:
        return []
    rows = table.filter(pc.and_(pc.equal(table["kind"], "impression"), pc.not_equal(table["code"], "")))
    return [
        IssuedCode(r["code"], r["offer_id"], r["merchant_id"], r["event_id"], r["ts"])
        for r in rows.select(["code", "offer_id", "merchant_id", "event_id", "ts"]).to_pylist()
    ]
