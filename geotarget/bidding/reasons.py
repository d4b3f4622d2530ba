"""Every decision a bid request ends in, as a reason code (counted in metrics) and, where OpenRTB's no-bid reason
list has one that fits, its ``nbr``. A no-bid without one is an empty 204."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reason = Literal[
    "bid",
    "invalid_request",
    "coppa",
    "consent_missing",
    "consent_invalid",
    "vendor_denied",
    "purpose_denied",
    "currency",
    "no_location",
    "invalid_location",
    "no_device",
    "no_slot",
    "no_offer",
    "capped",
    "caps_unavailable",
]
REASONS: tuple[Reason, ...] = Reason.__args__  # type: ignore[attr-defined]

# OpenRTB 2.6 no-bid reason codes: 1 technical error, 2 invalid request, 8 unmatched user, 9 daily reader cap met
NBR: dict[Reason, int] = {"caps_unavailable": 1, "invalid_request": 2, "no_device": 8, "capped": 9}


@dataclass(frozen=True)
class NoBid:
    reason: Reason

    @property
    def nbr(self) -> int | None:
        return NBR.get(self.reason)
