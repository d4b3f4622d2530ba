"""Creative variants: which one a device is shown, and how "optimized" rotation learns from clicks.

A device's variant follows from a hash of its key and the offer (a point ``u`` in [0, 1)) laid over the
variants' shares, so it keeps its variant for as long as the shares hold: for ``even`` and ``weighted`` always,
for ``optimized`` until the shares move, which they do slowly. ``optimized`` is Thompson sampling (as Braze's
Intelligent Selection): each variant's click rate has a Beta(1 + clicks, 1 + impressions − clicks) posterior;
its share is the probability that it is the best one (Monte Carlo), with a floor so that none stops learning,
and equal shares until every variant has ``BURN_IN`` impressions. Pure: the counts and the random source are given.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from geotarget.catalog.model import Offer, Variant

BURN_IN = 200  # impressions each variant gets before clicks move the shares
FLOOR = 0.05  # the least share a variant keeps under optimized rotation
DRAWS = 4_000  # Monte Carlo draws per share update


def device_point(device_key: str, offer_id: str) -> float:
    """Where a device falls in [0, 1) for an offer: stable, and unrelated between offers."""
    digest = hashlib.blake2b(f"{offer_id}:{device_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def pick(variants: Sequence[Variant], shares: Sequence[float], point: float) -> Variant:
    """The variant whose slice of [0, 1) holds ``point``.

    >>> a, b = Variant(id="a"), Variant(id="b")
    >>> pick([a, b], [0.7, 0.3], 0.69).id, pick([a, b], [0.7, 0.3], 0.71).id
    ('a', 'b')
    """
    total = sum(shares)
    edge = 0.0
    for variant, share in zip(variants, shares, strict=True):
        edge += share / total
        if point < edge:
            return variant
    return variants[-1]


def static_shares(offer: Offer) -> list[float]:
    """Shares that need no counts: equal, or by weight."""
    return [float(v.weight) if offer.rotation == "weighted" else 1.0 for v in offer.variants]


def thompson_shares(counts: Sequence[tuple[int, int]], rng: random.Random | None = None) -> list[float]:
    """Shares from (impressions, clicks) per variant: equal during burn-in, else P(best) floored.

    >>> thompson_shares([(10, 1), (500, 30)])  # the first is still burning in
    [0.5, 0.5]
    """
    n = len(counts)
    if n == 0:
        return []
    if any(shown < BURN_IN for shown, _ in counts):
        return [1.0 / n] * n
    rng = rng or random.Random()
    wins = [0] * n
    for _ in range(DRAWS):
        draws = [rng.betavariate(1 + clicks, 1 + max(0, shown - clicks)) for shown, clicks in counts]
        wins[draws.index(max(draws))] += 1
    best = [w / DRAWS for w in wins]
    return [FLOOR + (1 - n * FLOOR) * b for b in best]


class Rotation:
    """Each worker's variant shares: static ones computed on the spot, optimized ones set by ``learn``."""

    def __init__(self) -> None:
        self._learned: dict[str, list[float]] = {}

    def shares(self, offer: Offer) -> list[float]:
        learned = self._learned.get(offer.id) if offer.rotation == "optimized" else None
        return learned if learned is not None and len(learned) == len(offer.variants) else static_shares(offer)

    def creative(self, offer: Offer, device_key: str) -> tuple[Offer, str]:
        """The offer as this device is shown it (its variant's fields over the offer's) and the variant's id."""
        variant = pick(offer.variants, self.shares(offer), device_point(device_key, offer.id))
        changed = variant.model_dump(include={"title", "body", "image_url", "url"}, exclude_none=True)
        overlaid = {name: getattr(variant, name) for name in changed}
        return (offer.model_copy(update=overlaid) if overlaid else offer), variant.id

    def learn(self, offers: Sequence[Offer], counts: dict[tuple[str, str], tuple[int, int]]) -> None:
        """New shares for the optimized offers from (impressions, clicks) by (offer id, variant id)."""
        self._learned = {
            o.id: thompson_shares([counts.get((o.id, v.id), (0, 0)) for v in o.variants])
            for o in offers
            if o.rotation == "optimized" and o.variants
        }
