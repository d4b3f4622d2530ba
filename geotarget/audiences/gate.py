"""Which memberships an offer's audiences ask of a device: ``targeting.audiences`` and the audience tests of
``targeting.expr``, as one formula over memberships. Pure: the catalog knows each live audience's generation,
the cap reservation (one Redis call) reads the device's memberships and evaluates the formula.

An audience that is suppressed (under k devices) or never refreshed has no live generation: it matches nobody,
so an offer that includes only such audiences cannot be shown, and excluding one excludes nobody. What the app
sent is decided before (``decide``): only the part of an expression that depends on memberships is left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

from geotarget.audiences.model import membership_token
from geotarget.catalog.expressions import AllOf, AnyOf, Expr, InAudience, NotOf, Test
from geotarget.catalog.model import AudienceSelection, Targeting


@dataclass(frozen=True)
class Check:
    audience_id: str
    generation: int
    include: bool  # True: holds for a member; False: holds for a non-member

    @cached_property
    def token(self) -> str:
        """The membership field the reservation looks up (made once per remembered gate, not per request)."""
        return membership_token(self.audience_id, self.generation)


@dataclass(frozen=True)
class Junction:
    op: Literal["&", "|", "!"]
    parts: tuple[Formula, ...]


Formula = bool | Check | Junction


def every(*parts: Formula) -> Formula:
    """``and``, folded: a known part is dropped or decides, so what is left depends on memberships only."""
    if any(p is False for p in parts):
        return False
    left = tuple(p for p in parts if p is not True)
    return True if not left else left[0] if len(left) == 1 else Junction("&", left)


def some(*parts: Formula) -> Formula:
    if any(p is True for p in parts):
        return True
    left = tuple(p for p in parts if p is not False)
    return False if not left else left[0] if len(left) == 1 else Junction("|", left)


def negated(part: Formula) -> Formula:
    if isinstance(part, bool):
        return not part
    if isinstance(part, Check):
        return replace(part, include=not part.include)
    return Junction("!", (part,))


def member(audience_id: str, live: Mapping[str, int]) -> Formula:
    generation = live.get(audience_id)
    return False if generation is None else Check(audience_id, generation, True)


@dataclass(frozen=True)
class Gate:
    formula: Formula  # never True (no gate is None); False when no device can pass

    @property
    def possible(self) -> bool:
        """Some device could pass (an include list with no live audience admits nobody)."""
        return self.formula is not False

    def admits(self, memberships: Mapping[str, Set[int]]) -> bool:
        """The rule itself, for a device whose memberships (audience id -> generations) are known.

        >>> gate = gate_for(AudienceSelection(include=("aud_a",), exclude=("aud_b",)), {"aud_a": 2, "aud_b": 1})
        >>> gate.admits({"aud_a": {2}}), gate.admits({"aud_a": {2}, "aud_b": {1}}), gate.admits({"aud_a": {1}})
        (True, False, False)
        """
        return _value(self.formula, memberships)

    @cached_property
    def program(self) -> tuple[tuple[int, str], ...]:
        """The formula in postfix, as reserve.lua's ``in_audiences`` runs it: (1, token) a member, (-1, token)
        not a member, (0, "&n" | "|n" | "!") an operator over the last n values."""
        return tuple(_postfix(self.formula))


def _value(formula: Formula, memberships: Mapping[str, Set[int]]) -> bool:
    if isinstance(formula, bool):
        return formula
    if isinstance(formula, Check):
        return (formula.generation in memberships.get(formula.audience_id, ())) == formula.include
    values = [_value(p, memberships) for p in formula.parts]
    return all(values) if formula.op == "&" else any(values) if formula.op == "|" else not values[0]


def _postfix(formula: Formula) -> list[tuple[int, str]]:
    if isinstance(formula, bool):
        raise ValueError("a known formula is no gate")
    if isinstance(formula, Check):
        return [(1 if formula.include else -1, formula.token)]
    steps = [step for part in formula.parts for step in _postfix(part)]
    return [*steps, (0, "!" if formula.op == "!" else f"{formula.op}{len(formula.parts)}")]


def gate_for(selection: AudienceSelection | None, live: Mapping[str, int], expr: Formula = True) -> Gate | None:
    """None when nothing is asked of memberships; ``live``: audience id -> its live generation; ``expr``: what
    is left of the targeting expression once the app's attributes are decided."""
    listed: Formula = True
    if selection is not None:
        kept = every(*(negated(member(a, live)) for a in selection.exclude))
        listed = every(kept, some(*(member(a, live) for a in selection.include))) if selection.include else kept
    formula = every(listed, expr)
    return None if formula is True else Gate(formula)


def left_over(expr: Expr, decide: Callable[[Test], bool], live: Mapping[str, int]) -> Formula:
    """An expression with its attribute tests decided and its audiences looked up: a formula of memberships."""
    if isinstance(expr, Test):
        return decide(expr)
    if isinstance(expr, InAudience):
        return member(expr.audience, live)
    if isinstance(expr, NotOf):
        return negated(left_over(expr.negated, decide, live))
    if isinstance(expr, AllOf):
        return every(*(left_over(e, decide, live) for e in expr.all))
    assert isinstance(expr, AnyOf)
    return some(*(left_over(e, decide, live) for e in expr.any))


class Gates:
    """An offer's gate, remembered while its selection and the live generations are the same objects (both
    are replaced whole on change): serving asks for the same few gates on every request. An expression that
    tests audiences depends on the request's attributes too, so its part is made per request."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[AudienceSelection, Mapping[str, int], Gate | None]] = {}

    def of(
        self, offer_id: str, targeting: Targeting, live: Mapping[str, int], decide: Callable[[Test], bool]
    ) -> Gate | None:
        selection = targeting.audiences
        if not targeting.expr_audiences:
            return None if selection is None else self._listed(offer_id, selection, live)
        assert targeting.expr is not None
        return gate_for(selection, live, left_over(targeting.expr, decide, live))

    def _listed(self, offer_id: str, selection: AudienceSelection, live: Mapping[str, int]) -> Gate | None:
        hit = self._known.get(offer_id)
        if hit is not None and hit[0] is selection and hit[1] is live:
            return hit[2]
        gate = gate_for(selection, live)
        self._known[offer_id] = (selection, live, gate)  # one entry per offer: bounded by the catalog
        return gate
