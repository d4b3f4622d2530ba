"""Does an offer's audience include this device user? Pure; attributes come from the app's request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geotarget.catalog.expressions import AllOf, Expr, InAudience, NotOf, Test
from geotarget.catalog.model import Targeting
from geotarget.serving.types import Attributes


def language_tag(value: str) -> str:
    """The primary subtag, lower case: ``pt-PT`` and ``pt_BR`` both target ``pt``."""
    return value.replace("_", "-").split("-", 1)[0].strip().lower()


_NOTHING = Targeting()


def matches(targeting: Targeting, attributes: Attributes) -> bool:
    """Every criterion the offer sets must hold; when the app did not send the attribute, it does not hold.

    >>> matches(Targeting(language=["pt"]), Attributes(language="pt-PT"))
    True
    >>> matches(Targeting(age_range=(18, 35)), Attributes())
    False
    """
    return mismatch(targeting, attributes) is None


def untargeted(targeting: Targeting) -> bool:
    """Whether the offer sets no criterion: it matches whatever the app sends."""
    return targeting == _NOTHING


def mismatch(targeting: Targeting, attributes: Attributes) -> str | None:
    """The first criterion that does not hold (``age_range``, ``gender``, ``interests``, ``os``, ``language``,
    ``expr``); None when they all do. The explainer names it; ``matches`` is this being None. A flat criterion
    is the expression test it reads as (``age_range`` is ``age between``, the others ``in``), so both mean the
    same everywhere."""
    if targeting.age_range is not None and not holds_test("age", "between", targeting.age_range, attributes):
        return "age_range"
    for name in ("gender", "interests", "os", "language"):
        wanted = getattr(targeting, name)
        if wanted is not None and not holds_test(name, "in", wanted, attributes):
            return name
    if targeting.expr is not None and holds(targeting.expr, attributes) is False:
        return "expr"
    return None


def holds(expr: Expr, attributes: Attributes) -> bool | None:
    """Whether a targeting expression holds for what the app sent (``geotarget.catalog.expressions``); None
    when that depends on the device's audiences (checked in the cap reservation: ``audiences.gate``).

    >>> from geotarget.catalog.expressions import AnyOf
    >>> maybe = AnyOf(any=(InAudience(audience="aud_regulars"), Test(attr="os", op="present")))
    >>> holds(maybe, Attributes(os="ios")), holds(maybe, Attributes())
    (True, None)
    """
    if isinstance(expr, Test):
        return holds_test(expr.attr, expr.op, expr.value, attributes)
    if isinstance(expr, InAudience):
        return None
    if isinstance(expr, NotOf):
        inner = holds(expr.negated, attributes)
        return None if inner is None else not inner
    values = [holds(child, attributes) for child in (expr.all if isinstance(expr, AllOf) else expr.any)]
    decisive = isinstance(expr, AllOf) is False  # any: one True decides; all: one False decides
    if decisive in values:
        return decisive
    return None if None in values else not decisive


def deciding(attributes: Attributes) -> Callable[[Test], bool]:
    """``holds_test`` over one request's attributes, as ``audiences.gate`` decides the tests of an expression."""
    return lambda test: holds_test(test.attr, test.op, test.value, attributes)


def holds_test(attr: str, op: str, value: Any, attributes: Attributes) -> bool:
    """One test; an attribute the app did not send fails every test of it.

    >>> holds_test("age", "between", (18, 25), Attributes(age=30)), holds_test("os", "in", ("ios",), Attributes())
    (False, False)
    """
    if attr == "age":
        age = attributes.age
        if age is None or op == "present":
            return age is not None
        if op == "between":
            return bool(value[0] <= age <= value[1])
        return bool(age >= value if op == "gte" else age <= value)
    if attr == "interests":
        sent = {i.lower() for i in attributes.interests}
        return bool(sent) if op == "present" else not sent.isdisjoint(value)
    if attr == "language":
        if attributes.language is None or op == "present":
            return attributes.language is not None
        spoken = language_tag(attributes.language)
        return any(language_tag(wanted) == spoken for wanted in value)
    said = attributes.gender if attr == "gender" else attributes.os
    if not said or op == "present":
        return bool(said)
    return said.lower() in value
