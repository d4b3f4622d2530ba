"""Does an offer's audience include this device user? Pure; attributes come from the app's request."""

from __future__ import annotations

from geotarget.serving.types import Attributes, Targeting


def language_tag(value: str) -> str:
    """The primary subtag, lower case: ``pt-PT`` and ``pt_BR`` both target ``pt``."""
    return value.replace("_", "-").split("-", 1)[0].strip().lower()


def matches(targeting: Targeting, attributes: Attributes) -> bool:
    """Every criterion the offer sets must hold; when the app did not send the attribute, it does not hold.

    >>> matches(Targeting(languages=frozenset({"pt"})), Attributes(language="pt-PT"))
    True
    >>> matches(Targeting(age_range=(18, 35)), Attributes())
    False
    """
    if targeting.age_range is not None:
        low, high = targeting.age_range
        if attributes.age is None or not low <= attributes.age <= high:
            return False
    if targeting.genders is not None and (attributes.gender or "").lower() not in targeting.genders:
        return False
    if targeting.interests is not None and not targeting.interests & {i.lower() for i in attributes.interests}:
        return False
    if targeting.os is not None and (attributes.os or "").lower() not in targeting.os:
        return False
    return not (
        targeting.languages is not None
        and (attributes.language is None or language_tag(attributes.language) not in targeting.languages)
    )
