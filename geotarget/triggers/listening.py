"""Who listens to presence, so presence is kept only where someone does (DESIGN §9.1).

A fence is *listened* for one app's devices when a merchant webhook hears enter, dwell or exit on it (it names the
fence, or names none: all of that merchant's fences), when a webhook of that very app hears them (an app webhook
hears all its devices everywhere), or when an offer on it is triggered (pushed on a transition). Anything else
moves no presence: with nobody listening, a ping does no presence work at all.

Pure: built from the subscriptions; the fences' merchants and triggered offers are asked of the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from geotarget.triggers.webhooks import Subscription

PRESENCE_EVENTS = frozenset({"enter", "dwell", "exit"})


@dataclass(frozen=True)
class Listening:
    apps: frozenset[str] = frozenset()  # app key ids with a webhook of their own: every fence, for their devices
    merchants: frozenset[str] = frozenset()  # merchants with a webhook on all their fences
    fences: frozenset[str] = frozenset()  # fences a merchant webhook names

    @classmethod
    def of(cls, subscriptions: Iterable[Subscription]) -> Listening:
        """
        >>> hook = Subscription("whk_1", "merchant", "m_1", "https://x.example/h", ("enter",), "s", ("f_1",))
        >>> Listening.of([hook]).fences
        frozenset({'f_1'})
        """
        apps: set[str] = set()
        merchants: set[str] = set()
        fences: set[str] = set()
        for sub in subscriptions:
            if not PRESENCE_EVENTS.intersection(sub.events):
                continue  # push only: heard through triggered offers, which are listened fences themselves
            if sub.owner == "app":
                apps.add(sub.owner_id)
            elif sub.geofence_ids is None:
                merchants.add(sub.owner_id)
            else:
                fences.update(sub.geofence_ids)
        return cls(frozenset(apps), frozenset(merchants), frozenset(fences))

    def anywhere(self, triggered: Collection[str]) -> bool:
        """Whether anything is listened at all (else the trigger loop has nothing to read)."""
        return bool(self.apps or self.merchants or self.fences or triggered)

    def anyone(self, app: str, triggered: Collection[str]) -> bool:
        """Whether any fence is listened for this app's devices (``triggered``: fences with triggered offers)."""
        return app in self.apps or bool(self.merchants or self.fences or triggered)

    def hears(
        self, app: str, fence_id: str, triggered: Collection[str], merchant_of: Callable[[str], str | None]
    ) -> bool:
        """Whether presence in ``fence_id`` is kept for this app's devices."""
        if app in self.apps or fence_id in self.fences or fence_id in triggered:
            return True
        return bool(self.merchants) and merchant_of(fence_id) in self.merchants


NOBODY = Listening()

__all__ = ["NOBODY", "PRESENCE_EVENTS", "Listening"]
