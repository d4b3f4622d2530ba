"""Does an offer's audience include this device user? Pure; attributes come from the app's request."""

from __future__ import annotations

from geotarget.catalog.model import Targeting
from geotarget.serving.types import Attributes


def language_tag(value: str) -> str:
    """The primary subtag, lower case: ``pt-PT`` and ``pt_BR`` both target ``pt``."""
    return value.replace("_", "-").split("-", 1)[0].strip().lower()


def matches(targeting: Targeting, attributes: Attributes) -> bool:
    """Every criterion the offer sets must hold; when the app did not send the attribute, it does not hold.

    >>> matches(Targeting(language=["pt"]), Attributes(language="pt-PT"))
    True
    >>> matches(Targeting(age_range=(18, 35)), Attributes())
    False
    """
    return mismatch(targeting, attributes) is None


def mismatch(targeting: Targeting, attributes: Attributes) -> str | None:
    """The first criterion that does not hold (``age_range``, ``gender``, ``interests``, ``os``, ``language``);
    None when they all do. The explainer names it; ``matches`` is this being None."""
    if targeting.age_range is not None:
        low, high = targeting.age_range
        if attributes.age is None or not low <= attributes.age <= high:
            return "age_range"
    if targeting.gender is not None and (attributes.gender or "").lower() not in targeting.gender:
        return "gender"
    if targeting.interests is not None and not {i.lower() for i in attributes.interests} & set(targeting.interests):
        return "interests"
    if targeting.os is not None and (attributes.os or "").lower() not in targeting.os:
        return "os"
    if targeting.language is None:
        return None
    spoken = None if attributes.language is None else language_tag(attributes.language)
    return None if any(language_tag(wanted) == spoken for wanted in targeting.language) else "language"
