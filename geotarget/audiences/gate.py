"""Which memberships an offer's ``targeting.audiences`` asks of a device. Pure: the catalog knows each live
audience's generation, the cap reservation (one Redis call) reads the device's memberships.

An audience that is suppressed (under k devices) or never refreshed has no live generation: it matches nobody,
so an offer that includes only such audiences cannot be shown, and excluding one excludes nobody.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from functools import cached_property

from geotarget.audiences.model import membership_token
from geotarget.catalog.model import AudienceSelection


@dataclass(frozen=True)
class Check:
    audience_id: str
    generation: int
    include: bool  # True: a member passes (any include passing is enough); False: a member is turned away

    @cached_property
    def token(self) -> str:
        """The membership field the reservation looks up (made once per remembered gate, not per request)."""
        return membership_token(self.audience_id, self.generation)


@dataclass(frozen=True)
class Gate:
    checks: tuple[Check, ...]
    wants_member: bool  # the offer includes audiences: a device must be a member of one of them

    @property
    def possible(self) -> bool:
        """Some device could pass (an include list with no live audience admits nobody)."""
        return not self.wants_member or any(c.include for c in self.checks)

    def admits(self, memberships: Mapping[str, Set[int]]) -> bool:
        """The rule itself, for a device whose memberships (audience id -> generations) are known.

        >>> gate = gate_for(AudienceSelection(include=("aud_a",), exclude=("aud_b",)), {"aud_a": 2, "aud_b": 1})
        >>> gate.admits({"aud_a": {2}}), gate.admits({"aud_a": {2}, "aud_b": {1}}), gate.admits({"aud_a": {1}})
        (True, False, False)
        """
        member = {c: c.generation in memberships.get(c.audience_id, ()) for c in self.checks}
        if any(m for c, m in member.items() if not c.include):
            return False
        return not self.wants_member or any(m for c, m in member.items() if c.include)


def gate_for(selection: AudienceSelection | None, live: Mapping[str, int]) -> Gate | None:
    """None when the offer does not target audiences; ``live``: audience id -> its live generation."""
    if selection is None or not (selection.include or selection.exclude):
        return None
    checks = tuple(Check(a, live[a], True) for a in selection.include if a in live) + tuple(
        Check(a, live[a], False) for a in selection.exclude if a in live
    )
    return Gate(checks, bool(selection.include))


class Gates:
    """``gate_for`` per offer, remembered while the offer's selection and the live generations are the same
    objects (both are replaced whole on change): serving asks for the same few gates on every request."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[AudienceSelection, Mapping[str, int], Gate | None]] = {}

    def of(self, offer_id: str, selection: AudienceSelection | None, live: Mapping[str, int]) -> Gate | None:
        if selection is None:
            return None
        hit = self._known.get(offer_id)
        if hit is not None and hit[0] is selection and hit[1] is live:
            return hit[2]
        gate = gate_for(selection, live)
        self._known[offer_id] = (selection, live, gate)  # one entry per offer: bounded by the catalog
        return gate
