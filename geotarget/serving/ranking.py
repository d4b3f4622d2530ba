"""Order candidate offers, best first. The score is documented in docs/matching.md:

1. offers whose fence the device is *inside* come before offers that are merely *nearby*;
2. within each group, ``score = priority × (1.5 if special) × decay`` with ``decay = 1`` inside and
   ``1 / (1 + distance_m / 100)`` nearby (a 100 m walk halves an offer's pull);
3. ties: nearer first, then the offer id, so the order is deterministic;
4. at most ``per_merchant`` offers of one merchant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from geotarget.catalog.model import Offer
from geotarget.serving.types import Candidate

SPECIAL_BOOST = 1.5
DECAY_M = 100.0


def score(offer: Offer, inside: bool, distance_m: float) -> float:
    """The pull of one offer at one place.

    >>> from datetime import UTC, datetime
    >>> now = datetime.now(UTC)
    >>> latte = Offer(id="o", merchant_id="m", title="latte", geofence_ids=("f",), timezone="UTC",
    ...               priority=40, special=True, created_at=now, updated_at=now)
    >>> score(latte, True, 0.0)
    60.0
    """

    return static_score(offer) * (1.0 if inside else decay(distance_m))


def static_score(offer: Offer) -> float:
    """The part of the score that does not depend on where the device is."""
    return offer.priority * (SPECIAL_BOOST if offer.special else 1.0)


def decay(distance_m: float) -> float:
    """How much of an offer's pull is left ``distance_m`` metres outside its fence."""
    return 1.0 / (1.0 + distance_m / DECAY_M)


def rank(candidates: Iterable[Candidate], per_merchant: int) -> list[Candidate]:
    ordered = sorted(candidates, key=lambda c: (not c.inside, -c.score, c.distance_m, c.offer.id))
    taken: Counter[str] = Counter()
    result = []
    for candidate in ordered:
        if taken[candidate.offer.merchant_id] < per_merchant:
            taken[candidate.offer.merchant_id] += 1
            result.append(candidate)
    return result
