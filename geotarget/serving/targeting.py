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
    if targeting.age_range is not None:
        low, high = targeting.age_range
        if attributes.age is None or not low <= attributes.age <= high:
            return False
    if targeting.gender is not None and (attributes.gender or "").lower() not in targeting.gender:
        return False
    if targeting.interests is not None and not {i.lower() for i in attributes.interests} & set(targeting.interests):
        return False
    if targeting.os is not None and (attributes.os or "").lower() not in targeting.os:
        return False
    if targeting.language is None:
        return True
    spoken = None if attributes.language is None else language_tag(attributes.language)
    return any(language_tag(wanted) == spoken for wanted in targeting.language)
